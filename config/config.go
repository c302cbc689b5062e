// Package config holds orthotriage's one Config: its defaults, loading from an
// optional YAML file, ORTHOTRIAGE_* environment variables and command-line
// flags (in that order of precedence, lowest first), validation that names
// each bad key, and Secret, the type of every secret setting, which masks
// itself wherever it is printed, encoded or logged. No other package reads
// the environment.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is every setting of the service. The YAML keys are the setting keys
// listed by `orthotriage serve --help`.
type Config struct {
	Listen      string      `yaml:"listen"`
	LogLevel    string      `yaml:"log_level"`
	HTTP        HTTP        `yaml:"http"`
	CORS        CORS        `yaml:"cors"`
	Redis       Redis       `yaml:"redis"`
	FHIR        FHIR        `yaml:"fhir"`
	Feedback    Feedback    `yaml:"feedback"`
	ONNXRuntime ONNXRuntime `yaml:"onnxruntime"`
	Imaging     Imaging     `yaml:"imaging"`
	Auth        Auth        `yaml:"auth"`
	Egress      Egress      `yaml:"egress"`
	Results     Results     `yaml:"results"`
	Precompute  Precompute  `yaml:"precompute"`
	App         App         `yaml:"app"`
}

// App is the built-in SMART on FHIR app (viewer and worklist) served
// under /app/ and its API under /api/v1/app/.
type App struct {
	// Enabled serves the app; with auth.public_base_url set (and no
	// results.viewer_url) cards link to it.
	Enabled  bool   `yaml:"enabled"`
	ClientID string `yaml:"client_id"`
	// ConnectOrigins are the origins the app's pages may call besides
	// their own (the EHRs' FHIR and authorization servers): the CSP's
	// connect-src. Empty: the origins of the trusted issuers (iss, FHIR
	// servers, token URLs); none when no issuer is registered.
	ConnectOrigins []string `yaml:"connect_origins"`
	// FrameAncestors are the origins that may show the app in a frame
	// (the EHRs); empty: its own and cors.allowed_origins.
	FrameAncestors []string `yaml:"frame_ancestors"`
	// ImageMaxSide bounds the longer side of the radiograph sent to the
	// app, in pixels.
	ImageMaxSide int `yaml:"image_max_side"`
	// Budget is how long an app request waits for a study's analysis
	// before saying it is pending.
	Budget time.Duration `yaml:"budget"`
	// WorklistMax is the most rows of one worklist; RefreshSeconds how
	// often the worklist page reloads it.
	WorklistMax    int `yaml:"worklist_max"`
	RefreshSeconds int `yaml:"refresh_seconds"`
}

// Precompute is the work queue that analyses studies before any hook asks:
// fed by FHIR Subscription notifications and an admin call, drained by
// workers (Redis Streams with redis configured, else in memory).
type Precompute struct {
	Workers     int           `yaml:"workers"`
	QueueSize   int           `yaml:"queue_size"` // in-memory queue only
	MaxAttempts int           `yaml:"max_attempts"`
	Backoff     time.Duration `yaml:"backoff"`
	// Visibility is how long a Redis job may stay unacknowledged before
	// another replica's worker takes it over.
	Visibility time.Duration `yaml:"visibility"`
	// FHIRServer is the FHIR server whose Subscriptions post to
	// /fhir/subscription; NotificationToken the bearer token they send
	// (Subscription.channel.header). Both empty: notifications are off.
	FHIRServer        string `yaml:"fhir_server"`
	NotificationToken Secret `yaml:"notification_token"`
	// AdminToken guards POST /api/v1/studies/analyze; empty: off.
	AdminToken Secret `yaml:"admin_token"`
}

