package api_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/orthotriage/orthotriage/api"
)

const testCSP = "default-src 'none'; script-src 'self'"

// withApp serves an app of two files, registered for one FHIR server.
func withApp(static bool) option {
	return func(o *api.Options) {
		a := &api.App{Config: []byte(`{"clientId":"orthotriage"}`), CSP: testCSP, ImageMaxSide: 512, WorklistMax: 10,
			Tenant: func(server string) (string, []string, bool) { return "", nil, server == "https://fhir.example.org/r4" }}
		if static {
			a.Static = fstest.MapFS{"launch.html": {Data: []byte("<!doctype html>")}, "viewer.js": {Data: []byte("//")}, "README.md": {Data: []byte("#")}}
		}
		o.App = a
	}
}

// TestAppPagesCarryTheCSP: the app's files, config.json and refusals all
// go out with the app's CSP; only the app's own kinds of file are served.
func TestAppPagesCarryTheCSP(t *testing.T) {
	s := newServer(t, withApp(true))
	for path, want := range map[string]int{"/app/launch.html": 200, "/app/viewer.js": 200, "/app/config.json": 200, "/app/": 200,
		"/app/README.md": 404, "/app/nothing.html": 404, "/app/%2e%2e/go.mod": 404} {
		r := s.do(t, http.MethodGet, path, "", "")
		if r.status != want || r.header.Get("Content-Security-Policy") != testCSP || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d (want %d), CSP %q", path, r.status, want, r.header.Get("Content-Security-Policy"))
		}
	}
	if r := s.do(t, http.MethodGet, "/app/viewer.js", "", ""); !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("viewer.js as %s", r.header.Get("Content-Type"))
	}
	if r := s.do(t, http.MethodGet, "/app", "", ""); r.status != http.StatusOK || r.body != "<!doctype html>" {
		t.Errorf("GET /app: %d %q, want the launch page after a redirect", r.status, r.body)
	}
	unbuilt := newServer(t, withApp(false))
	if r := unbuilt.do(t, http.MethodGet, "/app/launch.html", "", ""); r.status != 404 || !strings.Contains(r.body, "not built") {
		t.Errorf("unbuilt app: %d %s", r.status, r.body)
	}
}

// TestAppAPIRefusesBadCalls: every app endpoint wants a bearer token, a
// JSON body and a registered FHIR server before it asks anyone anything.
func TestAppAPIRefusesBadCalls(t *testing.T) {
	s := newServer(t, withApp(true))
	good := `{"fhirServer":"https://fhir.example.org/r4","imagingStudy":"ImagingStudy/1"}`
	for _, endpoint := range []string{"study", "image", "feedback", "worklist"} {
		path := "/api/v1/app/" + endpoint
		for name, tc := range map[string]struct {
			contentType, body string
			headers           []string
			want              int
		}{
			"no token":          {"application/json", good, nil, http.StatusUnauthorized},
			"basic auth":        {"application/json", good, []string{"Authorization", "Basic dTpw"}, http.StatusUnauthorized},
			"not JSON":          {"text/plain", good, []string{"Authorization", "Bearer t"}, http.StatusUnsupportedMediaType},
			"bad JSON":          {"application/json", `{"fhirServer":`, []string{"Authorization", "Bearer t"}, http.StatusBadRequest},
			"no server":         {"application/json", `{}`, []string{"Authorization", "Bearer t"}, http.StatusBadRequest},
			"unregistered":      {"application/json", `{"fhirServer":"https://evil.example.org/r4"}`, []string{"Authorization", "Bearer t"}, http.StatusBadRequest},
			"a server too long": {"application/json", `{"fhirServer":"https://` + strings.Repeat("a", 3000) + `"}`, []string{"Authorization", "Bearer t"}, http.StatusBadRequest},
		} {
			r := s.do(t, http.MethodPost, path, tc.contentType, tc.body, tc.headers...)
			if r.status != tc.want || r.header.Get("Cache-Control") == "" && r.status != http.StatusUnsupportedMediaType {
				t.Errorf("%s, %s: %d (want %d), Cache-Control %q: %.200s", endpoint, name, r.status, tc.want, r.header.Get("Cache-Control"), r.body)
			}
		}
	}
	if len(s.fhir.Paths()) != 0 {
		t.Errorf("a refused call reached the FHIR server: %v", s.fhir.Paths())
	}
}
