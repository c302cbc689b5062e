package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/orthotriage/orthotriage/auth/authtest"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
)

// service is the real orthotriage binary, started on a free port.
type service struct {
	cmd  *exec.Cmd
	base string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

// buildBinary returns the service's binary, built once for all the
// package's tests (building is the slowest part of starting a service); the
// build's folder is removed by TestMain.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin, err := builtBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var (
	binaryDir   string
	builtBinary = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "orthotriage-e2e-")
		if err != nil {
			return "", err
		}
		binaryDir = dir
		bin := filepath.Join(dir, "orthotriage")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, out)
		}
		return bin, nil
	})
)

func TestMain(m *testing.M) {
	if body := os.Getenv(bareHookEnv); body != "" {
		serveBareHook(body) // the benchmarks' baseline server, in its own process
		return
	}
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

func startService(t testing.TB, bin string, env ...string) *service {
	t.Helper()
	// The port is picked here, so that the public base URL (the aud of
	// tokens, required with authentication on) can name it; env may
	// override the URL.
	port := testenv.FreePort(t)
	s := &service{cmd: exec.Command(bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port)), done: make(chan error, 1)}
	lib := filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
	s.cmd.Env = append(append(os.Environ(), "ORTHOTRIAGE_ONNXRUNTIME_LIBRARY="+lib,
		fmt.Sprintf("ORTHOTRIAGE_AUTH_PUBLIC_BASE_URL=http://127.0.0.1:%d", port)), env...)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = os.Stderr
	// Bound to the test process: it dies with the test binary even when
	// that ends without cleanups (a test timeout).
	if err := testenv.Start(t, s.cmd); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.Write(append(sc.Bytes(), '\n'))
			s.mu.Unlock()
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
		s.done <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
	})
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatalf("the service did not log its address; logs:\n%s", s.logText())
	}
	return s
}

