package config

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// validationCase breaks one thing of the defaults and names every message
// that follows, in order.
type validationCase struct {
	name    string
	serving bool
	mutate  func(*Config)
	want    []string
}

// missingFile is a file setting's path that names no file; validate does
// not read an issuer's jwks_file, so unreadJWKS needs none.
const missingFile, unreadJWKS = "testdata/missing.pem", "testdata/jwks.json"

var validIssuer = TrustedIssuer{Iss: "https://ehr.example.org", JWKSFile: unreadJWKS}

// validationCases holds a case for each check of validate, with every
// message text as the service reports it.
var validationCases = []validationCase{
	{name: "listen without port", mutate: func(c *Config) { c.Listen = "8080" }, want: []string{`listen: want host:port, got "8080"`}},
	{name: "listen port out of range", mutate: func(c *Config) { c.Listen = "127.0.0.1:70000" }, want: []string{`listen: port "70000" is not 0-65535`}},
	{name: "log level", mutate: func(c *Config) { c.LogLevel = "loud" }, want: []string{`log_level: want debug, info, warn or error, got "loud"`}},
	{name: "http body limit", mutate: func(c *Config) { c.HTTP.BodyLimitBytes = 10 }, want: []string{"http.body_limit_bytes: must be at least 1024, got 10"}},
	{name: "http timeouts", mutate: func(c *Config) {
		c.HTTP.RequestTimeout, c.HTTP.ReadTimeout, c.HTTP.WriteTimeout, c.HTTP.IdleTimeout, c.HTTP.ShutdownTimeout = -1, 0, -1, 0, -1
	}, want: []string{
		"http.request_timeout: must be a positive duration, got -1ns",
		"http.read_timeout: must be a positive duration, got 0s",
		"http.write_timeout: must be a positive duration, got -1ns",
		"http.idle_timeout: must be a positive duration, got 0s",
		"http.shutdown_timeout: must be a positive duration, got -1ns",
		"results.budget_patient_view: must be above 0 and below http.request_timeout (-1ns), got 1.5s",
		"results.budget_study_available: must be above 0 and below http.request_timeout (-1ns), got 5s",
		"app.budget: must be positive and below http.request_timeout (-1ns), got 2s",
	}},
	{name: "http rates", mutate: func(c *Config) { c.HTTP.RatePerIP, c.HTTP.RatePerIssuer = -1, math.NaN() }, want: []string{
		"http.rate_per_ip: must be 0 or more, got -1",
		"http.rate_per_issuer: must be 0 or more, got NaN",
	}},
	{name: "http bursts", mutate: func(c *Config) { c.HTTP.BurstPerIP, c.HTTP.BurstPerIssuer = 0, -1 }, want: []string{
		"http.burst_per_ip: must be at least 1, got 0",
		"http.burst_per_issuer: must be at least 1, got -1",
	}},
	{name: "tls cert without key", mutate: func(c *Config) { c.HTTP.TLSCertFile = missingFile }, want: []string{
		"http.tls_cert_file: give both http.tls_cert_file and http.tls_key_file, or neither",
		"http.tls_cert_file: stat " + missingFile + ": no such file or directory",
	}},
	{name: "tls key without cert", mutate: func(c *Config) { c.HTTP.TLSKeyFile = missingFile }, want: []string{
		"http.tls_cert_file: give both http.tls_cert_file and http.tls_key_file, or neither",
		"http.tls_key_file: stat " + missingFile + ": no such file or directory",
	}},
	{name: "cors origins", mutate: func(c *Config) {
		c.CORS.AllowedOrigins = []string{"*", "https://ok.example.org", "ftp://x", "https://a.example.org/path"}
	}, want: []string{
		`cors.allowed_origins: "ftp://x" is not an origin like https://ehr.example.org`,
		`cors.allowed_origins: "https://a.example.org/path" is not an origin like https://ehr.example.org`,
	}},
	{name: "redis url", mutate: func(c *Config) { c.Redis.URL = "http://:hunter2@h:1" }, want: []string{`redis.url: want redis://host:port/db, rediss:// or unix://, got "http://:xxxxx@h:1"`}},
	{name: "redis one address", mutate: func(c *Config) { c.Redis.Addrs = []string{"h:6379"} }, want: []string{"redis.addrs: one address without redis.master_name: use redis.url for a single node"}},
	{name: "fhir timeout", mutate: func(c *Config) { c.FHIR.Timeout = 0 }, want: []string{"fhir.timeout: must be a positive duration, got 0s"}},
	{name: "fhir timeout past request", mutate: func(c *Config) { c.FHIR.Timeout = 20 * time.Second }, want: []string{"fhir.timeout: must be shorter than http.request_timeout (10s), got 20s"}},
	{name: "fhir limits", mutate: func(c *Config) { c.FHIR.MaxPages, c.FHIR.MaxStudies, c.FHIR.MaxResponseSize = 101, 0, 10 }, want: []string{
		"fhir.max_pages: must be 1-100, got 101",
		"fhir.max_studies: must be 1-1000, got 0",
		"fhir.max_response_bytes: must be at least 1024, got 10",
	}},
	{name: "feedback", mutate: func(c *Config) { c.Feedback.MaxEvents = 0 }, want: []string{"feedback.max_events: must be at least 1, got 0"}},
	{name: "onnxruntime", mutate: func(c *Config) {
		o := &c.ONNXRuntime
		o.Models, o.IntraOpThreads, o.GraphOptimization, o.ExecutionProvider, o.BatchMax, o.BatchWait = nil, 257, "some", "tpu", 0, 2*time.Second
	}, want: []string{
		"onnxruntime.models: at least one model required",
		"onnxruntime.intra_op_threads: must be 0-256, got 257",
		`onnxruntime.graph_optimization: want all, extended, basic or disabled, got "some"`,
		`onnxruntime.execution_provider: want cpu or cuda, got "tpu"`,
		"onnxruntime.batch_max: must be 1-256, got 0",
		"onnxruntime.batch_wait: must be 0 to 1s, got 2s",
	}},
	{name: "imaging", mutate: func(c *Config) {
		im := &c.Imaging
		im.MaxInstanceBytes, im.MaxRows, im.MaxColumns, im.MaxFrames = 10, 15, 70000, 0
		im.FetchTimeout, im.FetchRetries, im.ImagesPerSeries, im.ImagesPerStudy = 0, 11, 0, 1001
	}, want: []string{
		"imaging.max_instance_bytes: must be 1024 to 1073741824, got 10",
		"imaging.max_rows: must be 16-65535, got 15",
		"imaging.max_columns: must be 16-65535, got 70000",
		"imaging.max_frames: must be 1-10000, got 0",
		"imaging.fetch_timeout: must be a positive duration, got 0s",
		"imaging.fetch_retries: must be 0-10, got 11",
		"imaging.images_per_series: must be 1-100, got 0",
		"imaging.images_per_study: must be 1-1000, got 1001",
	}},
	{name: "imaging credentials", mutate: func(c *Config) {
		c.Imaging.Credentials = []DICOMwebCredential{
			{BaseURL: "https://pacs.example.org", Token: "t"},
			{BaseURL: "/dicom-web", Token: "t", Username: "u"},
			{BaseURL: "https://vna.example.org"},
		}
	}, want: []string{
		"imaging.credentials_file[1]: base_url must be an absolute http(s) URL",
		"imaging.credentials_file[1]: give either token or username and password",
		"imaging.credentials_file[2]: give either token or username and password",
	}},
	{name: "auth public base url required", serving: true, mutate: func(c *Config) { c.Auth.Issuers = []TrustedIssuer{validIssuer} }, want: []string{"auth.public_base_url: required with CDS client authentication on: the service's URL as EHRs call it, e.g. https://cds.example.org (each token's aud is it plus the path called)"}},
	{name: "auth public base url not required off serve", mutate: func(c *Config) { c.Auth.Issuers = []TrustedIssuer{validIssuer} }},
	{name: "auth public base url", mutate: func(c *Config) { c.Auth.PublicBaseURL = "https://cds.example.org/?x=1" }, want: []string{`auth.public_base_url: want an absolute http(s) URL like https://cds.example.org, got "https://cds.example.org/?x=1"`}},
	{name: "auth limits", mutate: func(c *Config) { c.Auth.Leeway, c.Auth.ReplayMax = 6*time.Minute, 99 }, want: []string{
		"auth.leeway: must be 0-5m, got 6m0s",
		"auth.replay_max: must be at least 100, got 99",
	}},
	{name: "auth private key file", mutate: func(c *Config) { c.Auth.PrivateKeyFile = missingFile }, want: []string{"auth.private_key_file: stat " + missingFile + ": no such file or directory"}},
	{name: "auth issuers", mutate: func(c *Config) {
		c.Auth.Issuers = []TrustedIssuer{
			{JWKSFile: unreadJWKS, JWKSURL: "https://ehr.example.org/jwks"},
			{Iss: "https://b.example.org", JWKSURL: "https://b.example.org/jwks", BackendServices: &BackendServices{TokenURL: "/token", ClientID: "c", Scope: "s"}},
		}
	}, want: []string{
		"auth.issuers_file[0]: iss is required",
		"auth.issuers_file[0]: give exactly one of jwks_file and jwks_url",
		"auth.issuers_file[1]: backend_services needs an absolute token_url, a client_id and a scope",
		"auth.issuers_file[1]: backend_services needs auth.private_key_file",
	}},
	{name: "egress", mutate: func(c *Config) {
		c.Egress.AllowedCIDRs, c.Egress.CAFile = []string{"10.0.0.0/8", "10.0.0.300/8"}, missingFile
	}, want: []string{
		`egress.allowed_cidrs: "10.0.0.300/8" is not a CIDR range like 10.20.0.0/16`,
		"egress.ca_file: stat " + missingFile + ": no such file or directory",
	}},
	{name: "results presented form", mutate: func(c *Config) { c.Results.PresentedForm, c.Results.PresentedFormMaxBytes = "attached", 1000 }, want: []string{
		`results.presented_form: want none, link, inline or binary, got "attached"`,
		"results.presented_form_max_bytes: must be 1024 to 16777216, got 1000",
	}},
	{name: "results counts", mutate: func(c *Config) {
		r := &c.Results
		r.StudiesPerCall, r.ReviewBelow, r.HeatmapSide, r.Kept, r.WriteBackRetries = 0, 1.5, 513, 0, 11
	}, want: []string{
		"results.studies_per_call: must be at least 1, got 0",
		"results.review_below: must be within [0,1], got 1.5",
		"results.heatmap_side: must be within 0..512, got 513",
		"results.kept: must be at least 1, got 0",
		"results.write_back_retries: must be within 0..10, got 11",
	}},
	{name: "results source", mutate: func(c *Config) { c.Results.SourceLabel, c.Results.SourceURL = "", "ftp://x" }, want: []string{
		"results.source_label: must not be empty (CDS Hooks requires a card source label)",
		`results.source_url: must be an absolute http(s) URL, got "ftp://x"`,
	}},
	{name: "results urls", mutate: func(c *Config) {
		c.Results.ViewerURL, c.Results.SourceURL, c.Results.SourceIcon = "viewer", "/source", "icon.png"
	}, want: []string{
		`results.viewer_url: must be an absolute http(s) URL, got "viewer"`,
		`results.source_url: must be an absolute http(s) URL, got "/source"`,
		`results.source_icon: must be an absolute http(s) URL, got "icon.png"`,
	}},
	{name: "results durations", mutate: func(c *Config) {
		r := &c.Results
		r.TTL, r.BudgetPatientView, r.BudgetStudyAvailable, r.AnalysisTimeout = time.Second, 0, 10*time.Second, 0
	}, want: []string{
		"results.ttl: must be at least 1m, got 1s",
		"results.budget_patient_view: must be above 0 and below http.request_timeout (10s), got 0s",
		"results.budget_study_available: must be above 0 and below http.request_timeout (10s), got 10s",
		"results.analysis_timeout: must be at least 1s, got 0s",
	}},
	{name: "results link secret", mutate: func(c *Config) { c.Results.LinkSecret = "short" }, want: []string{"results.link_secret: must be at least 32 characters"}},
	{name: "precompute counts", mutate: func(c *Config) {
		p := &c.Precompute
		p.Workers, p.QueueSize, p.MaxAttempts, p.Backoff = 65, 0, 0, 0
	}, want: []string{
		"precompute.workers: must be within 1..64, got 65",
		"precompute.queue_size: must be at least 1, got 0",
		"precompute.max_attempts: must be at least 1, got 0",
		"precompute.backoff: must be above 0, got 0s",
	}},
	{name: "precompute visibility", mutate: func(c *Config) { c.Precompute.Visibility = 5 * time.Minute }, want: []string{"precompute.visibility: must exceed 2 x results.analysis_timeout + 1m (5m0s), or a working replica's study is taken over; got 5m0s"}},
	{name: "precompute fhir server without token", mutate: func(c *Config) { c.Precompute.FHIRServer = "https://fhir.example.org" }, want: []string{"precompute.notification_token: set precompute.fhir_server and precompute.notification_token together"}},
	{name: "precompute tokens too short", mutate: func(c *Config) {
		c.Precompute.FHIRServer, c.Precompute.NotificationToken, c.Precompute.AdminToken = "https://fhir.example.org", "short", "short"
	}, want: []string{
		"precompute.notification_token: must be at least 16 characters",
		"precompute.admin_token: must be at least 16 characters",
	}},
	{name: "app limits", mutate: func(c *Config) {
		a := &c.App
		a.ClientID, a.ImageMaxSide, a.Budget, a.WorklistMax, a.RefreshSeconds = "", 100, 0, 0, 1
		a.ConnectOrigins, a.FrameAncestors = []string{"https://fhir.example.org/fhir"}, []string{"'none'"}
	}, want: []string{
		"app.client_id: must be 1 to 200 characters",
		`app.connect_origins/frame_ancestors: "https://fhir.example.org/fhir" is not an origin like https://ehr.example.org`,
		`app.connect_origins/frame_ancestors: "'none'" is not an origin like https://ehr.example.org`,
		"app.image_max_side: must be within 256..8192, got 100",
		"app.budget: must be positive and below http.request_timeout (10s), got 0s",
		"app.worklist_max: must be within 1..2000, got 0",
		"app.refresh_seconds: must be within 5..3600, got 1",
	}},
	{name: "app off is not checked", mutate: func(c *Config) { c.App.Enabled, c.App.ClientID = false, "" }},
}

func TestValidateEachCheck(t *testing.T) {
	for _, tt := range validationCases {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			if diff := cmp.Diff(tt.want, messages(c.validate(tt.serving))); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateIsDeterministic: with every check failing at once, the
// messages come in the same order on every run, section by section in the
// order of Config's fields.
func TestValidateIsDeterministic(t *testing.T) {
	c := Default()
	for _, tt := range validationCases {
		tt.mutate(&c)
	}
	first := messages(c.validate(true))
	for range 50 {
		if diff := cmp.Diff(first, messages(c.validate(true))); diff != "" {
			t.Fatalf("messages changed between runs (-first +now):\n%s", diff)
		}
	}
	sections := []string{"listen", "log_level", "http", "cors", "redis", "fhir", "feedback", "onnxruntime", "imaging", "auth", "egress", "results", "precompute", "app"}
	at := 0
	for _, m := range first {
		key, _, _ := strings.Cut(m, ":")
		section, _, _ := strings.Cut(key, ".")
		i := slices.Index(sections, section)
		if i < at {
			t.Errorf("%q comes after section %s", m, sections[at])
		}
		at = max(at, i)
	}
}

// messages splits a validation error into its lines.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(strings.TrimPrefix(err.Error(), "config: "), "\n")
}
