package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/cds/cdstest"
	"github.com/orthotriage/orthotriage/store"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

type testServer struct {
	*httptest.Server
	fhir     *cdstest.FHIR
	feedback *store.MemoryFeedback
}

type option func(*api.Options)

func newServer(t *testing.T, opts ...option) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fake := &cdstest.FHIR{Responses: map[string]string{}}
	fb := store.NewMemoryFeedback(100)
	o := api.Options{
		Log:      log,
		Registry: prometheus.NewRegistry(),
		CDS: cds.NewEngine(cds.EngineConfig{
			Catalog:  cds.DefaultCatalog(),
			Resolver: &cds.Resolver{FHIR: fake, MaxPages: 3, MaxStudies: 10, Log: log},
			Feedback: fb,
			Log:      log,
			Now:      time.Now,
		}),
		BodyLimit:      64 << 10,
		RequestTimeout: 5 * time.Second,
		AllowedOrigins: []string{"https://sandbox.cds-hooks.org"},
	}
	for _, f := range opts {
		f(&o)
	}
	s := httptest.NewServer(api.NewRouter(o))
	t.Cleanup(s.Close)
	return &testServer{Server: s, fhir: fake, feedback: fb}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *testServer) do(t *testing.T, method, path, contentType, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// outcomeFields decodes an OperationOutcome body and returns each issue's
// expression (or its diagnostics when it has none).
func outcomeFields(t *testing.T, r response) []string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("error Content-Type = %q, want application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string   `json:"severity"`
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if err := json.Unmarshal([]byte(r.body), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("body is not an OperationOutcome with issues: %s", r.body)
	}
	var out []string
	for _, i := range oo.Issue {
		if i.Severity != "error" || i.Code == "" {
			t.Errorf("issue %+v lacks severity error or a code", i)
		}
		if len(i.Expression) > 0 {
			out = append(out, i.Expression...)
		} else {
			out = append(out, i.Diagnostics)
		}
	}
	return out
}

const (
	pvBody = `{"hook":"patient-view","hookInstance":"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea","context":{"userId":"Practitioner/1","patientId":"p1"},` +
		`"prefetch":{"patient":{"resourceType":"Patient","id":"p1"},"studies":{"resourceType":"Bundle","type":"searchset"}}}`
	jsonType = "application/json"
)

func TestDiscoveryEndpoint(t *testing.T) {
	s := newServer(t)
	r := s.do(t, http.MethodGet, "/cds-services", "", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), jsonType) {
		t.Fatalf("GET /cds-services = %d %s", r.status, r.header.Get("Content-Type"))
	}
	var d cds.Discovery
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cds.DefaultCatalog().Discovery(), d); diff != "" {
		t.Errorf("discovery (-want +got):\n%s", diff)
	}
}