func (s *service) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// logged waits a little for a log line holding want: the service writes it
// before answering, but the reader may lag behind.
func (s *service) logged(want string) bool {
	for range 50 {
		if strings.Contains(s.logText(), want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// stop sends SIGTERM and waits for a clean exit.
func (s *service) stop(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logText())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop within 30s of SIGTERM")
	}
	if !s.logged(`"msg":"stopped"`) {
		t.Errorf("no stopped log line:\n%s", s.logText())
	}
}

// call makes a request, with a bearer JWT when bearer is set.
func call(t testing.TB, method, url, body string, bearer ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(bearer) > 0 {
		req.Header.Set("Authorization", "Bearer "+bearer[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fhirCreate posts a resource to the FHIR test server and returns its id.
func fhirCreate(t testing.TB, base, token, resource string) string {
	t.Helper()
	return testenv.FHIRCreate(t, base, token, resource)
}

func hookBody(hook, server, token, context string) string {
	return `{"hook":"` + hook + `","hookInstance":"6f6c2c2e-6d8e-4d55-9a4f-0d6f0f1d0a11","fhirServer":"` + server +
		`","fhirAuthorization":{"access_token":"` + token + `","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"ehr"},"context":` + context + `}`
}

// TestEndToEnd builds the binary and drives discovery, hook calls that fetch
// their data from the real FHIR test server, and feedback kept in real Redis.
func TestEndToEnd(t *testing.T) {
	const token = "e2e-secret-token"
	redisURL := testenv.Redis(t)
	fhirBase := testenv.FHIRServer(t, token)
	patient := fhirCreate(t, fhirBase, token, `{"resourceType":"Patient","gender":"female","birthDate":"1940-01-01"}`)
	var studies []string
	for _, started := range []string{"2026-11-01T08:00:00Z", "2026-11-20T08:00:00Z"} {
		studies = append(studies, fhirCreate(t, fhirBase, token, `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/`+patient+`"},"started":"`+started+`",`+
			`"series":[{"uid":"2.25.1`+started[8:10]+`","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"DX"}}]}`))
	}
	// The EHR: a key generated now, its JWKS in a file, registered as an issuer.
	const iss = "https://ehr.example.org"
	key := authtest.NewKey(t, "ehr-1", "ES384")
	dir := t.TempDir()
	jwks, issuers := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "issuers.yaml")
	os.WriteFile(jwks, authtest.JWKS(key), 0o600)
	os.WriteFile(issuers, []byte("- iss: "+iss+"\n  jwks_file: "+jwks+"\n  fhir_servers: ["+fhirBase+"]\n"), 0o600)
	var jwts []string
	signed := func(url string) string { // a fresh token whose aud is the URL called
		tok := authtest.Sign(t, key, authtest.Claims(iss, url), nil)
		jwts = append(jwts, tok)
		return tok
	}
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_REDIS_URL="+redisURL, "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+issuers,
		"ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8") // the FHIR test server is on loopback

	if status, body := call(t, http.MethodGet, s.base+"/cds-services", ""); status != 401 || body != "" {
		t.Fatalf("discovery without a token = %d %q, want a bare 401", status, body)
	}
	status, body := call(t, http.MethodGet, s.base+"/cds-services", "", signed(s.base+"/cds-services"))
	if status != 200 || strings.Count(body, `"id":`) != 4 {
		t.Fatalf("discovery = %d %s", status, body)
	}

	t.Run("patient-view fetches from the FHIR server", func(t *testing.T) {
		url := s.base + "/cds-services/vertebral-fracture-acuity"
		status, body := call(t, http.MethodPost, url,
			hookBody("patient-view", fhirBase, token, `{"userId":"Practitioner/1","patientId":"`+patient+`"}`), signed(url))
		if status != 200 || body != `{"cards":[]}` {
			t.Fatalf("hook = %d %s", status, body)
		}
		if !s.logged(`"service":"vertebral-fracture-acuity","hook":"patient-view","hookInstance":"6f6c2c2e-6d8e-4d55-9a4f-0d6f0f1d0a11","studies":2,"patient":true`) {
			t.Errorf("the hook did not resolve the patient and both studies:\n%s", s.logText())
		}
	})
	t.Run("imaging-study-available reads the named study", func(t *testing.T) {
		url := s.base + "/cds-services/hip-radiograph-screening-imagingstudy-available"
		status, body := call(t, http.MethodPost, url,
			hookBody("org.orthotriage.imagingstudy-available", fhirBase, token, `{"patientId":"`+patient+`","studies":["ImagingStudy/`+studies[1]+`"]}`), signed(url))
		if status != 200 || body != `{"cards":[]}` {
			t.Fatalf("hook = %d %s", status, body)
		}
		if !s.logged(`"hook":"org.orthotriage.imagingstudy-available","hookInstance":"6f6c2c2e-6d8e-4d55-9a4f-0d6f0f1d0a11","studies":1,"patient":true`) {
			t.Errorf("the named study was not resolved:\n%s", s.logText())
		}
	})
	t.Run("a token the FHIR server refuses gives 412", func(t *testing.T) {
		url := s.base + "/cds-services/hip-radiograph-screening"
		status, body := call(t, http.MethodPost, url,
			hookBody("patient-view", fhirBase, "wrong-token", `{"userId":"Practitioner/1","patientId":"`+patient+`"}`), signed(url))
		if status != 412 || !strings.Contains(body, "401") {
			t.Fatalf("hook = %d %s, want 412 naming the FHIR server's 401", status, body)
		}
	})
	t.Run("a FHIR server not registered for the issuer is refused", func(t *testing.T) {
		url := s.base + "/cds-services/hip-radiograph-screening"
		status, body := call(t, http.MethodPost, url,
			hookBody("patient-view", "http://127.0.0.1:9/other-tenant/fhir", token, `{"userId":"Practitioner/1","patientId":"`+patient+`"}`), signed(url))
		if status != 403 || !strings.Contains(body, "not registered for issuer") {
			t.Fatalf("hook = %d %s, want 403", status, body)
		}
	})
	t.Run("feedback is kept once in the Redis stream", func(t *testing.T) {
		fb := `{"feedback":[{"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","outcome":"accepted","acceptedSuggestions":[{"id":"s1"}],"outcomeTimestamp":"2026-11-24T10:15:00Z"}]}`
		url := s.base + "/cds-services/hip-radiograph-screening/feedback"
		for range 2 {
			if status, body := call(t, http.MethodPost, url, fb, signed(url)); status != 200 {
				t.Fatalf("feedback = %d %s", status, body)
			}
		}
		replayed := signed(url)
		call(t, http.MethodPost, url, fb, replayed)
		if status, _ := call(t, http.MethodPost, url, fb, replayed); status != 401 {
			t.Errorf("a replayed token got %d, want 401", status)
		}
		rdb, err := store.NewRedisClient(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		if n, err := rdb.XLen(t.Context(), store.FeedbackStream).Result(); err != nil || n != 1 {
			t.Errorf("feedback stream length = %d, %v; want 1", n, err)
		}
	})
	status, body = call(t, http.MethodGet, s.base+"/readyz", "")
	if status != 200 || !strings.Contains(body, `"redis":"ok"`) || !strings.Contains(body, `"models":"ok"`) {
		t.Errorf("readyz = %d %s", status, body)
	}
	if !s.logged(`"msg":"model loaded","id":"hip-000"`) {
		t.Errorf("no model loaded line:\n%s", s.logText())
	}
	if status, body := call(t, http.MethodGet, s.base+"/metrics", ""); status != 200 ||
		!strings.Contains(body, `orthotriage_inference_batches_total{model="hip-000"} 0`) ||
		!strings.Contains(body, `orthotriage_inference_crops_total{model="hip-000"} 0`) {
		t.Errorf("metrics lack the inference counters: %d", status)
	}
	s.stop(t)
	if strings.Contains(s.logText(), token) || strings.Contains(s.logText(), "wrong-token") {
		t.Errorf("a bearer token reached the logs:\n%s", s.logText())
	}
	for _, jwt := range jwts {
		if strings.Contains(s.logText(), jwt) || strings.Contains(s.logText(), strings.Split(jwt, ".")[2]) {
			t.Fatalf("a JWT reached the logs:\n%s", s.logText())
		}
	}
}

// TestShutdownDrainsInFlightRequests sends SIGTERM while a hook call waits on
// a slow FHIR server: the call must still be answered.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset"}`)
	}))
	t.Cleanup(slow.Close)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_DISABLED=true", "ORTHOTRIAGE_EGRESS_ALLOW_PRIVATE=true")
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(s.base+"/cds-services/hip-radiograph-screening", "application/json", strings.NewReader(
			`{"hook":"patient-view","hookInstance":"h","fhirServer":"`+slow.URL+`","prefetch":{"patient":null},"context":{"userId":"Practitioner/1","patientId":"p"}}`))
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	time.Sleep(300 * time.Millisecond)
	s.stop(t)
	if status := <-answered; status != 200 {
		t.Errorf("in-flight call answered %d during shutdown, want 200", status)
	}
}