// Results holds what the service answers with: cards, FHIR resources and
// write-back. Triage priorities themselves come from each model's manifest.
type Results struct {
	// StudiesPerCall is how many of the patient's newest studies one hook
	// call analyses.
	StudiesPerCall int `yaml:"studies_per_call"`
	// NormalCard: an info card for studies where every finding is normal;
	// off answers nothing for them.
	NormalCard bool `yaml:"normal_card"`
	// ReviewBelow: findings less probable than this are "needs review".
	ReviewBelow float64 `yaml:"review_below"`
	// SystemActions puts the resources in the response's systemActions
	// (the EHR stores them at once) instead of a card suggestion.
	SystemActions bool `yaml:"system_actions"`
	// ViewerURL is the SMART app launched from cards; empty: no app link.
	ViewerURL   string `yaml:"viewer_url"`
	SourceLabel string `yaml:"source_label"`
	SourceURL   string `yaml:"source_url"`
	SourceIcon  string `yaml:"source_icon"`
	// HeatmapSide is the side of the heat-map thumbnails in reports.
	HeatmapSide int `yaml:"heatmap_side"`
	// Kept is how many results the service keeps in memory (for report
	// links and repeated calls).
	Kept int `yaml:"kept"`
	// WriteBack stores every result's resources on the FHIR server as a
	// transaction, with WriteBackRetries retries.
	WriteBack        bool `yaml:"write_back"`
	WriteBackRetries int  `yaml:"write_back_retries"`
	// TTL is how long a result is kept in the store (Redis or memory).
	TTL time.Duration `yaml:"ttl"`
	// BudgetPatientView and BudgetStudyAvailable are how long each hook
	// waits for analyses before answering with what is ready.
	BudgetPatientView    time.Duration `yaml:"budget_patient_view"`
	BudgetStudyAvailable time.Duration `yaml:"budget_study_available"`
	// PendingCard: an info card naming studies still in analysis.
	PendingCard bool `yaml:"pending_card"`
	// AnalysisTimeout bounds one background analysis.
	AnalysisTimeout time.Duration `yaml:"analysis_timeout"`
	// LinkSecret signs report links; the same on every replica. Empty: a
	// random key per process.
	LinkSecret Secret `yaml:"link_secret"`
	// PresentedForm is how the DiagnosticReport carries the HTML report:
	// "none" (the card links it), "link" (presentedForm.url, the signed
	// link), "inline" (base64 data) or "binary" (a Binary resource beside
	// it, referenced by presentedForm.url), the last two when the report
	// is at most PresentedFormMaxBytes.
	PresentedForm         string `yaml:"presented_form"`
	PresentedFormMaxBytes int    `yaml:"presented_form_max_bytes"`
}

// Egress holds which addresses outbound calls to request-named URLs may
// reach, and the TLS roots they trust.
type Egress struct {
	AllowPrivate bool     `yaml:"allow_private"`
	AllowedCIDRs []string `yaml:"allowed_cidrs"`
	CAFile       string   `yaml:"ca_file"`
}

// Auth holds CDS client authentication.
type Auth struct {
	// Disabled turns JWT checks off: for a local demo only.
	Disabled bool `yaml:"disabled"`
	// PublicBaseURL is the service's URL as EHRs call it; each token's aud
	// must be this plus the path called, and report links start with it.
	// Required unless Disabled: it never comes from a request.
	PublicBaseURL string        `yaml:"public_base_url"`
	IssuersFile   string        `yaml:"issuers_file"`
	Leeway        time.Duration `yaml:"leeway"`
	ReplayMax     int           `yaml:"replay_max"`
	// PrivateKeyFile is this service's PEM key (P-384 EC or RSA) for SMART
	// Backend Services client assertions; its public half is served at
	// /.well-known/jwks.json.
	PrivateKeyFile string `yaml:"private_key_file"`
	// Issuers are read from IssuersFile by Load.
	Issuers []TrustedIssuer `yaml:"-"`
}

// TrustedIssuer is one EHR allowed to call: its iss, where its keys are,
// which jku values it may use and which FHIR servers it may name.
type TrustedIssuer struct {
	Iss          string   `yaml:"iss"`
	JWKSFile     string   `yaml:"jwks_file"`
	JWKSURL      string   `yaml:"jwks_url"`
	JKUAllowlist []string `yaml:"jku_allowlist"`
	FHIRServers  []string `yaml:"fhir_servers"`
	// DICOMwebBases are the DICOMweb servers (and attachment hosts) this
	// issuer's data may point at.
	DICOMwebBases []string `yaml:"dicomweb_bases"`
	// BackendServices, when set, is used for FHIR calls of hook requests
	// that carry no fhirAuthorization.
	BackendServices *BackendServices `yaml:"backend_services"`
}

