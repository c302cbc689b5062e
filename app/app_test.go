package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
	"github.com/prometheus/client_golang/prometheus"
)

// testConfig is the service on a free loopback port with the shipped hip
// model, authentication off and loopback servers allowed.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Auth.Disabled = true
	cfg.Egress.AllowPrivate = true
	cfg.ONNXRuntime.Library = filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
	cfg.ONNXRuntime.Models = []string{"hip-000"}
	cfg.ONNXRuntime.IntraOpThreads = 1
	cfg.HTTP.ShutdownTimeout = 10 * time.Second
	return cfg
}

// logs is a service's JSON log, safe to read while it writes.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// started is an App running in this process.
type started struct {
	app  *App
	base string
	logs *logs
	stop context.CancelFunc
	done chan error // Run's answer
}

func start(t *testing.T, cfg config.Config, tune func(*App)) *started {
	t.Helper()
	l := &logs{}
	log := slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(t.Context(), cfg, log, prometheus.NewRegistry(), newRuntime(cfg.ONNXRuntime))
	if err != nil {
		t.Fatalf("%v: run `make setup` for ONNX Runtime", err)
	}
	if tune != nil {
		tune(a)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &started{app: a, base: "http://" + a.Addr().String(), logs: l, stop: stop, done: make(chan error, 1)}
	go func() { s.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		<-s.done
	})
	return s
}

// shutdown cancels Run's context and returns its answer.
func (s *started) shutdown(t *testing.T) error {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return within 30 s of its context ending:\n%s", s.logs)
		return nil
	}
}

func post(t *testing.T, url, body string, bearer ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if len(bearer) > 0 {
		req.Header.Set("Authorization", "Bearer "+bearer[0])
	}
	return do(t, req)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunAnswersAHookAndStops runs the service in this process: discovery,
// a hook call, the metrics, then a clean stop when Run's context ends.
func TestRunAnswersAHookAndStops(t *testing.T) {
	s := start(t, testConfig(t), nil)
	if status, body := get(t, s.base+"/cds-services"); status != 200 || strings.Count(body, `"id":`) != 4 {
		t.Fatalf("discovery = %d %s", status, body)
	}
	hook := `{"hook":"patient-view","hookInstance":"h1","context":{"userId":"Practitioner/1","patientId":"p1"},` +
		`"prefetch":{"patient":{"resourceType":"Patient","id":"p1"},"studies":{"resourceType":"Bundle","type":"searchset"}}}`
	if status, body := post(t, s.base+"/cds-services/hip-radiograph-screening", hook); status != 200 || body != `{"cards":[]}` {
		t.Fatalf("hook = %d %s", status, body)
	}
	_, metrics := get(t, s.base+"/metrics")
	for _, want := range []string{"orthotriage_result_cache_lookups_total 0", "orthotriage_precompute_queue_depth 0",
		"orthotriage_precompute_queue_oldest_age_seconds 0", `orthotriage_inference_batches_total{model="hip-000"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := s.shutdown(t); err != nil {
		t.Fatalf("Run = %v\n%s", err, s.logs)
	}
	if !strings.Contains(s.logs.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped line:\n%s", s.logs)
	}
}

// pacs is a DICOMweb server holding phantom radiographs; the slow ones
// answer only when released (or when the caller gives up, which is
// counted).
type pacs struct {
	*httptest.Server
	files              map[string][]byte // SOP Instance UID -> DICOM
	slow               map[string]bool
	release            chan struct{}
	asked              chan string // the SOP Instance UID of each slow request
	handlers           sync.WaitGroup
	cancelled, answers atomic.Int32
}

func newPACS(t *testing.T, cases map[int]bool) (*pacs, map[int]imaging.Radiograph) {
	p := &pacs{files: map[string][]byte{}, slow: map[string]bool{}, release: make(chan struct{}), asked: make(chan string, 10)}
	images := map[int]imaging.Radiograph{}
	for i, slow := range cases {
		img := phantom.Pelvis(3, i).Image
		var b bytes.Buffer
		if err := imaging.WriteDICOM(&b, img); err != nil {
			t.Fatal(err)
		}
		p.files[img.SOPInstanceUID], p.slow[img.SOPInstanceUID], images[i] = b.Bytes(), slow, img
	}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p, images
}

func (p *pacs) serve(w http.ResponseWriter, r *http.Request) {
	p.handlers.Add(1)
	defer p.handlers.Done()
	sop := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	data, ok := p.files[sop]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if p.slow[sop] {
		p.asked <- sop
		select {
		case <-r.Context().Done():
			p.cancelled.Add(1)
			return
		case <-p.release:
		}
	}
	p.answers.Add(1)
	w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b`)
	fmt.Fprintf(w, "--b\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--b--\r\n", data)
}

// ehr is a FHIR server serving one patient and some ImagingStudy
// resources; it holds each transaction (a write-back) until released.
type ehr struct {
	*httptest.Server
	studies          map[string]string // id -> ImagingStudy JSON
	release          chan struct{}
	writing          chan struct{} // one value per transaction begun
	written, aborted atomic.Int32
}

func newEHR(t *testing.T) *ehr {
	e := &ehr{studies: map[string]string{}, release: make(chan struct{}), writing: make(chan struct{}, 10)}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *ehr) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/":
		e.writing <- struct{}{}
		select {
		case <-r.Context().Done():
			e.aborted.Add(1)
			return
		case <-e.release:
		}
		e.written.Add(1)
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
	case r.URL.Path == "/Patient/p1":
		fmt.Fprint(w, `{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1941-03-02"}`)
	case strings.HasPrefix(r.URL.Path, "/ImagingStudy/") && e.studies[strings.TrimPrefix(r.URL.Path, "/ImagingStudy/")] != "":
		fmt.Fprint(w, e.studies[strings.TrimPrefix(r.URL.Path, "/ImagingStudy/")])
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
	}
}

