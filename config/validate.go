package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// problems collects what validation finds, each message naming its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// positive reports a duration that is not above zero.
func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, "must be a positive duration, got %s", d)
	}
}

// readable reports a file setting whose file cannot be found; unset is fine.
func (p *problems) readable(key, path string) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		p.add(key, "%v", err)
	}
}

// Validate checks every setting of the service and reports each bad key by
// name.
func (c Config) Validate() error { return c.validate(true) }

// validate checks each section in turn, in the order of Config's fields, so
// the messages come in the same order on every run; serving adds what only
// the service needs (the other commands read the same settings for decoding
// limits and the ONNX Runtime library). A check that spans sections lives
// with the setting it reports.
func (c Config) validate(serving bool) error {
	var p problems
	c.validateTopLevel(&p)
	c.HTTP.validate(&p)
	c.CORS.validate(&p)
	c.Redis.validate(&p)
	c.FHIR.validate(&p, c.HTTP.RequestTimeout)
	c.Feedback.validate(&p)
	c.ONNXRuntime.validate(&p)
	c.Imaging.validate(&p)
	c.Auth.validate(&p, serving)
	c.Egress.validate(&p)
	c.Results.validate(&p, c.HTTP.RequestTimeout)
	c.Precompute.validate(&p, c.Results.AnalysisTimeout)
	c.App.validate(&p, c.HTTP.RequestTimeout)
	if len(p) > 0 {
		return fmt.Errorf("config: %w", errors.Join(p...))
	}
	return nil
}

// validateTopLevel checks the settings outside any section.
func (c Config) validateTopLevel(p *problems) {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		p.add("listen", "want host:port, got %q", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add("listen", "port %q is not 0-65535", port)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("log_level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
}

func (h HTTP) validate(p *problems) {
	for _, r := range []struct {
		key  string
		rate float64
	}{{"http.rate_per_ip", h.RatePerIP}, {"http.rate_per_issuer", h.RatePerIssuer}} {
		if r.rate < 0 || math.IsNaN(r.rate) {
			p.add(r.key, "must be 0 or more, got %v", r.rate)
		}
	}
	for _, b := range []struct {
		key   string
		burst int
	}{{"http.burst_per_ip", h.BurstPerIP}, {"http.burst_per_issuer", h.BurstPerIssuer}} {
		if b.burst < 1 {
			p.add(b.key, "must be at least 1, got %d", b.burst)
		}
	}
	if (h.TLSCertFile == "") != (h.TLSKeyFile == "") {
		p.add("http.tls_cert_file", "give both http.tls_cert_file and http.tls_key_file, or neither")
	}
	p.readable("http.tls_cert_file", h.TLSCertFile)
	p.readable("http.tls_key_file", h.TLSKeyFile)
	if h.BodyLimitBytes < 1024 {
		p.add("http.body_limit_bytes", "must be at least 1024, got %d", h.BodyLimitBytes)
	}
	p.positive("http.request_timeout", h.RequestTimeout)
	p.positive("http.read_timeout", h.ReadTimeout)
	p.positive("http.write_timeout", h.WriteTimeout)
	p.positive("http.idle_timeout", h.IdleTimeout)
	p.positive("http.shutdown_timeout", h.ShutdownTimeout)
}

func (co CORS) validate(p *problems) {
	for _, o := range co.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			p.add("cors.allowed_origins", "%q is not an origin like https://ehr.example.org", o)
		}
	}
}

