package api_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/auth/authtest"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/store"
	"github.com/prometheus/client_golang/prometheus"
)

// verifierCheck is the real JWT verifier for one issuer whose key signs
// the test's tokens, as main wires it.
func verifierCheck(t *testing.T, iss string, key authtest.Key) func(context.Context, string, string) (cds.Caller, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, authtest.JWKS(key), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	v, err := auth.NewVerifier(t.Context(), []auth.Issuer{{ID: iss, JWKSFile: file}}, store.NewMemoryReplay(1000), 30*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, token, aud string) (cds.Caller, error) {
		c, err := v.Verify(ctx, token, aud)
		return cds.Caller{Issuer: c.Issuer}, err
	}
}

// TestAudienceNeverFromTheRequest: a token minted for another service is
// refused, whatever Host or X-Forwarded-* headers the caller forges.
func TestAudienceNeverFromTheRequest(t *testing.T) {
	const iss, public, other = "https://ehr.example.org", "https://cds.example.org", "other-service.example.org"
	key := authtest.NewKey(t, "k1", "ES256")
	check := verifierCheck(t, iss, key)
	tests := []struct {
		name       string
		publicBase string
		aud        string
		headers    []string
		wantStatus int
	}{
		{name: "aud of the configured public URL, any Host", publicBase: public, aud: public + "/cds-services",
			headers: []string{"Host", other}, wantStatus: 200},
		{name: "aud of another host with that Host forged, no public URL", aud: "http://" + other + "/cds-services",
			headers: []string{"Host", other}, wantStatus: 401},
		{name: "aud of another host with that Host forged", publicBase: public, aud: "http://" + other + "/cds-services",
			headers: []string{"Host", other}, wantStatus: 401},
		{name: "aud of another host with X-Forwarded-Host forged", publicBase: public, aud: "https://" + other + "/cds-services",
			headers: []string{"X-Forwarded-Host", other, "X-Forwarded-Proto", "https"}, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(o *api.Options) {
				o.Authenticate = check
				o.PublicBaseURL = tt.publicBase
			})
			token := authtest.Sign(t, key, authtest.Claims(iss, tt.aud), nil)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/cds-services", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			for i := 0; i+1 < len(tt.headers); i += 2 {
				if tt.headers[i] == "Host" {
					req.Host = tt.headers[i+1]
					continue
				}
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

// TestBearerSchemeAndChallenge: the scheme name is case-insensitive, and
// every 401, of the CDS endpoints and of the precompute endpoints, names it
// in WWW-Authenticate.
func TestBearerSchemeAndChallenge(t *testing.T) {
	const adminToken = "admin-token-0123456789"
	var queued int
	s := newServer(t, func(o *api.Options) {
		o.PublicBaseURL = "https://cds.example.org"
		o.Authenticate = func(_ context.Context, token, _ string) (cds.Caller, error) {
			if token != "good" {
				return cds.Caller{}, errors.New("unauthorized: signature invalid")
			}
			return cds.Caller{Issuer: "https://ehr.example.org"}, nil
		}
		o.Precompute = &api.Precompute{
			AdminToken: adminToken,
			Enqueue:    func(context.Context, string, string) error { queued++; return nil },
		}
	})
	tests := []struct {
		name          string
		authorization string
		wantStatus    int
	}{
		{name: "Bearer", authorization: "Bearer good", wantStatus: 200},
		{name: "lower case", authorization: "bearer good", wantStatus: 200},
		{name: "upper case", authorization: "BEARER good", wantStatus: 200},
		{name: "two spaces", authorization: "Bearer  good", wantStatus: 200},
		{name: "wrong token", authorization: "bearer bad", wantStatus: 401},
		{name: "other scheme", authorization: "Basic good", wantStatus: 401},
		{name: "no space", authorization: "Bearergood", wantStatus: 401},
		{name: "scheme only", authorization: "Bearer", wantStatus: 401},
		{name: "none", wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := []struct {
				what, method, path, body, authorization string
			}{
				{"discovery", http.MethodGet, "/cds-services", "", tt.authorization},
				{"analyze", http.MethodPost, "/api/v1/studies/analyze", `{"fhirServer":"https://ehr.example.org/fhir","studies":["ImagingStudy/1"]}`,
					strings.Replace(tt.authorization, "good", adminToken, 1)},
			}
			for _, c := range calls {
				var headers []string
				if c.authorization != "" {
					headers = []string{"Authorization", c.authorization}
				}
				r := s.do(t, c.method, c.path, jsonType, c.body, headers...)
				want := tt.wantStatus
				if want == 200 && c.what == "analyze" {
					want = http.StatusAccepted
				}
				if r.status != want {
					t.Errorf("%s: status = %d, want %d; body %s", c.what, r.status, want, r.body)
				}
				if got := r.header.Get("WWW-Authenticate"); (r.status == 401) != (got == "Bearer") {
					t.Errorf("%s: %d with WWW-Authenticate %q, want Bearer on every 401 only", c.what, r.status, got)
				}
				if r.status == 401 && r.body != "" {
					t.Errorf("%s: 401 with body %q, want a bare 401", c.what, r.body)
				}
			}
		})
	}
}

// randomMethod is a valid HTTP method token of n upper-case letters.
func randomMethod(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('A' + rng.IntN(26))
	}
	return string(b)
}

