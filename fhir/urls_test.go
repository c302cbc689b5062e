package fhir_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/fhir"
)

// recorder is an in-process FHIR server that records, for each request,
// the path as a server would normalise it and the Authorization header.
type recorder struct {
	mu       sync.Mutex
	requests []string // "cleaned path|Authorization"
}

func (rec *recorder) add(r *http.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.requests = append(rec.requests, path.Clean(r.URL.Path)+"|"+r.Header.Get("Authorization"))
}

// outside returns the requests that reached a path not under /fhir.
func (rec *recorder) outside() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, r := range rec.requests {
		if p, _, _ := strings.Cut(r, "|"); p != "/fhir" && !strings.HasPrefix(p, "/fhir/") {
			out = append(out, r)
		}
	}
	return out
}

const pageToken = "ehr-page-token"

func studyOf(id, patient string) string {
	return `{"resourceType":"ImagingStudy","id":"` + id + `","status":"available","subject":{"reference":"Patient/` + patient + `"}}`
}

func searchset(next string, resources ...string) string {
	link := ""
	if next != "" {
		link = `"link":[{"relation":"next","url":"` + next + `"}],`
	}
	var entries []string
	for _, r := range resources {
		entries = append(entries, `{"resource":`+r+`}`)
	}
	return `{"resourceType":"Bundle","type":"searchset",` + link + `"entry":[` + strings.Join(entries, ",") + `]}`
}

// TestNextLinksOutsideTheBaseAreNotFollowed resolves a patient-view whose
// prefetched first page links to a next page: only a link under the
// fhirServer base, by whole path segments, is followed, so the EHR's token
// never reaches a sibling path such as /fhir-admin on the same origin, not
// even by a redirect.
func TestNextLinksOutsideTheBaseAreNotFollowed(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		w.Header().Set("Content-Type", "application/fhir+json")
		switch {
		case r.URL.Path == "/fhir/page2":
			io.WriteString(w, searchset("", studyOf("s2", "p1")))
		case r.URL.Path == "/fhir/redirect":
			http.Redirect(w, r, "/fhir-admin/page2", http.StatusFound)
		default:
			io.WriteString(w, searchset("", studyOf("admin", "p1")))
		}
	}))
	t.Cleanup(srv.Close)
	base := srv.URL + "/fhir"
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name    string
		next    string
		studies int
	}{
		{name: "under the base: followed", next: base + "/page2", studies: 2},
		{name: "under the base, host in upper case: followed", next: "http://" + strings.ToUpper(hostPort[:1]) + hostPort[1:] + "/fhir/page2", studies: 2},
		{name: "sibling path with a dash", next: srv.URL + "/fhir-admin/page2", studies: 1},
		{name: "sibling path without a separator", next: srv.URL + "/fhirx/page2", studies: 1},
		{name: "dot-dot segment", next: base + "/../fhir-admin/page2", studies: 1},
		{name: "encoded dot-dot", next: base + "/%2e%2e/fhir-admin/page2", studies: 1},
		{name: "encoded slash", next: base + "%2F..%2Ffhir-admin/page2", studies: 1},
		{name: "userinfo", next: "http://admin:pw@" + hostPort + "/fhir/page2", studies: 1},
		{name: "relative link climbing out", next: "../fhir-admin/page2", studies: 1},
		{name: "redirect to a sibling path", next: base + "/redirect", studies: 1},
	}
	c := fhir.NewClient(5*time.Second, 1<<20, nil)
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.requests = nil
			rec.mu.Unlock()
			req, err := cds.ParseRequest([]byte(`{"hook":"patient-view","hookInstance":"h","fhirServer":"` + base + `",` +
				`"fhirAuthorization":{"access_token":"` + pageToken + `","token_type":"Bearer","expires_in":60,"scope":"patient/*.read","subject":"cds"},` +
				`"context":{"userId":"Practitioner/1","patientId":"p1"},"prefetch":{"patient":null,"studies":` + searchset(tt.next, studyOf("s1", "p1")) + `}}`))
			if err != nil {
				t.Fatal(err)
			}
			hc, err := cds.Validate(svc, req)
			if err != nil {
				t.Fatal(err)
			}
			r := &cds.Resolver{FHIR: c, MaxPages: 5, MaxStudies: 50, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			data, err := r.Resolve(t.Context(), svc, req, hc)
			if err != nil {
				t.Fatal(err)
			}
			if out := rec.outside(); len(out) > 0 {
				t.Errorf("requests outside /fhir (path|Authorization): %q", out)
			}
			if len(data.Studies) != tt.studies {
				t.Errorf("%d studies resolved, want %d", len(data.Studies), tt.studies)
			}
		})
	}
	t.Run("a followed link carries the token", func(t *testing.T) {
		rec.mu.Lock()
		rec.requests = nil
		rec.mu.Unlock()
		if _, err := c.Get(t.Context(), cds.FHIRServer{BaseURL: base, Token: pageToken}, base+"/page2"); err != nil {
			t.Fatal(err)
		}
		if len(rec.requests) != 1 || rec.requests[0] != "/fhir/page2|Bearer "+pageToken {
			t.Errorf("requests %q", rec.requests)
		}
	})
}