func (a App) validate(p *problems, requestTimeout time.Duration) {
	if !a.Enabled {
		return
	}
	if a.ClientID == "" || len(a.ClientID) > 200 {
		p.add("app.client_id", "must be 1 to 200 characters")
	}
	for _, o := range append(append([]string{}, a.ConnectOrigins...), a.FrameAncestors...) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" ||
			strings.ContainsAny(o, " ;,'\"") {
			p.add("app.connect_origins/frame_ancestors", "%q is not an origin like https://ehr.example.org", o)
		}
	}
	if a.ImageMaxSide < 256 || a.ImageMaxSide > 8192 {
		p.add("app.image_max_side", "must be within 256..8192, got %d", a.ImageMaxSide)
	}
	if a.Budget <= 0 || a.Budget >= requestTimeout {
		p.add("app.budget", "must be positive and below http.request_timeout (%s), got %s", requestTimeout, a.Budget)
	}
	if a.WorklistMax < 1 || a.WorklistMax > 2000 {
		p.add("app.worklist_max", "must be within 1..2000, got %d", a.WorklistMax)
	}
	if a.RefreshSeconds < 5 || a.RefreshSeconds > 3600 {
		p.add("app.refresh_seconds", "must be within 5..3600, got %d", a.RefreshSeconds)
	}
}

func (r Redis) validate(p *problems) {
	if r.URL != "" {
		u, err := url.Parse(r.URL.Reveal())
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			p.add("redis.url", "want redis://host:port/db, rediss:// or unix://, got %q", RedactURL(r.URL.Reveal()))
		}
	}
	if len(r.Addrs) == 1 && r.MasterName == "" {
		p.add("redis.addrs", "one address without redis.master_name: use redis.url for a single node")
	}
}

// validate checks the FHIR limits; each call must end before the request
// that made it.
func (f FHIR) validate(p *problems, requestTimeout time.Duration) {
	p.positive("fhir.timeout", f.Timeout)
	if f.Timeout >= requestTimeout && requestTimeout > 0 {
		p.add("fhir.timeout", "must be shorter than http.request_timeout (%s), got %s", requestTimeout, f.Timeout)
	}
	if f.MaxPages < 1 || f.MaxPages > 100 {
		p.add("fhir.max_pages", "must be 1-100, got %d", f.MaxPages)
	}
	if f.MaxStudies < 1 || f.MaxStudies > 1000 {
		p.add("fhir.max_studies", "must be 1-1000, got %d", f.MaxStudies)
	}
	if f.MaxResponseSize < 1024 {
		p.add("fhir.max_response_bytes", "must be at least 1024, got %d", f.MaxResponseSize)
	}
}

func (f Feedback) validate(p *problems) {
	if f.MaxEvents < 1 {
		p.add("feedback.max_events", "must be at least 1, got %d", f.MaxEvents)
	}
}

func (o ONNXRuntime) validate(p *problems) {
	if len(o.Models) == 0 {
		p.add("onnxruntime.models", "at least one model required")
	}
	if o.IntraOpThreads < 0 || o.IntraOpThreads > 256 {
		p.add("onnxruntime.intra_op_threads", "must be 0-256, got %d", o.IntraOpThreads)
	}
	switch o.GraphOptimization {
	case "all", "extended", "basic", "disabled":
	default:
		p.add("onnxruntime.graph_optimization", "want all, extended, basic or disabled, got %q", o.GraphOptimization)
	}
	switch o.ExecutionProvider {
	case "cpu", "cuda":
	default:
		p.add("onnxruntime.execution_provider", "want cpu or cuda, got %q", o.ExecutionProvider)
	}
	if o.BatchMax < 1 || o.BatchMax > 256 {
		p.add("onnxruntime.batch_max", "must be 1-256, got %d", o.BatchMax)
	}
	if o.BatchWait < 0 || o.BatchWait > time.Second {
		p.add("onnxruntime.batch_wait", "must be 0 to 1s, got %s", o.BatchWait)
	}
}

