package app

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/web"
)

// TestAppCSP: the app may call only the origins of its EHRs (none when
// none is registered: never any origin), and be framed only by its own
// origin and the configured ones.
func TestAppCSP(t *testing.T) {
	cfg := config.Default()
	csp := appCSP(cfg)
	if !strings.Contains(csp, "connect-src 'self';") || !strings.Contains(csp, "frame-ancestors 'self';") || strings.Contains(csp, "https:") {
		t.Errorf("no issuers: %s", csp)
	}
	cfg.Auth.Issuers = []config.TrustedIssuer{{Iss: "https://ehr.example.org/oauth", FHIRServers: []string{"https://fhir.example.org/r4", "https://fhir.example.org/other"},
		BackendServices: &config.BackendServices{TokenURL: "https://auth.example.org/token"}}}
	cfg.CORS.AllowedOrigins = []string{"https://ehr-ui.example.org", "*"}
	csp = appCSP(cfg)
	for _, want := range []string{"connect-src 'self' https://ehr.example.org https://auth.example.org https://fhir.example.org;",
		"frame-ancestors 'self' https://ehr-ui.example.org;", "script-src 'self';", "default-src 'none';"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %s lacks %s", csp, want)
		}
	}
	cfg.App.ConnectOrigins, cfg.App.FrameAncestors = []string{"https://login.example.org"}, []string{"https://ehr-ui.example.org"}
	if csp = appCSP(cfg); !strings.Contains(csp, "connect-src 'self' https://login.example.org;") || !strings.Contains(csp, "frame-ancestors https://ehr-ui.example.org;") {
		t.Errorf("configured origins: %s", csp)
	}
}

// TestViewerURL: cards link to the built-in app only when the service
// knows its public URL, the app is on and built, and no other is named.
func TestViewerURL(t *testing.T) {
	cfg := config.Default()
	if got := viewerURL(cfg); got != "" {
		t.Errorf("no public URL: %q", got)
	}
	cfg.Auth.PublicBaseURL = "https://ot.example.org/"
	want := "https://ot.example.org/app/launch.html"
	if !web.Built() {
		want = ""
	}
	if got := viewerURL(cfg); got != want {
		t.Errorf("public URL: %q, want %q", got, want)
	}
	cfg.App.Enabled = false
	if got := viewerURL(cfg); got != "" {
		t.Errorf("app off: %q", got)
	}
	cfg.Results.ViewerURL = "https://viewer.example.org/launch"
	if got := viewerURL(cfg); got != cfg.Results.ViewerURL {
		t.Errorf("viewer_url: %q", got)
	}
}

// TestAppScopes: the viewer asks to write the resources a save sends, a
// Binary among them only when the report travels as one.
func TestAppScopes(t *testing.T) {
	scopes := func(cfg config.Config) map[string]string {
		t.Helper()
		a := smartApp(cfg, slog.New(slog.DiscardHandler), nil, nil, nil)
		var conf struct{ Scopes map[string]string }
		if err := json.Unmarshal(a.Config, &conf); err != nil {
			t.Fatal(err)
		}
		return conf.Scopes
	}
	cfg := config.Default()
	if s := scopes(cfg)["ehr"]; !strings.Contains(s, "patient/DiagnosticReport.cru") || strings.Contains(s, "Binary") {
		t.Errorf("presented_form none: EHR launch scopes %q", s)
	}
	cfg.Results.PresentedForm = "binary"
	if s := scopes(cfg)["ehr"]; !strings.Contains(s, "patient/Binary.cru") {
		t.Errorf("presented_form binary: EHR launch scopes %q lack patient/Binary.cru", s)
	}
	cfg.Results.WriteBack = true
	if s := scopes(cfg)["standalone"]; !strings.Contains(s, "user/Task.rs") || strings.Contains(s, "Binary") {
		t.Errorf("write-back: standalone scopes %q", s)
	}
}
