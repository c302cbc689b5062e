package urlx_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/urlx"
)

func TestUnder(t *testing.T) {
	const base = "https://ehr.example.org/fhir"
	tests := []struct {
		name   string
		base   string
		target string
		ok     bool
		rest   string
	}{
		{name: "the base itself", target: "https://ehr.example.org/fhir", ok: true},
		{name: "the base with a trailing slash", target: "https://ehr.example.org/fhir/", ok: true},
		{name: "a resource", target: "https://ehr.example.org/fhir/Patient/1", ok: true, rest: "Patient/1"},
		{name: "a search with a query", target: "https://ehr.example.org/fhir/ImagingStudy?patient=Patient/1&x=/../..", ok: true, rest: "ImagingStudy"},
		{name: "a paging link on the base", target: "https://ehr.example.org/fhir?_getpages=abc", ok: true},
		{name: "a fragment is not compared", target: "https://ehr.example.org/fhir/Patient/1#x", ok: true, rest: "Patient/1"},
		{name: "base with a trailing slash", base: base + "/", target: "https://ehr.example.org/fhir/Patient/1", ok: true, rest: "Patient/1"},
		{name: "scheme and host case", target: "HTTPS://EHR.Example.ORG/fhir/Patient/1", ok: true, rest: "Patient/1"},
		{name: "explicit default port", target: "https://ehr.example.org:443/fhir/Patient/1", ok: true, rest: "Patient/1"},
		{name: "explicit default port on the base", base: "http://ehr.example.org:80/fhir", target: "http://ehr.example.org/fhir/x", ok: true, rest: "x"},
		{name: "encoded unreserved characters", target: "https://ehr.example.org/%66hir/Patient/1", ok: true, rest: "Patient/1"},
		{name: "the root base holds its origin", base: "https://ehr.example.org", target: "https://ehr.example.org/anything/x", ok: true, rest: "anything/x"},
		{name: "IPv6 host", base: "http://[::1]:8080/fhir", target: "http://[::1]:8080/fhir/Patient/1", ok: true, rest: "Patient/1"},

		{name: "sibling path with a dash", target: "https://ehr.example.org/fhir-admin/Patient/1"},
		{name: "sibling path without a separator", target: "https://ehr.example.org/fhirx"},
		{name: "a parent path", target: "https://ehr.example.org/"},
		{name: "path case differs", target: "https://ehr.example.org/FHIR/Patient/1"},
		{name: "another host", target: "https://other.example.org/fhir/Patient/1"},
		{name: "a host that starts like the base's", target: "https://ehr.example.org.evil.example/fhir/Patient/1"},
		{name: "another port", target: "https://ehr.example.org:8443/fhir/Patient/1"},
		{name: "another scheme", target: "http://ehr.example.org/fhir/Patient/1"},
		{name: "dot-dot segment", target: "https://ehr.example.org/fhir/../fhir-admin/x"},
		{name: "dot segment", target: "https://ehr.example.org/fhir/./Patient/1"},
		{name: "encoded dot-dot", target: "https://ehr.example.org/fhir/%2e%2e/fhir-admin/x"},
		{name: "upper-case encoded dot-dot", target: "https://ehr.example.org/fhir/%2E%2E/admin"},
		{name: "half-encoded dot-dot", target: "https://ehr.example.org/fhir/.%2e/admin"},
		{name: "dot-dot with a path parameter", target: "https://ehr.example.org/fhir/..;/admin"},
		{name: "encoded slash", target: "https://ehr.example.org/fhir%2F..%2Fadmin"},
		{name: "encoded slash inside the base", target: "https://ehr.example.org/fhir/Patient%2F1"},
		{name: "backslash", target: `https://ehr.example.org/fhir\..\admin`},
		{name: "encoded backslash", target: "https://ehr.example.org/fhir/%5C..%5Cadmin"},
		{name: "bad percent-encoding", target: "https://ehr.example.org/fhir/%zz"},
		{name: "userinfo", target: "https://user:pw@ehr.example.org/fhir/Patient/1"},
		{name: "userinfo that looks like the host", target: "https://ehr.example.org@evil.example/fhir/Patient/1"},
		{name: "userinfo in the base", base: "https://u:p@ehr.example.org/fhir", target: "https://ehr.example.org/fhir/Patient/1"},
		{name: "relative target", target: "/fhir/Patient/1"},
		{name: "relative base", base: "/fhir", target: "https://ehr.example.org/fhir/Patient/1"},
		{name: "scheme-relative target", target: "//ehr.example.org/fhir/Patient/1"},
		{name: "another scheme altogether", target: "ftp://ehr.example.org/fhir/Patient/1"},
		{name: "opaque URL", target: "https:ehr.example.org/fhir"},
		{name: "empty target", target: ""},
		{name: "empty base", base: "-", target: "https://ehr.example.org/fhir"},
		{name: "port out of range", target: "https://ehr.example.org:70000/fhir"},
		{name: "dot-dot in the base", base: "https://ehr.example.org/fhir/..", target: "https://ehr.example.org/fhir/../x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.base
			switch b {
			case "":
				b = base
			case "-":
				b = ""
			}
			rest, ok := urlx.Under(b, tt.target)
			if ok != tt.ok || rest != tt.rest {
				t.Errorf("Under(%q, %q) = %q, %v; want %q, %v", b, tt.target, rest, ok, tt.rest, tt.ok)
			}
		})
	}
}