func (im Imaging) validate(p *problems) {
	if im.MaxInstanceBytes < 1024 || im.MaxInstanceBytes > 1<<30 {
		p.add("imaging.max_instance_bytes", "must be 1024 to 1073741824, got %d", im.MaxInstanceBytes)
	}
	for _, side := range []struct {
		key    string
		pixels int
	}{{"imaging.max_rows", im.MaxRows}, {"imaging.max_columns", im.MaxColumns}} {
		if side.pixels < 16 || side.pixels > 65535 {
			p.add(side.key, "must be 16-65535, got %d", side.pixels)
		}
	}
	if im.MaxFrames < 1 || im.MaxFrames > 10000 {
		p.add("imaging.max_frames", "must be 1-10000, got %d", im.MaxFrames)
	}
	p.positive("imaging.fetch_timeout", im.FetchTimeout)
	if im.FetchRetries < 0 || im.FetchRetries > 10 {
		p.add("imaging.fetch_retries", "must be 0-10, got %d", im.FetchRetries)
	}
	if im.ImagesPerSeries < 1 || im.ImagesPerSeries > 100 {
		p.add("imaging.images_per_series", "must be 1-100, got %d", im.ImagesPerSeries)
	}
	if im.ImagesPerStudy < 1 || im.ImagesPerStudy > 1000 {
		p.add("imaging.images_per_study", "must be 1-1000, got %d", im.ImagesPerStudy)
	}
	for i, cr := range im.Credentials {
		cr.validate(p, fmt.Sprintf("imaging.credentials_file[%d]", i))
	}
}

// validate checks one entry of imaging.credentials_file, reported as key.
func (cr DICOMwebCredential) validate(p *problems, key string) {
	if u, err := url.Parse(cr.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key, "base_url must be an absolute http(s) URL")
	}
	if (cr.Token == "") == (cr.Username == "") {
		p.add(key, "give either token or username and password")
	}
}

func (a Auth) validate(p *problems, serving bool) {
	if serving && !a.Disabled && a.PublicBaseURL == "" && (a.IssuersFile != "" || len(a.Issuers) > 0) {
		// The aud every token must carry; taking it from the request's Host
		// would accept tokens minted for another service. (With no issuer
		// trusted no token is accepted at all, and the service starts on its
		// embedded defaults, refusing every CDS call.)
		p.add("auth.public_base_url", "required with CDS client authentication on: the service's URL as EHRs call it, e.g. https://cds.example.org (each token's aud is it plus the path called)")
	}
	if u := a.PublicBaseURL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" {
			p.add("auth.public_base_url", "want an absolute http(s) URL like https://cds.example.org, got %q", u)
		}
	}
	if a.Leeway < 0 || a.Leeway > 5*time.Minute {
		p.add("auth.leeway", "must be 0-5m, got %s", a.Leeway)
	}
	p.readable("auth.private_key_file", a.PrivateKeyFile)
	if a.ReplayMax < 100 {
		p.add("auth.replay_max", "must be at least 100, got %d", a.ReplayMax)
	}
	for i, is := range a.Issuers {
		is.validate(p, fmt.Sprintf("auth.issuers_file[%d]", i), a.PrivateKeyFile)
	}
}

// validate checks one entry of auth.issuers_file, reported as key; Backend
// Services need this service's key, privateKeyFile.
func (is TrustedIssuer) validate(p *problems, key, privateKeyFile string) {
	if is.Iss == "" {
		p.add(key, "iss is required")
	}
	if (is.JWKSFile == "") == (is.JWKSURL == "") {
		p.add(key, "give exactly one of jwks_file and jwks_url")
	}
	if bs := is.BackendServices; bs != nil {
		if u, err := url.Parse(bs.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || bs.ClientID == "" || bs.Scope == "" {
			p.add(key, "backend_services needs an absolute token_url, a client_id and a scope")
		}
		if privateKeyFile == "" {
			p.add(key, "backend_services needs auth.private_key_file")
		}
	}
}

func (e Egress) validate(p *problems) {
	for _, cidr := range e.AllowedCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			p.add("egress.allowed_cidrs", "%q is not a CIDR range like 10.20.0.0/16", cidr)
		}
	}
	p.readable("egress.ca_file", e.CAFile)
}

