package smarttest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		name  string
		scope string
		want  rule
		ok    bool
	}{
		{name: "v2 patient read and search", scope: "patient/ImagingStudy.rs", want: rule{patient: true, typ: "ImagingStudy", perms: "rs"}, ok: true},
		{name: "v2 user all", scope: "user/Task.cruds", want: rule{typ: "Task", perms: "cruds"}, ok: true},
		{name: "v2 wildcard type", scope: "patient/*.rs", want: rule{patient: true, typ: "*", perms: "rs"}, ok: true},
		{name: "v1 read", scope: "patient/Observation.read", want: rule{patient: true, typ: "Observation", perms: "rs"}, ok: true},
		{name: "v1 write", scope: "user/Observation.write", want: rule{typ: "Observation", perms: "cud"}, ok: true},
		{name: "v1 all", scope: "user/*.*", want: rule{typ: "*", perms: "cruds"}, ok: true},
		{name: "letters out of order", scope: "patient/Observation.rc"},
		{name: "a letter twice", scope: "patient/Observation.rr"},
		{name: "unknown letter", scope: "patient/Observation.rx"},
		{name: "no permissions", scope: "patient/Observation."},
		{name: "granular query", scope: "patient/Observation.rs?category=laboratory"},
		{name: "system level", scope: "system/*.rs"},
		{name: "lower-case type", scope: "patient/observation.rs"},
		{name: "no type", scope: "patient/.rs"},
		{name: "context scope", scope: "launch/patient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRule(tt.scope)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseRule(%q) = %+v, %v; want %+v, %v", tt.scope, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestGrantAllows(t *testing.T) {
	g, unknown := newGrant("launch openid patient/ImagingStudy.rs user/ImagingStudy.r patient/Observation.cru patient/Observation.cru offline_access")
	if d := cmp.Diff([]string{"launch", "openid", "patient/ImagingStudy.rs", "user/ImagingStudy.r", "patient/Observation.cru"}, g.scopes); d != "" {
		t.Errorf("granted (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"offline_access"}, unknown); d != "" {
		t.Errorf("unknown (-want +got):\n%s", d)
	}
	tests := []struct {
		typ, perms      string
		ok, compartment bool
	}{
		{typ: "ImagingStudy", perms: "r", ok: true},                    // user/ wins
		{typ: "ImagingStudy", perms: "s", ok: true, compartment: true}, // only patient/ searches
		{typ: "Observation", perms: "uc", ok: true, compartment: true}, // PUT
		{typ: "Observation", perms: "d"},                               // no d
		{typ: "Patient", perms: "r"},                                   // no scope
	}
	for _, tt := range tests {
		ok, compartment := g.allows(tt.typ, tt.perms)
		if ok != tt.ok || compartment != tt.compartment {
			t.Errorf("allows(%s, %s) = %v, %v; want %v, %v", tt.typ, tt.perms, ok, compartment, tt.ok, tt.compartment)
		}
	}
}

func TestInCompartment(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		want     bool
	}{
		{name: "ImagingStudy of the patient", resource: `{"resourceType":"ImagingStudy","subject":{"reference":"Patient/p1"}}`, want: true},
		{name: "ImagingStudy of another", resource: `{"resourceType":"ImagingStudy","subject":{"reference":"Patient/p2"}}`},
		{name: "absolute reference with history", resource: `{"resourceType":"DiagnosticReport","subject":{"reference":"http://x/fhir/Patient/p1/_history/2"}}`, want: true},
		{name: "Task for the patient", resource: `{"resourceType":"Task","for":{"reference":"Patient/p1"}}`, want: true},
		{name: "Task for another", resource: `{"resourceType":"Task","for":{"reference":"Patient/p2"}}`},
		{name: "subject a Group", resource: `{"resourceType":"Observation","subject":{"reference":"Group/p1"}}`},
		{name: "no subject", resource: `{"resourceType":"Observation"}`},
		{name: "subject not an object", resource: `{"resourceType":"Observation","subject":"Patient/p1"}`},
		{name: "the patient", resource: `{"resourceType":"Patient","id":"p1"}`, want: true},
		{name: "another patient", resource: `{"resourceType":"Patient","id":"p2"}`},
		{name: "Provenance", resource: `{"resourceType":"Provenance","target":[{"reference":"Observation/o"}]}`, want: true},
		{name: "Binary of the patient", resource: `{"resourceType":"Binary","contentType":"text/html","securityContext":{"reference":"Patient/p1"}}`, want: true},
		{name: "Binary of another", resource: `{"resourceType":"Binary","contentType":"text/html","securityContext":{"reference":"Patient/p2"}}`},
		{name: "Binary without a securityContext", resource: `{"resourceType":"Binary","contentType":"text/html"}`},
		{name: "Binary with a subject", resource: `{"resourceType":"Binary","contentType":"text/html","subject":{"reference":"Patient/p1"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parseResource([]byte(tt.resource))
			if err != nil {
				t.Fatal(err)
			}
			if got := inCompartment(res, "p1"); got != tt.want {
				t.Errorf("inCompartment = %v, want %v", got, tt.want)
			}
			if inCompartment(res, "") {
				t.Error("in the compartment of no patient")
			}
		})
	}
}

func FuzzNewGrant(f *testing.F) {
	for _, s := range []string{"launch openid patient/ImagingStudy.rs", "user/*.cruds patient/Observation.read", "patient/.", "/.", "patient/A.rs?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		g, _ := newGrant(scope)
		for _, r := range g.rules {
			if r.perms == "" || strings.Trim(r.perms, "cruds") != "" {
				t.Errorf("rule %+v from %q", r, scope)
			}
		}
	})
}

// FuzzServer sends arbitrary requests, with a patient/ and a user/ token
// and without one, to every endpoint; the upstream answers 404 to all.
// Nothing may panic, and the upstream's token never comes back.
func FuzzServer(f *testing.F) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome"}`))
	}))
	f.Cleanup(upstream.Close)
	s := Start(f, Options{Upstream: upstream.URL + "/fhir/R4", UpstreamToken: "up-secret", RedirectPrefix: "http://app/"})
	tokens := []string{"", s.Token("p1", "patient/*.cruds"), s.Token("", "user/*.cruds")}
	handler := s.srv.Config.Handler
	seeds := []struct{ method, target, body string }{
		{"GET", "/fhir/R4/ImagingStudy/1", ""},
		{"GET", "/fhir/R4/ImagingStudy?patient=p1,p2", ""},
		{"PUT", "/fhir/R4/Observation/o1", `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`},
		{"POST", "/fhir/R4", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","id":"a"},"request":{"method":"PUT","url":"Observation/a"}},{"request":{"method":"DELETE","url":"Observation/b"}}]}`},
		{"POST", "/fhir/R4/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"http://x/fhir/R4/Observation"}},null]}`},
		{"GET", "/auth/authorize?response_type=code&client_id=orthotriage&redirect_uri=http://app/x&scope=openid&state=s&aud=x", ""},
		{"POST", "/auth/token", "grant_type=authorization_code&code=x&code_verifier=y"},
		{"OPTIONS", "/fhir/R4/Patient", ""},
		{"GET", "/fhir/R4/%zz", ""},
	}
	for _, sd := range seeds {
		for i := range tokens {
			f.Add(sd.method, sd.target, sd.body, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, method, target, body string, which uint8) {
		req, err := http.NewRequest(method, "http://smarttest"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		if tok := tokens[int(which)%len(tokens)]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if method == http.MethodPost && strings.HasPrefix(target, "/auth/") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "up-secret") {
			t.Errorf("the upstream token leaked: %s", rec.Body)
		}
	})
}