func TestSameOriginAndOrigin(t *testing.T) {
	tests := []struct {
		name   string
		a, b   string
		same   bool
		origin string // Origin(a)
	}{
		{name: "paths differ", a: "https://Pacs.example.org/dicom-web/studies/1", b: "https://pacs.example.org/fhir", same: true, origin: "https://pacs.example.org"},
		{name: "default port", a: "http://pacs.example.org:80/x", b: "http://pacs.example.org", same: true, origin: "http://pacs.example.org"},
		{name: "other port", a: "https://pacs.example.org:8443/x", b: "https://pacs.example.org", origin: "https://pacs.example.org:8443"},
		{name: "leading zeros in the port", a: "https://pacs.example.org:0443/x", b: "https://pacs.example.org", same: true, origin: "https://pacs.example.org"},
		{name: "other scheme", a: "http://pacs.example.org/x", b: "https://pacs.example.org", origin: "http://pacs.example.org"},
		{name: "userinfo", a: "https://u@pacs.example.org/x", b: "https://pacs.example.org"},
		{name: "not a URL", a: "pacs.example.org", b: "pacs.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := urlx.SameOrigin(tt.a, tt.b); got != tt.same {
				t.Errorf("SameOrigin(%q, %q) = %v", tt.a, tt.b, got)
			}
			if got := urlx.Origin(tt.a); got != tt.origin {
				t.Errorf("Origin(%q) = %q, want %q", tt.a, got, tt.origin)
			}
		})
	}
}

// TestWithoutURL makes real failing requests: the error keeps its cause and
// origin, never the path or the query.
func TestWithoutURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hang.Close() })
	tests := []struct {
		name    string
		url     string
		timeout bool
	}{
		{name: "connection refused", url: "http://" + addr + "/fhir/Patient/pat-secret-123?patient=Patient/pat-secret-123"},
		{name: "timeout", url: "http://" + hang.Addr().String() + "/fhir/ImagingStudy?patient=pat-secret-123", timeout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = http.DefaultClient.Do(req)
			if err == nil {
				t.Fatal("no error")
			}
			err = urlx.WithoutURL(err)
			if strings.Contains(err.Error(), "pat-secret-123") || strings.Contains(err.Error(), "/fhir") {
				t.Errorf("error %q names the path or query", err)
			}
			if !strings.Contains(err.Error(), "http://127.0.0.1:") {
				t.Errorf("error %q does not name the origin", err)
			}
			var ue *urlx.Error
			if !errors.As(err, &ue) || ue.Op != "Get" {
				t.Errorf("error %T %v is not a *urlx.Error of Get", err, err)
			}
			if tt.timeout && (!ue.Timeout() || !errors.Is(err, context.DeadlineExceeded)) {
				t.Errorf("timeout lost: Timeout() %v, Is(DeadlineExceeded) %v", ue.Timeout(), errors.Is(err, context.DeadlineExceeded))
			}
		})
	}
	if plain := errors.New("x"); urlx.WithoutURL(plain) != plain {
		t.Error("a plain error was changed")
	}
}