// validate checks what the service answers with; the hook budgets must end
// before the request that waits on them.
func (r Results) validate(p *problems, requestTimeout time.Duration) {
	if r.StudiesPerCall < 1 {
		p.add("results.studies_per_call", "must be at least 1, got %d", r.StudiesPerCall)
	}
	if !(r.ReviewBelow >= 0 && r.ReviewBelow <= 1) {
		p.add("results.review_below", "must be within [0,1], got %v", r.ReviewBelow)
	}
	if r.SourceLabel == "" {
		p.add("results.source_label", "must not be empty (CDS Hooks requires a card source label)")
	}
	for _, link := range []struct{ key, url string }{
		{"results.viewer_url", r.ViewerURL}, {"results.source_url", r.SourceURL}, {"results.source_icon", r.SourceIcon},
	} {
		if u, err := url.Parse(link.url); link.url != "" && (err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http")) {
			p.add(link.key, "must be an absolute http(s) URL, got %q", link.url)
		}
	}
	if r.HeatmapSide < 0 || r.HeatmapSide > 512 {
		p.add("results.heatmap_side", "must be within 0..512, got %d", r.HeatmapSide)
	}
	if r.Kept < 1 {
		p.add("results.kept", "must be at least 1, got %d", r.Kept)
	}
	if r.TTL < time.Minute {
		p.add("results.ttl", "must be at least 1m, got %s", r.TTL)
	}
	for _, b := range []struct {
		key    string
		budget time.Duration
	}{{"results.budget_patient_view", r.BudgetPatientView}, {"results.budget_study_available", r.BudgetStudyAvailable}} {
		if b.budget <= 0 || b.budget >= requestTimeout {
			p.add(b.key, "must be above 0 and below http.request_timeout (%s), got %s", requestTimeout, b.budget)
		}
	}
	if r.AnalysisTimeout < time.Second {
		p.add("results.analysis_timeout", "must be at least 1s, got %s", r.AnalysisTimeout)
	}
	if r.LinkSecret != "" && len(r.LinkSecret) < 32 {
		p.add("results.link_secret", "must be at least 32 characters")
	}
	switch r.PresentedForm {
	case "none", "link", "inline", "binary":
	default:
		p.add("results.presented_form", "want none, link, inline or binary, got %q", r.PresentedForm)
	}
	if r.PresentedFormMaxBytes < 1024 || r.PresentedFormMaxBytes > 16<<20 {
		p.add("results.presented_form_max_bytes", "must be 1024 to 16777216, got %d", r.PresentedFormMaxBytes)
	}
	if r.WriteBackRetries < 0 || r.WriteBackRetries > 10 {
		p.add("results.write_back_retries", "must be within 0..10, got %d", r.WriteBackRetries)
	}
}

// validate checks the work queue; a job must stay with its worker while that
// worker may still be analysing it (analysisTimeout).
func (pc Precompute) validate(p *problems, analysisTimeout time.Duration) {
	if pc.Workers < 1 || pc.Workers > 64 {
		p.add("precompute.workers", "must be within 1..64, got %d", pc.Workers)
	}
	if pc.QueueSize < 1 {
		p.add("precompute.queue_size", "must be at least 1, got %d", pc.QueueSize)
	}
	if pc.MaxAttempts < 1 {
		p.add("precompute.max_attempts", "must be at least 1, got %d", pc.MaxAttempts)
	}
	if pc.Backoff <= 0 {
		p.add("precompute.backoff", "must be above 0, got %s", pc.Backoff)
	}
	// One job analyses a study for each service (2) and may wait out a
	// retry's back-off (at most 1 min) before it is acknowledged.
	if minVis := 2*analysisTimeout + time.Minute; pc.Visibility <= minVis {
		p.add("precompute.visibility", "must exceed 2 x results.analysis_timeout + 1m (%s), or a working replica's study is taken over; got %s", minVis, pc.Visibility)
	}
	if (pc.FHIRServer == "") != (pc.NotificationToken == "") {
		p.add("precompute.notification_token", "set precompute.fhir_server and precompute.notification_token together")
	}
	for _, tok := range []struct {
		key   string
		token Secret
	}{{"precompute.notification_token", pc.NotificationToken}, {"precompute.admin_token", pc.AdminToken}} {
		if tok.token != "" && len(tok.token) < 16 {
			p.add(tok.key, "must be at least 16 characters")
		}
	}
}