// BackendServices is this service's SMART Backend Services registration
// at an issuer's authorization server.
type BackendServices struct {
	TokenURL string `yaml:"token_url"`
	ClientID string `yaml:"client_id"`
	Scope    string `yaml:"scope"`
}

// Imaging holds the limits of radiograph retrieval and decoding.
type Imaging struct {
	MaxInstanceBytes int64         `yaml:"max_instance_bytes"`
	MaxRows          int           `yaml:"max_rows"`
	MaxColumns       int           `yaml:"max_columns"`
	MaxFrames        int           `yaml:"max_frames"`
	FetchTimeout     time.Duration `yaml:"fetch_timeout"`
	FetchRetries     int           `yaml:"fetch_retries"`
	// CompressedTransfer lets DICOMweb answers come gzip-compressed.
	CompressedTransfer bool `yaml:"compressed_transfer"`
	ImagesPerSeries    int  `yaml:"images_per_series"`
	ImagesPerStudy     int  `yaml:"images_per_study"`
	// CredentialsFile names a YAML file listing DICOMweb credentials, kept
	// apart from the main configuration because it holds secrets.
	CredentialsFile string `yaml:"credentials_file"`
	// Credentials are read from CredentialsFile by Load.
	Credentials []DICOMwebCredential `yaml:"-"`
}

// DICOMwebCredential is access to one DICOMweb base URL: a bearer token, or
// a user and password for HTTP basic authentication.
type DICOMwebCredential struct {
	BaseURL  string `yaml:"base_url"`
	Token    Secret `yaml:"token"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// HTTP holds the limits of the inbound HTTP server.
type HTTP struct {
	RatePerIP       float64       `yaml:"rate_per_ip"`
	BurstPerIP      int           `yaml:"burst_per_ip"`
	RatePerIssuer   float64       `yaml:"rate_per_issuer"`
	BurstPerIssuer  int           `yaml:"burst_per_issuer"`
	TLSCertFile     string        `yaml:"tls_cert_file"`
	TLSKeyFile      string        `yaml:"tls_key_file"`
	BodyLimitBytes  int64         `yaml:"body_limit_bytes"`
	RequestTimeout  time.Duration `yaml:"request_timeout"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// CORS holds the browser origins allowed to call the service.
type CORS struct {
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Redis holds the optional Redis connection; empty URL means in-memory.
// URL names one node; with Addrs and MasterName set the client goes through
// Sentinel, with several Addrs and no MasterName it is a Cluster client
// (go-redis' universal client), and the URL then gives only the password
// and database. URL is a Secret: its user info may hold the password.
type Redis struct {
	URL        Secret   `yaml:"url"`
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
}

// FHIR holds the limits of calls to the EHR's FHIR server.
type FHIR struct {
	Timeout         time.Duration `yaml:"timeout"`
	MaxPages        int           `yaml:"max_pages"`
	MaxStudies      int           `yaml:"max_studies"`
	MaxResponseSize int64         `yaml:"max_response_bytes"`
}

// Feedback holds where CDS feedback events are kept.
type Feedback struct {
	MaxEvents int `yaml:"max_events"`
}

// ONNXRuntime holds the ONNX Runtime library and how models run on it.
type ONNXRuntime struct {
	Library string `yaml:"library"`
	// Models are the models served: shipped model ids (hip-000, spine-000) or folders
	// holding manifest.json and the ONNX file.
	Models            []string      `yaml:"models"`
	IntraOpThreads    int           `yaml:"intra_op_threads"`
	AllowSpinning     bool          `yaml:"allow_spinning"`
	GraphOptimization string        `yaml:"graph_optimization"`
	ExecutionProvider string        `yaml:"execution_provider"`
	BatchMax          int           `yaml:"batch_max"`
	BatchWait         time.Duration `yaml:"batch_wait"`
}

// Default returns the embedded defaults: loopback listener, in-memory cache,
// no CORS origins.
func Default() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		LogLevel: "info",
		HTTP: HTTP{
			RatePerIP:       20,
			BurstPerIP:      40,
			RatePerIssuer:   200,
			BurstPerIssuer:  400,
			BodyLimitBytes:  1 << 20,
			RequestTimeout:  10 * time.Second,
			ReadTimeout:     15 * time.Second,
			WriteTimeout:    30 * time.Second,
			IdleTimeout:     60 * time.Second,
			ShutdownTimeout: 20 * time.Second,
		},
		FHIR: FHIR{
			Timeout:         5 * time.Second,
			MaxPages:        5,
			MaxStudies:      50,
			MaxResponseSize: 16 << 20,
		},
		Feedback:   Feedback{MaxEvents: 10000},
		App:        App{Enabled: true, ClientID: "orthotriage", ImageMaxSide: 2048, Budget: 2 * time.Second, WorklistMax: 200, RefreshSeconds: 30},
		Precompute: Precompute{Workers: 2, QueueSize: 1000, MaxAttempts: 5, Backoff: time.Second, Visibility: 10 * time.Minute},
		Results: Results{StudiesPerCall: 3, ReviewBelow: 0.6, SourceLabel: "orthotriage AI triage",
			SourceURL: "https://github.com/orthotriage/orthotriage", HeatmapSide: 96, Kept: 1000, WriteBackRetries: 3,
			TTL: 24 * time.Hour, BudgetPatientView: 1500 * time.Millisecond, BudgetStudyAvailable: 5 * time.Second,
			PendingCard: true, AnalysisTimeout: 2 * time.Minute, PresentedForm: "none", PresentedFormMaxBytes: 64 << 10},
		ONNXRuntime: ONNXRuntime{Models: []string{"hip-000", "spine-000"}, GraphOptimization: "all", ExecutionProvider: "cpu",
			BatchMax: 8, BatchWait: 5 * time.Millisecond},
		Imaging: Imaging{
			MaxInstanceBytes: 64 << 20,
			MaxRows:          8192,
			MaxColumns:       8192,
			MaxFrames:        16,
			FetchTimeout:     30 * time.Second,
			FetchRetries:     2,
			ImagesPerSeries:  1,
			ImagesPerStudy:   4,
		},
		Auth: Auth{Leeway: 30 * time.Second, ReplayMax: 100000},
	}
}