// receive waits for one value on ch, up to 20 s.
func receive[T any](t *testing.T, ch <-chan T, what string, s *started) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not reach its server within 20 s:\n%s", what, s.logs)
	}
}

// imagingStudy is an ImagingStudy of patient p1 whose one instance lies
// on pacsURL (a contained Endpoint).
func imagingStudy(id, pacsURL string, im imaging.Radiograph) string {
	return fmt.Sprintf(`{"resourceType":"ImagingStudy","id":"%s","status":"available",`+
		`"contained":[{"resourceType":"Endpoint","id":"pacs","status":"active",`+
		`"connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"dicom-wado-rs"},`+
		`"payloadType":[{"text":"DICOM"}],"address":"%s"}],`+
		`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:%s"}],"subject":{"reference":"Patient/p1"},`+
		`"started":"2026-11-20T08:00:00Z","endpoint":[{"reference":"#pacs"}],`+
		`"series":[{"uid":"%s","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"%s"},`+
		`"bodySite":{"system":"http://snomed.info/sct","code":"12921003","display":"Pelvis"},`+
		`"instance":[{"uid":"%s","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:%s"}}]}]}`,
		id, pacsURL, im.StudyInstanceUID, im.SeriesInstanceUID, im.Modality, im.SOPInstanceUID, im.SOPClassUID)
}