// TestReadinessFollowsRedis starts the service before its Redis exists:
// readiness reports it degraded (still 200: hooks are answered without the
// cache), hooks keep answering, and readiness recovers by itself once Redis
// is up.
func TestReadinessFollowsRedis(t *testing.T) {
	port := testenv.FreePort(t)
	s := startService(t, buildBinary(t), fmt.Sprintf("ORTHOTRIAGE_REDIS_URL=redis://127.0.0.1:%d/0", port), "ORTHOTRIAGE_AUTH_DISABLED=true")
	if status, body := call(t, http.MethodGet, s.base+"/readyz", ""); status != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, "redis") {
		t.Fatalf("readyz without redis = %d %s, want 200 degraded naming redis", status, body)
	}
	if status, _ := call(t, http.MethodGet, s.base+"/cds-services", ""); status != 200 {
		t.Errorf("discovery without redis = %d", status)
	}
	testenv.RedisOnPort(t, port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := call(t, http.MethodGet, s.base+"/readyz", "")
		if status == 200 && strings.Contains(body, `"status":"ready"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d %s 10s after redis started", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop(t)
}

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	lib := filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
	getenv := func(k string) string {
		if k == "ORTHOTRIAGE_ONNXRUNTIME_LIBRARY" {
			return lib
		}
		return ""
	}
	if err := run(t.Context(), []string{"version"}, getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"orthotriage ", "commit: ", "go: go1.", "onnxruntime: 1."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(t.Context(), []string{"frobnicate"}, getenv, &out, &errb); err == nil || !strings.Contains(errb.String(), "orthotriage serve") {
		t.Errorf("unknown command: err %v, usage %q", err, errb.String())
	}
	if err := run(t.Context(), []string{"serve", "--listen", "nowhere"}, getenv, &out, &errb); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("bad listen: err %v", err)
	}
}

// A model that cannot be loaded stops the service at start with a message
// naming the file.
func TestServeFailsFastOnABrokenModel(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	fsys, err := models.FS("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	// The manifest and the hip localiser, but not the network.
	for _, name := range []string{"manifest.json", "localiser.onnx"} {
		b, _ := fs.ReadFile(fsys, name)
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	lib := filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
	for _, tc := range []struct{ env, want string }{
		{"ORTHOTRIAGE_ONNXRUNTIME_MODELS=" + dir, filepath.Join(dir, "model.onnx")},
		{"ORTHOTRIAGE_ONNXRUNTIME_MODELS=hip-999", `no shipped model "hip-999"`},
		{"ORTHOTRIAGE_ONNXRUNTIME_LIBRARY=" + filepath.Join(dir, "libonnxruntime.so"), "onnxruntime.library"},
	} {
		cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--auth-disabled")
		cmd.Env = append(os.Environ(), "ORTHOTRIAGE_ONNXRUNTIME_LIBRARY="+lib, tc.env)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := testenv.Start(t, cmd); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		out := buf.Bytes()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: exit %v, output lacks %q:\n%s", tc.env, err, tc.want, out)
		}
	}
}

// TestEgressPolicy calls hooks whose fhirServer points at internal
// addresses: the service must refuse to connect.
func TestEgressPolicy(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(internal.Close)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_DISABLED=true")
	for _, server := range []string{"http://169.254.169.254/latest/fhir", internal.URL + "/fhir", "http://[::1]:9/fhir"} {
		status, body := call(t, http.MethodPost, s.base+"/cds-services/hip-radiograph-screening",
			`{"hook":"patient-view","hookInstance":"h","fhirServer":"`+server+`","context":{"userId":"Practitioner/1","patientId":"p"}}`)
		if status != 412 || !strings.Contains(body, "FHIR server not reachable") {
			t.Errorf("%s: %d %s, want 412", server, status, body)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the internal server was reached %d times", hits.Load())
	}
	if !s.logged(`"level":"ERROR","msg":"CDS client authentication is DISABLED`) {
		t.Errorf("auth.disabled was not logged loudly at start:\n%s", s.logText())
	}
	if !s.logged("address refused by the egress policy") {
		t.Errorf("no egress refusal logged:\n%s", s.logText())
	}
	s.stop(t)
}