// setting is one configurable value: its YAML key, its environment variable
// and flag (both derived from the key), a usage line and accessors.
type setting struct {
	key   string
	usage string
	set   func(string) error
	get   func() string
	// isBool: the flag may be given bare (--auth-disabled) for true.
	isBool bool
}

func (s setting) env() string {
	return "ORTHOTRIAGE_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(s.key))
}

func (s setting) flag() string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(s.key)
}

// settings binds every setting to c's fields. It is the one list that the
// environment, the flags and --help are built from.
func (c *Config) settings() []setting {
	return []setting{
		str("listen", "address to listen on (host:port; port 0 picks a free one)", &c.Listen),
		str("log_level", "log level: debug, info, warn or error", &c.LogLevel),
		float("http.rate_per_ip", "CDS calls per second allowed from one client address (0: no limit)", &c.HTTP.RatePerIP),
		integer("http.burst_per_ip", "burst of CDS calls allowed from one client address", &c.HTTP.BurstPerIP),
		float("http.rate_per_issuer", "CDS calls per second allowed from one authenticated issuer (0: no limit)", &c.HTTP.RatePerIssuer),
		integer("http.burst_per_issuer", "burst of CDS calls allowed from one issuer", &c.HTTP.BurstPerIssuer),
		str("http.tls_cert_file", "PEM certificate (chain) to serve HTTPS with; with http.tls_key_file", &c.HTTP.TLSCertFile),
		str("http.tls_key_file", "PEM private key of http.tls_cert_file", &c.HTTP.TLSKeyFile),
		bytesize("http.body_limit_bytes", "largest request body accepted, in bytes", &c.HTTP.BodyLimitBytes),
		dur("http.request_timeout", "deadline for handling one request", &c.HTTP.RequestTimeout),
		dur("http.read_timeout", "deadline for reading a request, headers and body", &c.HTTP.ReadTimeout),
		dur("http.write_timeout", "deadline for writing a response", &c.HTTP.WriteTimeout),
		dur("http.idle_timeout", "how long an idle keep-alive connection stays open", &c.HTTP.IdleTimeout),
		dur("http.shutdown_timeout", "how long SIGTERM waits for in-flight requests", &c.HTTP.ShutdownTimeout),
		list("cors.allowed_origins", "comma-separated browser origins allowed to call the CDS endpoints (* for any)", &c.CORS.AllowedOrigins),
		secretURL("redis.url", "Redis URL (redis://[:password@]host:port/db or rediss://); empty runs in memory", &c.Redis.URL),
		list("redis.addrs", "comma-separated Sentinel or Cluster node addresses (host:port); redis.url then gives password and db", &c.Redis.Addrs),
		str("redis.master_name", "Sentinel master name (with redis.addrs)", &c.Redis.MasterName),
		dur("fhir.timeout", "deadline for one call to the EHR's FHIR server", &c.FHIR.Timeout),
		integer("fhir.max_pages", "most search Bundle pages followed through next links", &c.FHIR.MaxPages),
		integer("fhir.max_studies", "most ImagingStudy resources considered per hook call", &c.FHIR.MaxStudies),
		bytesize("fhir.max_response_bytes", "largest FHIR response body read, in bytes", &c.FHIR.MaxResponseSize),
		integer("feedback.max_events", "CDS feedback events kept (in memory, or the Redis stream length)", &c.Feedback.MaxEvents),
		str("onnxruntime.library", "path of libonnxruntime.so; empty searches .cache/onnxruntime and /usr/local/lib", &c.ONNXRuntime.Library),
		list("onnxruntime.models", "comma-separated models to serve: shipped ids (hip-000, spine-000) or folders with manifest.json and the model files", &c.ONNXRuntime.Models),
		integer("onnxruntime.intra_op_threads", "threads one inference may use (0: one per core)", &c.ONNXRuntime.IntraOpThreads),
		boolean("onnxruntime.allow_spinning", "let ONNX Runtime's threads spin between runs (a little lower latency under constant load; burns a core while idle)", &c.ONNXRuntime.AllowSpinning),
		str("onnxruntime.graph_optimization", "graph optimisation level: all, extended, basic or disabled", &c.ONNXRuntime.GraphOptimization),
		str("onnxruntime.execution_provider", "cpu, or cuda when the library was built with it", &c.ONNXRuntime.ExecutionProvider),
		integer("onnxruntime.batch_max", "most crops run together in one batch", &c.ONNXRuntime.BatchMax),
		dur("onnxruntime.batch_wait", "how long the first request of a batch waits for others to join", &c.ONNXRuntime.BatchWait),
		bytesize("imaging.max_instance_bytes", "largest DICOM instance or image attachment read, in bytes", &c.Imaging.MaxInstanceBytes),
		integer("imaging.max_rows", "most pixel rows of an image", &c.Imaging.MaxRows),
		integer("imaging.max_columns", "most pixel columns of an image", &c.Imaging.MaxColumns),
		integer("imaging.max_frames", "most frames of a DICOM instance (the first is analysed)", &c.Imaging.MaxFrames),
		dur("imaging.fetch_timeout", "deadline for one DICOMweb or attachment request", &c.Imaging.FetchTimeout),
		integer("imaging.fetch_retries", "retries after a 5xx, 429 or connection error, with doubling backoff", &c.Imaging.FetchRetries),
		boolean("imaging.compressed_transfer", "let DICOMweb answers come gzip-compressed (off: Accept-Encoding: identity, as DICOM files barely compress and a PACS compressing each instance costs more than it saves)", &c.Imaging.CompressedTransfer),
		integer("imaging.images_per_series", "radiographs taken from each series of a study", &c.Imaging.ImagesPerSeries),
		integer("imaging.images_per_study", "radiographs taken from one study in all", &c.Imaging.ImagesPerStudy),
		boolean("auth.disabled", "turn CDS client JWT checks off (local demo only; logged loudly)", &c.Auth.Disabled),
		str("auth.public_base_url", "the service's URL as EHRs call it (aud = this + path) and the base of report links; required unless auth.disabled", &c.Auth.PublicBaseURL),
		str("auth.issuers_file", "YAML file of trusted issuers: a list of {iss, jwks_file or jwks_url, jku_allowlist, fhir_servers}", &c.Auth.IssuersFile),
		dur("auth.leeway", "clock skew allowed on exp, nbf and iat", &c.Auth.Leeway),
		str("auth.private_key_file", "PEM key (P-384 EC or RSA) signing SMART Backend Services assertions; public half at /.well-known/jwks.json", &c.Auth.PrivateKeyFile),
		integer("auth.replay_max", "most token ids remembered in memory against replay (Redis when configured)", &c.Auth.ReplayMax),
		boolean("egress.allow_private", "let request-named URLs reach loopback, private, link-local and CGNAT addresses", &c.Egress.AllowPrivate),
		list("egress.allowed_cidrs", "comma-separated address ranges always reachable, e.g. an internal FHIR server's 10.20.0.0/16", &c.Egress.AllowedCIDRs),
		str("egress.ca_file", "PEM CA certificates trusted for outbound TLS, besides the system roots", &c.Egress.CAFile),
		integer("results.studies_per_call", "newest studies of the patient analysed per hook call", &c.Results.StudiesPerCall),
		boolean("results.normal_card", "answer an info card when every finding is normal (off: no card)", &c.Results.NormalCard),
		float("results.review_below", "findings below this probability are marked low confidence, needs review (0: never)", &c.Results.ReviewBelow),
		boolean("results.system_actions", "send the FHIR resources as systemActions (stored by the EHR at once) instead of a card suggestion", &c.Results.SystemActions),
		str("results.viewer_url", "SMART app launch URL offered on cards (appContext carries the study and report); empty: none", &c.Results.ViewerURL),
		str("results.source_label", "cards' source label", &c.Results.SourceLabel),
		str("results.source_url", "cards' source URL", &c.Results.SourceURL),
		str("results.source_icon", "cards' source icon URL (100x100 PNG)", &c.Results.SourceIcon),
		integer("results.heatmap_side", "side in pixels of the heat-map thumbnails in reports (0: none)", &c.Results.HeatmapSide),
		integer("results.kept", "results kept in memory for report links and repeated calls", &c.Results.Kept),
		boolean("results.write_back", "store each result's resources on the EHR's FHIR server (transaction Bundle)", &c.Results.WriteBack),
		dur("results.ttl", "how long a study's result is kept (Redis or memory)", &c.Results.TTL),
		dur("results.budget_patient_view", "how long patient-view waits for analyses; the rest finish in the background", &c.Results.BudgetPatientView),
		dur("results.budget_study_available", "how long the imagingstudy-available hook waits for analyses", &c.Results.BudgetStudyAvailable),
		boolean("results.pending_card", "answer an info card naming studies still in analysis at the budget", &c.Results.PendingCard),
		dur("results.analysis_timeout", "deadline of one background analysis of a study", &c.Results.AnalysisTimeout),
		secret("results.link_secret", "secret signing report links (at least 32 characters, the same on every replica); empty: a random key per process", &c.Results.LinkSecret),
		str("results.presented_form", "how the DiagnosticReport carries the HTML report: none (the card links it), link (presentedForm.url, the signed link), inline (base64 data) or binary (a Binary resource beside it, which presentedForm.url references)", &c.Results.PresentedForm),
		integer("results.presented_form_max_bytes", "largest HTML report put inline or in a Binary (results.presented_form=inline or binary); a larger one is left out", &c.Results.PresentedFormMaxBytes),
		integer("results.write_back_retries", "retries of a failed write-back (5xx, 429, connection), with doubling backoff", &c.Results.WriteBackRetries),
		integer("precompute.workers", "workers analysing queued studies in this process", &c.Precompute.Workers),
		integer("precompute.queue_size", "most studies waiting in the in-memory queue (without redis)", &c.Precompute.QueueSize),
		integer("precompute.max_attempts", "tries of a queued study before it goes to the dead-letter list", &c.Precompute.MaxAttempts),
		dur("precompute.backoff", "wait before a failed study is retried, doubled each time", &c.Precompute.Backoff),
		dur("precompute.visibility", "how long a queued study may stay unacknowledged before another replica takes it over", &c.Precompute.Visibility),
		str("precompute.fhir_server", "FHIR server whose Subscription notifications arrive at /fhir/subscription", &c.Precompute.FHIRServer),
		secret("precompute.notification_token", "bearer token Subscription notifications must carry (Subscription.channel.header)", &c.Precompute.NotificationToken),
		secret("precompute.admin_token", "bearer token for POST /api/v1/studies/analyze; empty: that call is off", &c.Precompute.AdminToken),
		boolean("app.enabled", "serve the SMART app (viewer and worklist) under /app/; cards link to it when auth.public_base_url is set", &c.App.Enabled),
		str("app.client_id", "the app's SMART client_id, as registered at the EHRs' authorization servers", &c.App.ClientID),
		list("app.connect_origins", "comma-separated origins the app's pages may call (FHIR and authorization servers); empty: the trusted issuers' iss, FHIR servers and token URLs", &c.App.ConnectOrigins),
		list("app.frame_ancestors", "comma-separated origins that may frame the app (the EHRs); empty: its own and cors.allowed_origins", &c.App.FrameAncestors),
		integer("app.image_max_side", "longest side in pixels of the radiograph sent to the app", &c.App.ImageMaxSide),
		dur("app.budget", "how long an app request waits for a study's analysis before answering pending", &c.App.Budget),
		integer("app.worklist_max", "most studies on one worklist", &c.App.WorklistMax),
		integer("app.refresh_seconds", "how often the worklist page refreshes itself", &c.App.RefreshSeconds),
		str("imaging.credentials_file", "YAML file of DICOMweb credentials: a list of {base_url, token} or {base_url, username, password}", &c.Imaging.CredentialsFile),
	}
}