// seriesOf counts the series of each metric family in reg, and collects
// the values of one label.
func seriesOf(t *testing.T, reg *prometheus.Registry, label string) (map[string]int, map[string]bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, values := map[string]int{}, map[string]bool{}
	for _, f := range families {
		series[f.GetName()] += len(f.GetMetric())
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					values[l.GetValue()] = true
				}
			}
		}
	}
	return series, values
}

// TestMetricLabelsAreBounded sends requests with random methods, long and
// short, to matched and unmatched routes: the method label takes a fixed
// set of values, the logs never carry the raw method, and the answers echo
// it bounded.
func TestMetricLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	s := newServer(t, func(o *api.Options) {
		o.Registry = reg
		o.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/healthz", "/cds-services", "/cds-services/hip-radiograph-screening", "/nowhere/" + strings.Repeat("p", 5000)}
	var longest int
	for i := range 200 {
		n := 3 + rng.IntN(12)
		if i%20 == 0 {
			n = 10 << 10
		}
		method := randomMethod(rng, n)
		r := s.do(t, method, paths[i%len(paths)], "", "")
		if r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
			t.Fatalf("%d-byte method on %s: status %d, want 405 or 404", n, paths[i%len(paths)], r.status)
		}
		longest = max(longest, len(r.body))
		if n > 1000 && strings.Contains(logs.String(), method[:1000]) {
			t.Fatalf("a raw %d-byte method reached the logs", n)
		}
	}
	if longest > 2048 {
		t.Errorf("an error answer of %d bytes: the method or path is echoed unbounded", longest)
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		s.do(t, m, "/healthz", "", "")
	}
	series, methods := seriesOf(t, reg, "method")
	allowed := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"CONNECT": true, "OPTIONS": true, "TRACE": true, "other": true}
	for m := range methods {
		if !allowed[m] {
			t.Errorf("method label %.40q is not a standard method or other", m)
		}
	}
	// 4 routes (3 templates and unmatched) x 3 methods (GET, POST, other) x
	// a few statuses is the most a bounded set makes here.
	if n := series["orthotriage_http_requests_total"]; n > 12 {
		t.Errorf("%d series of orthotriage_http_requests_total after 200 random methods, want at most 12", n)
	}
	t.Logf("series: requests %d, duration %d; method labels %v", series["orthotriage_http_requests_total"], series["orthotriage_http_request_duration_seconds"], methods)
}

// TestReadinessAnswersWhileACheckHangs: a check that blocks for 2 s does
// not hold /readyz, which answers with the last known state before the
// check returns.
func TestReadinessAnswersWhileACheckHangs(t *testing.T) {
	var calls atomic.Int32
	entered, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	hanging := func(ctx context.Context) error {
		if calls.Add(1) == 1 {
			return nil // healthy when first checked
		}
		close(entered)
		select {
		case <-release:
		case <-time.After(2 * time.Second):
		}
		close(returned)
		return nil
	}
	ready := api.NewReadiness([]api.Check{{Name: "redis", Check: hanging, Degrades: true}}, time.Hour, 10*time.Second)
	ready.Refresh(t.Context())
	s := newServer(t, func(o *api.Options) { o.Ready = ready })
	go ready.Refresh(context.WithoutCancel(t.Context()))
	<-entered
	answered := make(chan response, 1)
	go func() { answered <- s.do(t, http.MethodGet, "/readyz", "", "") }()
	select {
	case r := <-answered:
		close(release)
		if r.status != 200 || !strings.Contains(r.body, `"redis":"ok"`) {
			t.Errorf("/readyz = %d %s, want 200 with the last known state", r.status, r.body)
		}
	case <-returned:
		t.Fatal("/readyz waited for the hanging check to return")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
