package imaging

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
)

// recorder is an in-process PACS and FHIR server that records each
// request's path, as a server would normalise it, and Authorization.
type recorder struct {
	mu       sync.Mutex
	requests []string // "cleaned path|Authorization"
}

func (rec *recorder) handler(dcm []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.requests = append(rec.requests, path.Clean(r.URL.Path)+"|"+r.Header.Get("Authorization"))
		rec.mu.Unlock()
		switch p := path.Clean(r.URL.Path); {
		case strings.HasPrefix(p, "/dicom-web/redirect"):
			http.Redirect(w, r, "/dicom-web-admin/studies/1/series/2/instances/3", http.StatusFound)
		case strings.HasPrefix(p, "/fhir/redirect"):
			http.Redirect(w, r, "/fhir-admin/Binary/1", http.StatusFound)
		case strings.HasPrefix(p, "/dicom-web"):
			w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b`)
			w.Write([]byte("--b\r\nContent-Type: application/dicom\r\n\r\n"))
			w.Write(dcm)
			w.Write([]byte("\r\n--b--\r\n"))
		default:
			w.Header().Set("Content-Type", "application/dicom")
			w.Write(dcm)
		}
	})
}

func (rec *recorder) take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := rec.requests
	rec.requests = nil
	return r
}

// TestSiblingPathsAreRefused: an Endpoint address or attachment url is
// permitted only under a registered base (or the FHIR base) by whole path
// segments and after normalisation, so a sibling path (/dicom-web-admin,
// /fhir-admin), a dot segment, an encoded slash or userinfo is refused before
// any connection, and neither a redirect nor the EHR's token leaves the base.
func TestSiblingPathsAreRefused(t *testing.T) {
	var dcm bytes.Buffer
	if err := WriteDICOM(&dcm, phantom(8, 8, 12, false)); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	srv := httptest.NewServer(rec.handler(dcm.Bytes()))
	t.Cleanup(srv.Close)
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	bound := Access{FHIRBase: srv.URL + "/fhir", Token: "ehr-token", AllowedBases: []string{srv.URL + "/dicom-web"}}
	r := NewRetriever(RetrieverOptions{Retries: -1})
	ref := InstanceRef{StudyInstanceUID: "1", SeriesInstanceUID: "2", SOPInstanceUID: "3"}

	for _, tt := range []struct{ name, address string }{
		{name: "sibling of the DICOMweb base", address: srv.URL + "/dicom-web-admin"},
		{name: "sibling without a separator", address: srv.URL + "/dicom-webX"},
		{name: "sibling of the FHIR base", address: srv.URL + "/fhir-admin"},
		{name: "dot-dot segment", address: srv.URL + "/dicom-web/../admin"},
		{name: "encoded dot-dot", address: srv.URL + "/dicom-web/%2e%2e/admin"},
		{name: "encoded slash", address: srv.URL + "/dicom-web%2F..%2Fadmin"},
		{name: "userinfo", address: "http://admin:pw@" + hostPort + "/dicom-web"},
		{name: "redirect to a sibling path", address: srv.URL + "/dicom-web/redirect"},
	} {
		t.Run("endpoint: "+tt.name, func(t *testing.T) {
			_, err := r.Retrieve(t.Context(), wadoEndpoint(tt.address, false), ref, bound, 1)
			if err == nil {
				t.Error("retrieved")
			}
			for _, q := range rec.take() {
				if !strings.HasPrefix(q, "/dicom-web/") {
					t.Errorf("request outside the registered base (path|Authorization): %q", q)
				}
			}
		})
	}
	for _, tt := range []struct{ name, url string }{
		{name: "sibling of the FHIR base", url: srv.URL + "/fhir-admin/Binary/1"},
		{name: "dot-dot segment", url: srv.URL + "/fhir/../fhir-admin/Binary/1"},
		{name: "encoded dot-dot", url: srv.URL + "/fhir/%2E%2E/fhir-admin/Binary/1"},
		{name: "relative url climbing out", url: "../fhir-admin/Binary/1"},
		{name: "userinfo", url: "http://u:p@" + hostPort + "/fhir/Binary/1"},
		{name: "redirect to a sibling path", url: srv.URL + "/fhir/redirect"},
	} {
		t.Run("attachment: "+tt.name, func(t *testing.T) {
			att := `{"resourceType":"Media","status":"completed","content":{"contentType":"application/dicom","url":"` + tt.url + `"}}`
			if _, err := r.FromResource(t.Context(), json.RawMessage(att), bound); err == nil {
				t.Error("retrieved")
			}
			for _, q := range rec.take() {
				if !strings.HasPrefix(q, "/fhir/") {
					t.Errorf("request outside the FHIR base (path|Authorization): %q", q)
				}
			}
		})
	}
	t.Run("without a tenant binding the token stays under the FHIR base", func(t *testing.T) {
		open := Access{FHIRBase: srv.URL + "/fhir", Token: "ehr-token"}
		for _, u := range []string{srv.URL + "/fhir-admin/Binary/1", srv.URL + "/fhir/Binary/1", srv.URL + "/fhir/redirect"} {
			att := `{"resourceType":"Media","status":"completed","content":{"contentType":"application/dicom","url":"` + u + `"}}`
			if _, err := r.FromResource(t.Context(), json.RawMessage(att), open); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"/fhir-admin/Binary/1|", "/fhir/Binary/1|Bearer ehr-token", "/fhir/redirect|Bearer ehr-token", "/fhir-admin/Binary/1|"}
		if got := rec.take(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("requests (path|Authorization) %q, want %q: the token on /fhir only, also after a redirect", got, want)
		}
	})
	t.Run("under the registered base: retrieved", func(t *testing.T) {
		if _, err := r.Retrieve(t.Context(), wadoEndpoint(srv.URL+"/dicom-web", false), ref, bound, 1); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); len(got) != 1 || got[0] != "/dicom-web/studies/1/series/2/instances/3|Bearer ehr-token" {
			t.Errorf("requests %q", got)
		}
	})
}

// TestCredentialsStayUnderTheirBase: configured DICOMweb credentials go to
// addresses under their base by whole segments and origin, never to a
// sibling path or a host that merely starts with the base's.
func TestCredentialsStayUnderTheirBase(t *testing.T) {
	r := NewRetriever(RetrieverOptions{Credentials: []Credential{
		{BaseURL: "https://pacs.example.org", Username: "u", Password: "p"},
		{BaseURL: "https://vna.example.org/dicom-web", Token: "vna-token"},
	}})
	tests := []struct {
		name, address, want string
	}{
		{name: "under the base", address: "https://vna.example.org/dicom-web/studies/1", want: "Bearer vna-token"},
		{name: "host and port normalised", address: "https://VNA.example.org:443/dicom-web", want: "Bearer vna-token"},
		{name: "sibling path", address: "https://vna.example.org/dicom-webX"},
		{name: "sibling path with a dash", address: "https://vna.example.org/dicom-web-admin/studies/1"},
		{name: "dot-dot segment", address: "https://vna.example.org/dicom-web/../admin"},
		{name: "host that starts like the base's", address: "https://pacs.example.org.evil.example/wado"},
		{name: "userinfo host trick", address: "https://pacs.example.org@evil.example/wado"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.authorization(wadoEndpoint(tt.address, false), Access{}); got != tt.want {
				t.Errorf("Authorization %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRetrievalErrorsNameNoURL: failed DICOMweb and attachment retrievals
// return errors naming the operation, the origin and the status, never the
// path or query (UIDs, ids) of the URL.
func TestRetrievalErrorsNameNoURL(t *testing.T) {
	const secret, studyUID = "pat-secret-123", "2.25.777001"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "json"):
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write([]byte(`{"resourceType":"OperationOutcome"}`))
		case strings.Contains(r.URL.Path, "busy"):
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	r := NewRetriever(RetrieverOptions{Retries: 1, Backoff: 1})
	ref := InstanceRef{StudyInstanceUID: studyUID, SeriesInstanceUID: studyUID + ".1", SOPInstanceUID: studyUID + ".1.1"}
	acc := Access{FHIRBase: srv.URL + "/fhir", Token: "t"}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, studyUID) || !strings.Contains(msg, want) {
			t.Errorf("error %q: want %q, without the patient id or study UID", msg, want)
		}
	}
	for _, tt := range []struct{ name, address, want string }{
		{name: "404", address: srv.URL + "/pacs/" + secret + "/dicom-web", want: "WADO-RS retrieve instance at " + srv.URL + ": answered 404"},
		{name: "503 after retries", address: srv.URL + "/busy/" + secret, want: "answered 503"},
		{name: "connection refused", address: closed.URL + "/pacs/" + secret, want: "Get " + closed.URL + ": dial tcp"},
		{name: "study URL of another study", address: srv.URL + "/pacs/" + secret + "/studies/2.25.999", want: "names another study"},
	} {
		t.Run("WADO-RS "+tt.name, func(t *testing.T) {
			_, err := r.Retrieve(t.Context(), wadoEndpoint(tt.address, false), ref, acc, 1)
			check(t, err, tt.want)
		})
	}
	for _, tt := range []struct{ name, url, want string }{
		{name: "404", url: srv.URL + "/fhir/Binary/" + secret + "?patient=" + secret, want: "attachment GET at " + srv.URL + ": answered 404"},
		{name: "JSON without data", url: "Binary/json-" + secret, want: "returned JSON without Binary data"},
		{name: "connection refused", url: closed.URL + "/Binary/" + secret, want: "dial tcp"},
		{name: "bad url", url: "http://[::1/" + secret, want: "does not parse"},
	} {
		t.Run("attachment "+tt.name, func(t *testing.T) {
			att := `{"resourceType":"Media","status":"completed","content":{"contentType":"image/png","url":"` + tt.url + `"}}`
			_, err := r.FromResource(t.Context(), json.RawMessage(att), acc)
			check(t, err, tt.want)
			if !errors.Is(err, ErrNoImage) {
				t.Errorf("error %v is not ErrNoImage", err)
			}
		})
	}
}