func str(key, usage string, p *string) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error { *p = v; return nil },
		get: func() string { return *p }}
}

// secret binds a Secret setting: set like a string, shown masked (in --help
// and the logged configuration).
func secret(key, usage string, p *Secret) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error { *p = Secret(v); return nil },
		get: func() string { return p.String() }}
}

// secretURL is secret for a URL whose user info may hold a password: it is
// shown with only the password masked, so the log still says where it
// points.
func secretURL(key, usage string, p *Secret) setting {
	s := secret(key, usage, p)
	s.get = func() string { return RedactURL(p.Reveal()) }
	return s
}

func list(key, usage string, p *[]string) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error {
			*p = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					*p = append(*p, s)
				}
			}
			return nil
		},
		get: func() string { return strings.Join(*p, ",") }}
}

func float(key, usage string, p *float64) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("not a number")
			}
			*p = f
			return nil
		},
		get: func() string { return strconv.FormatFloat(*p, 'g', -1, 64) }}
}

func boolean(key, usage string, p *bool) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not true or false")
			}
			*p = b
			return nil
		},
		get: func() string { return strconv.FormatBool(*p) }, isBool: true}
}

// flagValue records a flag's value, to be set after the file and the
// environment; a boolean one may be given bare (flag.Value with
// IsBoolFlag), or as --name=false.
type flagValue struct {
	isBool bool
	record func(string) error
}