// TestShutdownWithWorkInFlight cancels Run while a write-back waits on the
// FHIR server, a hook's study is still being retrieved in the background
// past its budget, a precompute job's study is being retrieved and another
// job is queued: the write-back finishes, the retrievals are cancelled (not
// waited out), Run returns nil, and no model session was used after it was
// closed, also once the PACS answers the abandoned retrievals (-race).
func TestShutdownWithWorkInFlight(t *testing.T) {
	const fnf, slowHook, slowJob, queued = 13, 7, 2, 4 // phantom cases of seed 3; 13 is a femoral neck fracture
	p, images := newPACS(t, map[int]bool{fnf: false, slowHook: true, slowJob: true, queued: true})
	e := newEHR(t)
	for id, c := range map[string]int{"fnf": fnf, "hook": slowHook, "job": slowJob, "queued": queued} {
		e.studies[id] = imagingStudy(id, p.URL, images[c])
	}
	cfg := testConfig(t)
	cfg.Results.WriteBack = true
	cfg.Precompute.Workers = 1
	cfg.Precompute.AdminToken = "admin-secret-0123456789abcdef"
	s := start(t, cfg, func(a *App) {
		a.drains = drains{workers: 10 * time.Second, analyses: 10 * time.Second, writeBacks: 10 * time.Second}
	})
	call := func(hook, context, prefetch string) string {
		t.Helper()
		service := "hip-radiograph-screening"
		if hook != "patient-view" {
			service += "-imagingstudy-available"
		}
		status, body := post(t, s.base+"/cds-services/"+service, `{"hook":"`+hook+`","hookInstance":"h","fhirServer":"`+e.URL+
			`","fhirAuthorization":{"access_token":"t","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"ehr"},`+
			`"context":`+context+prefetch+`}`)
		if status != 200 {
			t.Fatalf("%s hook = %d %s\n%s", hook, status, body, s.logs)
		}
		return body
	}
	// A fracture: a card, and its write-back held by the FHIR server.
	if body := call("org.orthotriage.imagingstudy-available", `{"patientId":"p1","studies":["ImagingStudy/fnf"]}`, ""); !strings.Contains(body, `"indicator":"critical"`) {
		t.Fatalf("fracture study: %s\n%s", body, s.logs)
	}
	receive(t, e.writing, "the write-back", s)
	// A study whose retrieval outlasts the hook's budget: answered pending.
	call("patient-view", `{"userId":"Practitioner/1","patientId":"p1"}`, `,"prefetch":{"patient":{"resourceType":"Patient","id":"p1"},`+
		`"studies":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":`+e.studies["hook"]+`}]}}`)
	// Two precompute jobs: one being retrieved, one queued behind it.
	if status, body := post(t, s.base+"/api/v1/studies/analyze", `{"fhirServer":"`+e.URL+`","studies":["ImagingStudy/job","ImagingStudy/queued"]}`,
		cfg.Precompute.AdminToken.Reveal()); status != 202 {
		t.Fatalf("analyze = %d %s", status, body)
	}
	receive(t, p.asked, "the hook's retrieval", s)
	receive(t, p.asked, "the job's retrieval", s)

	time.AfterFunc(300*time.Millisecond, func() { close(e.release) }) // the write-back ends during the drain
	if err := s.shutdown(t); err != nil {
		t.Fatalf("Run = %v\n%s", err, s.logs)
	}
	if e.written.Load() != 1 || e.aborted.Load() != 0 || !strings.Contains(s.logs.String(), `"msg":"write-back stored"`) {
		t.Errorf("write-back: %d written, %d aborted; want the one in flight finished", e.written.Load(), e.aborted.Load())
	}
	if p.cancelled.Load() != 2 {
		t.Errorf("%d slow retrievals cancelled by the shutdown, want 2 (the hook's, the job's)", p.cancelled.Load())
	}
	// The abandoned retrievals' answers now arrive: nothing may reach a
	// closed session.
	close(p.release)
	p.handlers.Wait()
	time.Sleep(500 * time.Millisecond)
	for _, m := range s.app.models {
		if n := m.UsesAfterClose(); n != 0 {
			t.Errorf("model %s used %d times after close\n%s", m.Manifest().ID, n, s.logs)
		}
	}
	for _, want := range []string{`"msg":"precompute job given back: worker stopping"`, `"msg":"stopped"`} {
		if !strings.Contains(s.logs.String(), want) {
			t.Errorf("logs lack %s", want)
		}
	}
}
