package app

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/web"
)

// The app's SMART scopes, as narrow as its pages need: the viewer (EHR
// launch) reads the study and its patient and saves the report's
// resources for that patient; the worklist (standalone) reads studies and
// patients across the FHIR server.
const (
	scopesEHR = "launch openid fhirUser patient/ImagingStudy.rs patient/Endpoint.r patient/Patient.r " +
		"patient/Device.cru patient/DiagnosticReport.cru patient/Observation.cru patient/Task.cru patient/Provenance.cru"
	scopesStandalone = "openid fhirUser user/ImagingStudy.rs user/Endpoint.r user/Patient.r"
)

// viewerURL is the SMART app cards link to: results.viewer_url, else the
// built-in app when the service knows its public URL.
func viewerURL(cfg config.Config) string {
	if cfg.Results.ViewerURL != "" || !cfg.App.Enabled || cfg.Auth.PublicBaseURL == "" || !web.Built() {
		return cfg.Results.ViewerURL
	}
	return strings.TrimRight(cfg.Auth.PublicBaseURL, "/") + "/app/launch.html"
}

// smartApp is the built-in SMART app for the router; nil when off.
func smartApp(cfg config.Config, log *slog.Logger, tenants func(string) (analysis.Tenant, bool), pixels cds.PixelSource, wl analysis.Worklist) *api.App {
	if !cfg.App.Enabled {
		return nil
	}
	ehr, standalone := scopesEHR, scopesStandalone
	if cfg.Results.PresentedForm == fhir.PresentedBinary {
		ehr += " patient/Binary.cru" // the saved report's HTML is a Binary beside it
	}
	if cfg.Results.WriteBack {
		standalone += " user/Task.rs" // the worklist reads the Tasks written back
	}
	conf, _ := json.Marshal(map[string]any{
		"clientId":       cfg.App.ClientID,
		"scopes":         map[string]string{"ehr": ehr, "standalone": standalone},
		"refreshSeconds": cfg.App.RefreshSeconds,
	})
	a := &api.App{
		Config: conf,
		CSP:    appCSP(cfg),
		Tenant: func(server string) (string, []string, bool) {
			t, ok := tenants(server)
			return t.Issuer, t.DICOMwebBases, ok
		},
		Pixels:       pixels,
		Worklist:     wl,
		Tasks:        cfg.Results.WriteBack,
		ImageMaxSide: cfg.App.ImageMaxSide,
		WorklistMax:  cfg.App.WorklistMax,
	}
	if web.Built() {
		a.Static = web.FS()
	} else {
		log.Warn("the SMART app was not built into this binary (make build builds it): /app/ serves no pages and cards do not link to it")
	}
	if len(connectOrigins(cfg)) == 0 {
		log.Warn("the SMART app may call no FHIR or authorization server: set app.connect_origins (or register issuers) for it to sign in")
	}
	return a
}

// appCSP is the app's Content-Security-Policy: its own scripts and styles
// only, images from itself (and the data: heat maps, blob: radiograph),
// calls to itself and the EHRs' FHIR and authorization servers, frames
// only inside the EHRs.
func appCSP(cfg config.Config) string {
	connect := append([]string{"'self'"}, connectOrigins(cfg)...)
	frame := []string{"'self'"}
	if len(cfg.App.FrameAncestors) > 0 {
		frame = cfg.App.FrameAncestors
	} else {
		for _, o := range cfg.CORS.AllowedOrigins {
			if o != "*" {
				frame = append(frame, strings.TrimRight(o, "/"))
			}
		}
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src " + strings.Join(connect, " ") + "; frame-ancestors " + strings.Join(frame, " ") + "; base-uri 'none'; form-action 'none'"
}

// connectOrigins are the origins the app's pages may call besides their
// own: app.connect_origins, else those of the trusted issuers (their iss,
// FHIR servers and token URLs). None leaves the app unable to sign in
// anywhere, which is safer than any origin (a launch names its iss).
func connectOrigins(cfg config.Config) []string {
	origins := cfg.App.ConnectOrigins
	if len(origins) > 0 {
		return origins
	}
	for _, is := range cfg.Auth.Issuers {
		for _, s := range append([]string{is.Iss, tokenURL(is)}, is.FHIRServers...) {
			if o := originOf(s); o != "" && !slices.Contains(origins, o) {
				origins = append(origins, o)
			}
		}
	}
	return origins
}

func tokenURL(is config.TrustedIssuer) string {
	if is.BackendServices == nil {
		return ""
	}
	return is.BackendServices.TokenURL
}

// originOf is scheme://host[:port] of an absolute http(s) URL, else "".
func originOf(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