func (f flagValue) String() string     { return "" }
func (f flagValue) Set(v string) error { return f.record(v) }
func (f flagValue) IsBoolFlag() bool   { return f.isBool }

func dur(key, usage string, p *time.Duration) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration like 500ms or 10s")
			}
			*p = d
			return nil
		},
		get: func() string { return p.String() }}
}

func integer(key, usage string, p *int) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			*p = n
			return nil
		},
		get: func() string { return strconv.Itoa(*p) }}
}

func bytesize(key, usage string, p *int64) setting {
	return setting{key: key, usage: usage,
		set: func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("not an integer number of bytes")
			}
			*p = n
			return nil
		},
		get: func() string { return strconv.FormatInt(*p, 10) }}
}

// ErrHelp is returned by Load when --help was asked for; the usage has then
// been written to the output given to Load.
var ErrHelp = flag.ErrHelp

// Load builds the Config for a command: defaults, then the YAML file named by
// --config (strict: unknown keys are errors), then ORTHOTRIAGE_* variables from
// getenv, then flags. It validates the result.
func Load(name string, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	configFile := fs.String("config", getenv("ORTHOTRIAGE_CONFIG"), "YAML configuration `file` (env ORTHOTRIAGE_CONFIG)")
	type givenFlag struct {
		s setting
		v string
	}
	var given []givenFlag
	for _, s := range c.settings() {
		fs.Var(flagValue{isBool: s.isBool, record: func(v string) error {
			given = append(given, givenFlag{s, v})
			return nil
		}}, s.flag(), s.usage)
	}
	fs.Usage = func() { usage(fs, out, name) }
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		if _, err := strconv.ParseBool(fs.Arg(0)); err == nil {
			return c, fmt.Errorf("unexpected argument %q (a boolean flag is given bare, --auth-disabled, or as --auth-disabled=%s)", fs.Arg(0), fs.Arg(0))
		}
		return c, fmt.Errorf("unexpected argument %q (settings are flags like --listen ADDR)", fs.Arg(0))
	}
	if *configFile != "" {
		if err := c.loadFile(*configFile); err != nil {
			return c, err
		}
	}
	var errs []error
	for _, s := range c.settings() {
		if v := getenv(s.env()); v != "" {
			if err := s.set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s (env %s): %w", s.key, s.env(), err))
			}
		}
	}
	for _, g := range given {
		if err := g.s.set(g.v); err != nil {
			errs = append(errs, fmt.Errorf("%s (flag --%s): %w", g.s.key, g.s.flag(), err))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	if c.Imaging.CredentialsFile != "" {
		if err := strictYAML(c.Imaging.CredentialsFile, &c.Imaging.Credentials); err != nil {
			return c, fmt.Errorf("config: imaging.credentials_file: %w", err)
		}
	}
	if c.Auth.IssuersFile != "" {
		if err := strictYAML(c.Auth.IssuersFile, &c.Auth.Issuers); err != nil {
			return c, fmt.Errorf("config: auth.issuers_file: %w", err)
		}
	}
	return c, c.validate(name == "serve")
}

// strictYAML decodes a YAML file into v; unknown keys are errors.
func strictYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (c *Config) loadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

func usage(fs *flag.FlagSet, out io.Writer, name string) {
	fmt.Fprintf(out, "Usage: orthotriage %s [flags]\n\n", name)
	fmt.Fprintf(out, "Every setting comes, lowest precedence first, from its default, the YAML file\n")
	fmt.Fprintf(out, "given by --config (key as shown), its ORTHOTRIAGE_* variable, then its flag.\n\n")
	fmt.Fprintf(out, "  --config FILE\n        YAML configuration file (env ORTHOTRIAGE_CONFIG)\n")
	def := Default()
	for _, s := range def.settings() {
		fmt.Fprintf(out, "  --%s\n        %s\n        key %s, env %s, default %q\n", s.flag(), s.usage, s.key, s.env(), s.get())
	}
}

// Redacted returns the settings as key/value pairs fit for a log line: each
// Secret setting shows masked (redis.url with only its password masked).
func (c Config) Redacted() map[string]string {
	m := map[string]string{}
	for _, s := range c.settings() {
		m[s.key] = s.get()
	}
	m["imaging.credentials"] = fmt.Sprintf("%d entries", len(c.Imaging.Credentials))
	m["auth.issuers"] = fmt.Sprintf("%d trusted", len(c.Auth.Issuers))
	return m
}

// RedactURL masks the password of a URL's user info.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable)"
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