func TestHookCall(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		fhirErr     error
		wantStatus  int
		wantBody    string   // exact body for successes
		wantFields  []string // OperationOutcome issue expressions or diagnostics
	}{
		{name: "valid call answers no guidance", path: "/cds-services/hip-radiograph-screening", contentType: jsonType, body: pvBody,
			wantStatus: 200, wantBody: `{"cards":[]}`},
		{name: "charset parameter accepted", path: "/cds-services/vertebral-fracture-acuity", contentType: "application/json; charset=utf-8", body: pvBody,
			wantStatus: 200, wantBody: `{"cards":[]}`},
		{name: "unknown service", path: "/cds-services/knee-screening", contentType: jsonType, body: pvBody,
			wantStatus: 404, wantFields: []string{`no CDS service with id "knee-screening"`}},
		{name: "not JSON content type", path: "/cds-services/hip-radiograph-screening", contentType: "text/plain", body: pvBody,
			wantStatus: 415, wantFields: []string{"Content-Type must be application/json"}},
		{name: "no content type", path: "/cds-services/hip-radiograph-screening", body: pvBody,
			wantStatus: 415, wantFields: []string{"Content-Type must be application/json"}},
		{name: "malformed JSON", path: "/cds-services/hip-radiograph-screening", contentType: jsonType, body: `{"hook":`,
			wantStatus: 400, wantFields: []string{"request body is not valid JSON: unexpected EOF in hook at byte 8"}},
		{name: "every bad field named", path: "/cds-services/hip-radiograph-screening", contentType: jsonType,
			body:       `{"hook":"order-select","fhirAuthorization":{"access_token":"t","token_type":"Bearer","expires_in":60,"scope":"s","subject":"c"},"context":{}}`,
			wantStatus: 400, wantFields: []string{"hook", "hookInstance", "fhirServer"}},
		{name: "context fields per hook", path: "/cds-services/hip-radiograph-screening-imagingstudy-available", contentType: jsonType,
			body:       `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"h","context":{"studies":["Study/1"]}}`,
			wantStatus: 400, wantFields: []string{"context.patientId", "context.studies[0]"}},
		{name: "patient-view id on the other hook: 400", path: "/cds-services/hip-radiograph-screening", contentType: jsonType,
			body:       `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"h","context":{"patientId":"p1","studies":["ImagingStudy/1"]}}`,
			wantStatus: 400, wantFields: []string{"hook"}},
		{name: "needed data missing, no fhirServer: 412", path: "/cds-services/hip-radiograph-screening", contentType: jsonType,
			body:       `{"hook":"patient-view","hookInstance":"h","context":{"userId":"Practitioner/1","patientId":"p1"}}`,
			wantStatus: 412, wantFields: []string{`prefetch "studies" was not provided and no fhirServer was given to fetch it from`}},
		{name: "needed data missing, fhirServer down: 412", path: "/cds-services/hip-radiograph-screening", contentType: jsonType,
			body:       `{"hook":"patient-view","hookInstance":"h","fhirServer":"https://ehr.example.org/fhir","context":{"userId":"Practitioner/1","patientId":"p1"}}`,
			fhirErr:    orthotriage.Errorf(orthotriage.EUnavailable, "GET https://ehr.example.org/fhir/ImagingStudy?...: FHIR server not reachable"),
			wantStatus: 412, wantFields: []string{`data for "studies" could not be obtained (fetching it from fhirServer): GET https://ehr.example.org/fhir/ImagingStudy?...: FHIR server not reachable`}},
		{name: "body over the limit", path: "/cds-services/hip-radiograph-screening", contentType: jsonType,
			body:       `{"hook":"patient-view","pad":"` + strings.Repeat("x", 70<<10) + `"}`,
			wantStatus: 413, wantFields: []string{"request body larger than 65536 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			s.fhir.Err = tt.fhirErr
			r := s.do(t, http.MethodPost, tt.path, tt.contentType, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantBody != "" {
				if r.body != tt.wantBody {
					t.Errorf("body = %s, want %s", r.body, tt.wantBody)
				}
				return
			}
			if diff := cmp.Diff(tt.wantFields, outcomeFields(t, r)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMethodAndRouteErrors(t *testing.T) {
	s := newServer(t)
	if r := s.do(t, http.MethodGet, "/cds-services/hip-radiograph-screening", "", ""); r.status != 405 {
		t.Errorf("GET on a hook = %d, want 405", r.status)
	} else {
		outcomeFields(t, r)
	}
	if r := s.do(t, http.MethodGet, "/nowhere", "", ""); r.status != 404 {
		t.Errorf("GET /nowhere = %d, want 404", r.status)
	} else {
		outcomeFields(t, r)
	}
}

func TestRequestTimeout(t *testing.T) {
	s := newServer(t, func(o *api.Options) { o.RequestTimeout = 200 * time.Millisecond })
	s.fhir.Block = true
	start := time.Now()
	r := s.do(t, http.MethodPost, "/cds-services/hip-radiograph-screening", jsonType,
		`{"hook":"patient-view","hookInstance":"h","fhirServer":"https://ehr.example.org/fhir","context":{"userId":"Practitioner/1","patientId":"p1"}}`)
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("status = %d, want 412 once the FHIR fetch hits the request deadline; body %s", r.status, r.body)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("answered after %s: the request deadline did not reach the FHIR fetch", elapsed)
	}
}

func TestFeedback(t *testing.T) {
	const item = `{"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","outcome":"overridden","overrideReason":{"userComment":"known"},"outcomeTimestamp":"2026-11-24T10:15:00Z"}`
	s := newServer(t)
	path := "/cds-services/hip-radiograph-screening/feedback"
	for i := range 2 {
		if r := s.do(t, http.MethodPost, path, jsonType, `{"feedback":[`+item+`]}`); r.status != 200 || r.body != "" {
			t.Fatalf("feedback post %d = %d %q, want 200 with no body", i, r.status, r.body)
		}
	}
	if n := len(s.feedback.Events()); n != 1 {
		t.Errorf("kept %d events after posting the same feedback twice, want 1", n)
	}
	r := s.do(t, http.MethodPost, path, jsonType, `{"feedback":[{"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","outcome":"accepted","outcomeTimestamp":"yesterday"}]}`)
	if r.status != 400 {
		t.Fatalf("invalid feedback = %d, want 400", r.status)
	}
	if diff := cmp.Diff([]string{"feedback[0].acceptedSuggestions", "feedback[0].outcomeTimestamp"}, outcomeFields(t, r)); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if r := s.do(t, http.MethodPost, "/cds-services/nope/feedback", jsonType, `{"feedback":[`+item+`]}`); r.status != 404 {
		t.Errorf("feedback to an unknown service = %d, want 404", r.status)
	}
	m := s.do(t, http.MethodGet, "/metrics", "", "").body
	for _, want := range []string{
		`orthotriage_cds_feedback_total{outcome="overridden",result="recorded",service="hip-radiograph-screening"} 1`,
		`orthotriage_cds_feedback_total{outcome="overridden",result="duplicate",service="hip-radiograph-screening"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestCORS(t *testing.T) {
	s := newServer(t)
	const allowed, other = "https://sandbox.cds-hooks.org", "https://evil.example.org"
	tests := []struct {
		name, method, origin string
		wantStatus           int
		wantAllowOrigin      string
		wantAllowHeaders     bool
	}{
		{name: "preflight from an allowed origin", method: http.MethodOptions, origin: allowed, wantStatus: 204, wantAllowOrigin: allowed, wantAllowHeaders: true},
		{name: "preflight from another origin", method: http.MethodOptions, origin: other, wantStatus: 403},
		{name: "GET from an allowed origin", method: http.MethodGet, origin: allowed, wantStatus: 200, wantAllowOrigin: allowed},
		{name: "GET from another origin", method: http.MethodGet, origin: other, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := []string{"Origin", tt.origin}
			if tt.method == http.MethodOptions {
				headers = append(headers, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
			}
			r := s.do(t, tt.method, "/cds-services", "", "", headers...)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", r.status, tt.wantStatus)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.wantAllowOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllowOrigin)
			}
			h := r.header.Get("Access-Control-Allow-Headers")
			if got := strings.Contains(h, "Authorization") && strings.Contains(h, "Content-Type"); got != tt.wantAllowHeaders {
				t.Errorf("Access-Control-Allow-Headers = %q", h)
			}
		})
	}
}

func TestHealthReadinessMetrics(t *testing.T) {
	var down error
	ready := api.NewReadiness([]api.Check{{Name: "redis", Check: func(context.Context) error { return down }}}, 0, 0)
	s := newServer(t, func(o *api.Options) { o.Ready = ready })
	if r := s.do(t, http.MethodGet, "/healthz", "", ""); r.status != 200 {
		t.Errorf("/healthz = %d", r.status)
	}
	if r := s.do(t, http.MethodGet, "/readyz", "", ""); r.status != 503 || !strings.Contains(r.body, `"redis":"failing: not checked yet"`) {
		t.Errorf("/readyz before any check = %d %s, want 503 not checked yet", r.status, r.body)
	}
	ready.Refresh(t.Context())
	if r := s.do(t, http.MethodGet, "/readyz", "", ""); r.status != 200 || !strings.Contains(r.body, `"redis":"ok"`) || !strings.Contains(r.body, `"ageSeconds":{"redis":`) {
		t.Errorf("/readyz = %d %s, want 200 with redis ok and its age", r.status, r.body)
	}
	down = errors.New("dial tcp 127.0.0.1:6379: connection refused")
	ready.Refresh(t.Context())
	if r := s.do(t, http.MethodGet, "/readyz", "", ""); r.status != 503 || !strings.Contains(r.body, "connection refused") {
		t.Errorf("/readyz with redis down = %d %s, want 503 naming the failure", r.status, r.body)
	}
	s.do(t, http.MethodPost, "/cds-services/hip-radiograph-screening", jsonType, `{}`)
	s.do(t, http.MethodGet, "/cds-services/x/y/z", "", "")
	m := s.do(t, http.MethodGet, "/metrics", "", "").body
	for _, want := range []string{
		`orthotriage_http_requests_total{method="POST",route="/cds-services/:id",status="400"} 1`,
		`orthotriage_http_requests_total{method="GET",route="/readyz",status="503"} 2`,
		`orthotriage_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`orthotriage_http_request_duration_seconds_bucket{method="POST",route="/cds-services/:id",le="0.5"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRequestID(t *testing.T) {
	s := newServer(t)
	if got := s.do(t, http.MethodGet, "/healthz", "", "", "X-Request-Id", "abc-123").header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id echoed as %q", got)
	}
	if got := s.do(t, http.MethodGet, "/healthz", "", "", "X-Request-Id", "bad id!").header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Errorf("insane X-Request-Id replaced by %q", got)
	}
}

func TestAuthenticationMiddleware(t *testing.T) {
	var gotToken, gotAud string
	check := func(_ context.Context, token, aud string) (cds.Caller, error) {
		gotToken, gotAud = token, aud
		if token != "good" {
			return cds.Caller{}, errors.New("unauthorized: signature invalid")
		}
		return cds.Caller{Issuer: "https://ehr.example.org"}, nil
	}
	s := newServer(t, func(o *api.Options) {
		o.Authenticate = check
		o.PublicBaseURL = "https://cds.example.org/"
	})
	if r := s.do(t, http.MethodGet, "/cds-services?x=1", "", "", "Authorization", "Bearer good"); r.status != 200 {
		t.Fatalf("good token: %d", r.status)
	}
	if gotToken != "good" || gotAud != "https://cds.example.org/cds-services" {
		t.Errorf("checked token %q for aud %q", gotToken, gotAud)
	}
	r := s.do(t, http.MethodPost, "/cds-services/hip-radiograph-screening", jsonType, pvBody, "Authorization", "Bearer bad")
	if r.status != 401 || r.body != "" || r.header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("bad token: %d %q WWW-Authenticate %q, want a bare 401 with WWW-Authenticate: Bearer", r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
	if gotAud != "https://cds.example.org/cds-services/hip-radiograph-screening" {
		t.Errorf("aud for the hook call = %q", gotAud)
	}
	if r := s.do(t, http.MethodPost, "/cds-services/hip-radiograph-screening/feedback", jsonType, `{}`); r.status != 401 {
		t.Errorf("no token on feedback: %d", r.status)
	}
	if r := s.do(t, http.MethodGet, "/healthz", "", ""); r.status != 200 {
		t.Errorf("health needs no token, got %d", r.status)
	}
	if r := s.do(t, http.MethodOptions, "/cds-services", "", "", "Origin", "https://sandbox.cds-hooks.org", "Access-Control-Request-Method", "GET"); r.status != 204 {
		t.Errorf("CORS preflight (which carries no token) got %d", r.status)
	}
	gotToken = ""
	noBase := newServer(t, func(o *api.Options) { o.Authenticate = check })
	if r := noBase.do(t, http.MethodGet, "/cds-services", "", "", "Authorization", "Bearer good"); r.status != 401 || gotToken != "" {
		t.Errorf("without a public base URL: %d, token checked %q; want 401 before any check (the aud never comes from the request)", r.status, gotToken)
	}
}

func TestRateLimits(t *testing.T) {
	s := newServer(t, func(o *api.Options) {
		o.PerIP = api.RateLimit{Rate: 0.5, Burst: 2}
	})
	for i := range 2 {
		if r := s.do(t, http.MethodGet, "/cds-services", "", ""); r.status != 200 {
			t.Fatalf("call %d within the burst: %d", i, r.status)
		}
	}
	r := s.do(t, http.MethodGet, "/cds-services", "", "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	outcomeFields(t, r)
	if r := s.do(t, http.MethodGet, "/healthz", "", ""); r.status != 200 {
		t.Errorf("health is not rate limited, got %d", r.status)
	}

	perIssuer := newServer(t, func(o *api.Options) {
		o.PerIssuer = api.RateLimit{Rate: 0.5, Burst: 1}
		o.PublicBaseURL = "https://cds.example.org"
		o.Authenticate = func(_ context.Context, token, _ string) (cds.Caller, error) { return cds.Caller{Issuer: token}, nil }
	})
	if r := perIssuer.do(t, http.MethodGet, "/cds-services", "", "", "Authorization", "Bearer ehr-a"); r.status != 200 {
		t.Fatalf("first call of ehr-a: %d", r.status)
	}
	if r := perIssuer.do(t, http.MethodGet, "/cds-services", "", "", "Authorization", "Bearer ehr-a"); r.status != 429 {
		t.Errorf("second call of ehr-a: %d, want 429", r.status)
	}
	if r := perIssuer.do(t, http.MethodGet, "/cds-services", "", "", "Authorization", "Bearer ehr-b"); r.status != 200 {
		t.Errorf("another issuer is limited separately, got %d", r.status)
	}
}

func TestReadinessDegradesWithoutOptionalDependencies(t *testing.T) {
	var redisDown, modelsDown error
	ready := api.NewReadiness([]api.Check{
		{Name: "models", Check: func(context.Context) error { return modelsDown }},
		{Name: "redis", Check: func(context.Context) error { return redisDown }, Degrades: true},
	}, 0, 0)
	s := newServer(t, func(o *api.Options) { o.Ready = ready })
	redisDown = errors.New("connection refused")
	ready.Refresh(t.Context())
	if r := s.do(t, http.MethodGet, "/readyz", "", ""); r.status != 200 || !strings.Contains(r.body, `"status":"degraded"`) || !strings.Contains(r.body, `"redis":"failing: connection refused"`) {
		t.Errorf("/readyz with redis down = %d %s, want 200 degraded", r.status, r.body)
	}
	modelsDown = errors.New("no model loaded")
	ready.Refresh(t.Context())
	if r := s.do(t, http.MethodGet, "/readyz", "", ""); r.status != 503 || !strings.Contains(r.body, `"status":"not ready"`) {
		t.Errorf("/readyz with models down too = %d %s, want 503", r.status, r.body)
	}
}

func TestPrecomputeEndpointsAreOffWithoutTokens(t *testing.T) {
	s := newServer(t, func(*api.Options) {})
	for _, path := range []string{"/fhir/subscription", "/api/v1/studies/analyze"} {
		if r := s.do(t, http.MethodPost, path, jsonType, `{}`); r.status != 404 || !strings.Contains(r.body, "precompute.") {
			t.Errorf("%s without configured tokens = %d %s, want 404 naming the setting", path, r.status, r.body)
		}
	}
}

// TestHookCallLogsOneLine: a hook call is logged once, on its request line,
// with what the call was about (service, hook, hookInstance, studies,
// patient found), and without the patient's id.
func TestHookCallLogsOneLine(t *testing.T) {
	var logs syncBuffer
	s := newServer(t, func(o *api.Options) { o.Log = slog.New(slog.NewJSONHandler(&logs, nil)) })
	if r := s.do(t, http.MethodPost, "/cds-services/hip-radiograph-screening", jsonType, pvBody); r.status != 200 {
		t.Fatalf("hook = %d %s", r.status, r.body)
	}
	// The line is written as the handler returns, which may be just after
	// the client has the answer.
	for i := 0; i < 100 && !strings.Contains(logs.String(), `"msg":"request"`); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	var lines []map[string]any
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1 for the call:\n%s", len(lines), logs.String())
	}
	want := map[string]any{"msg": "request", "route": "/cds-services/:id", "status": 200.0, "service": "hip-radiograph-screening",
		"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "studies": 0.0, "patient": true}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("log %s = %v, want %v", k, lines[0][k], v)
		}
	}
	if strings.Contains(logs.String(), `"p1"`) {
		t.Errorf("the patient id reached the log: %s", logs.String())
	}
	// A call refused before it resolved says nothing of a hook.
	logs.Reset()
	s.do(t, http.MethodPost, "/cds-services/hip-radiograph-screening", jsonType, `{"hook":`)
	for i := 0; i < 100 && !strings.Contains(logs.String(), `"msg":"request"`); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"status":400`) {
		t.Errorf("the refused call was not logged with its status: %s", logs.String())
	}
	if strings.Contains(logs.String(), `"hook"`) {
		t.Errorf("a call that never resolved logged a hook: %s", logs.String())
	}
}