// TestFailedCallsLogNoPatientID runs failing FHIR reads and searches for a
// patient through the Resolver and the real client and captures the logs:
// neither they nor the returned errors may carry the patient id (in a
// path, a search parameter or a url.Error), only the resource type and the
// status.
func TestFailedCallsLogNoPatientID(t *testing.T) {
	const secret = "pat-secret-123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		switch {
		case r.URL.Path == "/fhir/Patient/"+secret && r.URL.Query().Get("fail") == "":
			io.WriteString(w, `{"resourceType":"Patient","id":"`+secret+`","gender":"female","birthDate":"1950-01-01"}`)
		case r.URL.Path == "/fhir/ImagingStudy":
			io.WriteString(w, searchset("http://"+r.Host+"/fhir?_getpages=abc&patient=Patient/"+secret, studyOf("s1", secret)))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"no page for Patient/`+secret+`"}]}`)
		}
	}))
	t.Cleanup(srv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/fhir"
	l.Close()

	tests := []struct {
		name     string
		service  string
		base     string
		prefetch string
		wantErr  bool
		wantLog  string // a line the failure must leave
	}{
		{name: "next page fails", service: "hip-radiograph-screening", base: srv.URL + "/fhir", prefetch: `{"patient":null}`, wantLog: "next page not fetched"},
		{name: "clinical searches fail", service: "vertebral-fracture-acuity", base: srv.URL + "/fhir", prefetch: `{}`, wantLog: "clinical data: DXA Observations not read"},
		{name: "server down", service: "hip-radiograph-screening", base: down, prefetch: `{}`, wantErr: true, wantLog: "patient not resolved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			r := &cds.Resolver{FHIR: fhir.NewClient(2*time.Second, 1<<20, nil), MaxPages: 5, MaxStudies: 50, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
			svc, _ := cds.DefaultCatalog().Lookup(tt.service)
			req, err := cds.ParseRequest([]byte(`{"hook":"patient-view","hookInstance":"hook-1","fhirServer":"` + tt.base + `",` +
				`"fhirAuthorization":{"access_token":"t","token_type":"Bearer","expires_in":60,"scope":"patient/*.read","subject":"cds"},` +
				`"context":{"userId":"Practitioner/1","patientId":"` + secret + `"},"prefetch":` + tt.prefetch + `}`))
			if err != nil {
				t.Fatal(err)
			}
			hc, err := cds.Validate(svc, req)
			if err != nil {
				t.Fatal(err)
			}
			data, err := r.Resolve(t.Context(), svc, req, hc)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Resolve error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("returned error names the patient: %v", err)
			}
			if data.Clinical != nil {
				data.Clinical(t.Context(), time.Now())
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs name the patient:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), tt.wantLog) || !strings.Contains(logs.String(), `"hookInstance":"hook-1"`) {
				t.Errorf("logs lack %q with the hook instance:\n%s", tt.wantLog, logs.String())
			}
		})
	}

	t.Run("client errors name the interaction and status", func(t *testing.T) {
		c := fhir.NewClient(2*time.Second, 1<<20, nil)
		for _, tc := range []struct{ base, path, want string }{
			{srv.URL + "/fhir", "Patient/" + secret + "?fail=1", "read Patient: FHIR server answered 500"},
			{srv.URL + "/fhir", "Observation?patient=Patient/" + secret, "search Observation: FHIR server answered 500"},
			{down, "ImagingStudy?patient=Patient/" + secret, "search ImagingStudy: FHIR server not reachable"},
		} {
			_, err := c.Get(t.Context(), cds.FHIRServer{BaseURL: tc.base}, tc.path)
			if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Get %s: error %v, want %q without the patient id", tc.path, err, tc.want)
			}
		}
		_, err := c.TransactionRetry(t.Context(), cds.FHIRServer{BaseURL: srv.URL + "/fhir"}, []byte(`{"resourceType":"Bundle","type":"transaction"}`), fhir.RetryPolicy{Attempts: 1})
		if orthotriage.ErrorCode(err) != orthotriage.EUnavailable || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "Patient/[id]") {
			t.Errorf("transaction error %v: want the diagnostics without the patient id", err)
		}
	})
}