// TestHTTPS serves with a certificate made at test time.
func TestHTTPS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_DISABLED=true", "ORTHOTRIAGE_HTTP_TLS_CERT_FILE="+certFile, "ORTHOTRIAGE_HTTP_TLS_KEY_FILE="+keyFile)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(strings.Replace(s.base, "http://", "https://", 1) + "/cds-services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS discovery: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get(s.base + "/cds-services"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered on the HTTPS port")
	}
	s.stop(t)
}

// TestBackendServicesEndToEnd: a hook without fhirAuthorization makes the
// service get a token by SMART Backend Services from an in-test token
// endpoint, which verifies the assertion against the service's own
// /.well-known/jwks.json; the FHIR test server accepts only that token.
func TestBackendServicesEndToEnd(t *testing.T) {
	const iss, backendToken = "https://ehr.example.org", "backend-access-token"
	fhirBase := testenv.FHIRServer(t, backendToken)
	patient := fhirCreate(t, fhirBase, backendToken, `{"resourceType":"Patient","gender":"male"}`)
	fhirCreate(t, fhirBase, backendToken, `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/`+patient+`"}}`)

	var serviceBase string
	var issued atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(serviceBase + "/.well-known/jwks.json")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		jwks, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		keys, err := keyfunc.NewJWKSetJSON(jwks)
		if err != nil {
			http.Error(w, "bad jwks", 500)
			return
		}
		r.ParseForm()
		_, err = jwt.Parse(r.Form.Get("client_assertion"), keys.Keyfunc, jwt.WithValidMethods([]string{"ES384"}),
			jwt.WithIssuer("orthotriage"), jwt.WithSubject("orthotriage"), jwt.WithAudience("http://"+r.Host+"/token"), jwt.WithExpirationRequired())
		if err != nil || r.Form.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		issued.Add(1)
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":300}`, backendToken)
	}))
	t.Cleanup(tokenSrv.Close)

	dir := t.TempDir()
	ehrKey := authtest.NewKey(t, "ehr-1", "RS384")
	ourKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ourKey)
	keyFile, jwks, issuers := filepath.Join(dir, "key.pem"), filepath.Join(dir, "jwks.json"), filepath.Join(dir, "issuers.yaml")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(jwks, authtest.JWKS(ehrKey), 0o600)
	os.WriteFile(issuers, []byte(fmt.Sprintf("- iss: %s\n  jwks_file: %s\n  fhir_servers: [%s]\n  backend_services:\n    token_url: %s/token\n    client_id: orthotriage\n    scope: system/*.rs\n",
		iss, jwks, fhirBase, tokenSrv.URL)), 0o600)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+issuers, "ORTHOTRIAGE_AUTH_PRIVATE_KEY_FILE="+keyFile,
		"ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8")
	serviceBase = s.base

	url := s.base + "/cds-services/hip-radiograph-screening"
	body := `{"hook":"patient-view","hookInstance":"bs-1","fhirServer":"` + fhirBase + `","context":{"userId":"Practitioner/1","patientId":"` + patient + `"}}`
	for i := range 2 {
		status, resp := call(t, http.MethodPost, url, body, authtest.Sign(t, ehrKey, authtest.Claims(iss, url), nil))
		if status != 200 {
			t.Fatalf("hook %d = %d %s", i, status, resp)
		}
	}
	if !s.logged(`"hookInstance":"bs-1","studies":1,"patient":true`) {
		t.Errorf("the FHIR data was not read with the backend token:\n%s", s.logText())
	}
	if issued.Load() != 1 {
		t.Errorf("%d tokens issued for two hook calls, want 1 (cached)", issued.Load())
	}
	s.stop(t)
	if strings.Contains(s.logText(), backendToken) {
		t.Error("the backend access token reached the logs")
	}
}
