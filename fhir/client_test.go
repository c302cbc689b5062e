package fhir_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

const token = "client-test-token"

func create(t *testing.T, base, resource string) string {
	t.Helper()
	return testenv.FHIRCreate(t, base, token, resource)
}

// seed creates a patient with n studies on the FHIR test server.
func seed(t *testing.T, base string, n int) string {
	t.Helper()
	p := create(t, base, `{"resourceType":"Patient","gender":"male"}`)
	for i := range n {
		create(t, base, `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/`+p+`"},"started":"2026-11-0`+string(rune('1'+i))+`T00:00:00Z"}`)
	}
	return p
}

func TestClientAgainstFHIRServer(t *testing.T) {
	base := testenv.FHIRServer(t, token)
	patient := seed(t, base, 3)
	c := fhir.NewClient(5*time.Second, 1<<20, nil)
	server := cds.FHIRServer{BaseURL: base, Token: token}

	t.Run("read", func(t *testing.T) {
		body, err := c.Get(t.Context(), server, "Patient/"+patient)
		if err != nil || !strings.Contains(string(body), `"id":"`+patient+`"`) {
			t.Fatalf("read = %s, %v", body, err)
		}
	})
	tests := []struct {
		name   string
		server cds.FHIRServer
		path   string
		code   string
	}{
		{name: "missing resource", server: server, path: "Patient/nobody", code: orthotriage.ENotFound},
		{name: "wrong token", server: cds.FHIRServer{BaseURL: base, Token: "wrong"}, path: "Patient/" + patient, code: orthotriage.EUnauthorized},
		{name: "next link on another origin", server: server, path: "https://elsewhere.example.org/fhir/R4/Patient", code: orthotriage.EForbidden},
		{name: "next link outside the base path", server: server, path: strings.TrimSuffix(base, "/fhir/R4") + "/__health", code: orthotriage.EForbidden},
		{name: "server down", server: cds.FHIRServer{BaseURL: "http://127.0.0.1:1/fhir"}, path: "Patient/1", code: orthotriage.EUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Get(t.Context(), tt.server, tt.path)
			if got := orthotriage.ErrorCode(err); got != tt.code {
				t.Fatalf("error = %v (%s), want %s", err, got, tt.code)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "wrong") {
				t.Errorf("error %q carries the token", err)
			}
		})
	}
	t.Run("response over the size limit", func(t *testing.T) {
		small := fhir.NewClient(5*time.Second, 1024, nil)
		_, err := small.Get(t.Context(), server, "ImagingStudy?patient=Patient/"+patient)
		if orthotriage.ErrorCode(err) != orthotriage.ETooLarge {
			t.Fatalf("error = %v, want too-large", err)
		}
	})
}

// TestResolverFollowsRealNextLinks resolves a patient-view whose prefetched
// first page (one study per page) links to the rest on the FHIR server.
func TestResolverFollowsRealNextLinks(t *testing.T) {
	base := testenv.FHIRServer(t, token)
	patient := seed(t, base, 3)
	c := fhir.NewClient(5*time.Second, 1<<20, nil)
	first, err := c.Get(t.Context(), cds.FHIRServer{BaseURL: base, Token: token}, "ImagingStudy?patient=Patient/"+patient+"&_sort=-started&_count=1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(first), `"relation":"next"`) {
		t.Fatalf("first page has no next link: %s", first)
	}
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	req, err := cds.ParseRequest([]byte(`{"hook":"patient-view","hookInstance":"h","fhirServer":"` + base + `",` +
		`"fhirAuthorization":{"access_token":"` + token + `","token_type":"Bearer","expires_in":60,"scope":"patient/*.read","subject":"cds"},` +
		`"context":{"userId":"Practitioner/1","patientId":"` + patient + `"},"prefetch":{"patient":null,"studies":` + string(first) + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := cds.Validate(svc, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		maxPages, want int
	}{{maxPages: 5, want: 3}, {maxPages: 2, want: 2}} {
		r := &cds.Resolver{FHIR: c, MaxPages: tt.maxPages, MaxStudies: 50, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		data, err := r.Resolve(t.Context(), svc, req, hc)
		if err != nil {
			t.Fatal(err)
		}
		if len(data.Studies) != tt.want {
			t.Errorf("max %d pages: resolved %d studies, want %d", tt.maxPages, len(data.Studies), tt.want)
		}
	}
}

// TestClientRefusesCrossOriginRedirects uses an in-process server that
// redirects to another origin: the client must not follow it.
func TestClientRefusesCrossOriginRedirects(t *testing.T) {
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked = true }))
	t.Cleanup(other.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/fhir/Patient/1", http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	_, err := fhir.NewClient(time.Second, 1<<20, nil).Get(t.Context(), cds.FHIRServer{BaseURL: redirector.URL + "/fhir", Token: "t"}, "Patient/1")
	if err == nil || leaked {
		t.Fatalf("cross-origin redirect followed (err %v, reached other origin %v)", err, leaked)
	}
}
