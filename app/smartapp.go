package app

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
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
	if cfg.Results.ViewerURL != "" || !cfg.App.Enabled || cfg.Auth.PublicBaseURL == "" {
		return cfg.Results.ViewerURL
	}
	return strings.TrimRight(cfg.Auth.PublicBaseURL, "/") + "/app/launch.html"
}

// smartApp is the built-in SMART app for the router; nil when off.
func smartApp(cfg config.Config, tenants func(string) (analysis.Tenant, bool), pixels cds.PixelSource, wl analysis.Worklist) *api.App {
	if !cfg.App.Enabled {
		return nil
	}
	conf, _ := json.Marshal(map[string]any{
		"clientId":       cfg.App.ClientID,
		"scopes":         map[string]string{"ehr": scopesEHR, "standalone": scopesStandalone},
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
		ImageMaxSide: cfg.App.ImageMaxSide,
		WorklistMax:  cfg.App.WorklistMax,
	}
	if web.Built() {
		a.Static = web.FS()
	}
	return a
}

// appCSP is the app's Content-Security-Policy: its own scripts and styles
// only, images from itself (and the data: heat maps, blob: radiograph),
// calls to itself and the EHRs' FHIR and authorization servers.
func appCSP(cfg config.Config) string {
	connect := []string{"'self'"}
	origins := cfg.App.ConnectOrigins
	if len(origins) == 0 {
		for _, is := range cfg.Auth.Issuers {
			for _, s := range append(append([]string{}, is.FHIRServers...), tokenURL(is)) {
				if o := originOf(s); o != "" && !slices.Contains(origins, o) {
					origins = append(origins, o)
				}
			}
		}
	}
	if len(origins) == 0 {
		origins = []string{"https:"}
	}
	connect = append(connect, origins...)
	frame := "*"
	if len(cfg.App.FrameAncestors) > 0 {
		frame = strings.Join(cfg.App.FrameAncestors, " ")
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src " + strings.Join(connect, " ") + "; frame-ancestors " + frame + "; base-uri 'none'; form-action 'none'"
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
