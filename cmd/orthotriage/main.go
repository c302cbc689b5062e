// Command orthotriage is the AI triage service for musculoskeletal
// radiographs: a CDS Hooks 2.0 service for EHRs.
//
//	orthotriage serve [flags]   run the service (see serve --help)
//	orthotriage inspect FILE    decode one radiograph and print what the pipeline sees
//	orthotriage phantom KIND    generate synthetic radiographs with known truth
//	orthotriage analyze FILE    run the model on a radiograph locally
//	orthotriage eval            evaluate a model on labelled radiographs
//	orthotriage sandbox         seed a FHIR sandbox and PACS, and test the service as an EHR
//	orthotriage version         print version, commit, Go and ONNX Runtime versions
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// version and commit are set at build time with -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orthotriage:", err)
		os.Exit(1)
	}
}

const usage = `orthotriage: AI triage of hip and spine radiographs for the EHR (CDS Hooks 2.0)

Usage:
  orthotriage serve [flags]   run the service; "orthotriage serve --help" lists every setting
  orthotriage inspect [--png OUT] FILE.dcm|URL
                              decode one radiograph and print what the pipeline sees (JSON)
  orthotriage phantom pelvis|spine --n N --seed S --out DIR [--crops-only] [--png]
                              generate synthetic radiographs with known truth (DICOM + labels.csv)
  orthotriage analyze [--json] [--heatmap OUT] [--model ID|DIR] FILE.dcm|DIR
                              run the model on radiographs locally: findings per hip, timings, heat maps
  orthotriage eval --model ID|DIR --data DIR [--json] [--plots DIR]
                              evaluate a model on labelled DICOM files (accuracy, macro-F1, macro-AUC, CIs)
  orthotriage sandbox seed|keys|check
                              the integration kit: seed a FHIR server and PACS, then play the EHR
  orthotriage version         print version, commit, Go and ONNX Runtime versions
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := config.Load("serve", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, newLogger(cfg.LogLevel, stdout))
	case "version":
		cfg, err := config.Load("version", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		printVersion(stdout, cfg)
		return nil
	case "inspect":
		// Settings come from ORTHOTRIAGE_* and ORTHOTRIAGE_CONFIG; the
		// command's own flags are --png and the file.
		cfg, err := config.Load("inspect", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return inspect(ctx, args[1:], retrieverOptions(cfg).Limits, stdout, stderr)
	case "phantom":
		cfg, err := config.Load("phantom", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return phantomCmd(ctx, args[1:], cfg.ONNXRuntime.Library, stdout, stderr)
	case "analyze":
		cfg, err := config.Load("analyze", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return analyzeCmd(ctx, args[1:], cfg.ONNXRuntime.Library, retrieverOptions(cfg).Limits, stdout, stderr)
	case "eval":
		// Settings (the ONNX Runtime library, decoding limits) come from
		// ORTHOTRIAGE_* and ORTHOTRIAGE_CONFIG; the command has its own flags.
		cfg, err := config.Load("eval", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return evalCmd(ctx, args[1:], cfg.ONNXRuntime.Library, retrieverOptions(cfg).Limits, stdout, stderr)
	case "sandbox":
		return sandboxCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// loadModels loads ONNX Runtime and every configured model, each behind a
// batcher; it fails, naming the file, when any is missing or mismatched.
func loadModels(o config.ONNXRuntime, log *slog.Logger) ([]servedModel, error) {
	if _, err := onnx.Start(o.Library); err != nil {
		return nil, err
	}
	opt := onnx.Options{Library: o.Library, BatchMax: o.BatchMax, BatchWait: o.BatchWait,
		Session: onnx.SessionOptions{IntraOpThreads: o.IntraOpThreads, GraphOptimization: o.GraphOptimization, ExecutionProvider: o.ExecutionProvider,
			Spinning: o.AllowSpinning}}
	load := func(name string) (servedModel, error) {
		m, err := loadManifest(name)
		if err != nil {
			return servedModel{}, fmt.Errorf("onnxruntime.models: %w", err)
		}
		l, err := onnx.Open(m, opt)
		if err != nil {
			return servedModel{}, err
		}
		log.Info("model loaded", "id", m.ID, "version", m.Version, "file", m.ModelPath(), "trainingData", m.TrainingData,
			"executionProvider", o.ExecutionProvider, "batchMax", o.BatchMax, "batchWait", o.BatchWait.String())
		if m.TrainingData == "synthetic" {
			log.Warn("model trained on synthetic data", "id", m.ID, "warning", m.Warning)
		}
		return servedModel{l}, nil
	}
	// The models load side by side (session creation is most of a start);
	// they are served in the configured order.
	loaded := make([]servedModel, len(o.Models))
	errs := make([]error, len(o.Models))
	var wg sync.WaitGroup
	for i, name := range o.Models {
		wg.Go(func() { loaded[i], errs[i] = load(name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, sm := range loaded {
			if errs[i] == nil {
				sm.close()
			}
		}
		return nil, err
	}
	return loaded, nil
}

// servedModel is a loaded model behind its batcher, with the vertebral
// pipeline around it for a vertebral model.
type servedModel struct{ *onnx.Loaded }

// classifier is what the analyzer runs.
func (s servedModel) classifier() analysis.Classifier {
	if s.Pipeline != nil {
		return &analysis.VertebralModel{Classifier: s.Batcher, Pipeline: s.Pipeline}
	}
	return s.Batcher
}

func (s servedModel) close() error { return s.Close() }

// outboundTransport is the HTTP transport for URLs named in requests: the
// egress policy checks every resolved address, and TLS trusts the system
// roots plus egress.ca_file.
func outboundTransport(cfg config.Config) (*http.Transport, error) {
	eg := auth.Egress{AllowPrivate: cfg.Egress.AllowPrivate}
	for _, c := range cfg.Egress.AllowedCIDRs {
		eg.Allowed = append(eg.Allowed, netip.MustParsePrefix(c)) // validated by config
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if cfg.Egress.CAFile != "" {
		pem, err := os.ReadFile(cfg.Egress.CAFile)
		if err != nil {
			return nil, fmt.Errorf("egress.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("egress.ca_file %s: no PEM certificate in it", cfg.Egress.CAFile)
		}
	}
	return eg.Transport(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}), nil
}

// newAuthenticator builds the CDS client JWT check, or returns nil when
// authentication is switched off.
func newAuthenticator(ctx context.Context, cfg config.Config, replay auth.ReplayCache, key *auth.ClientKey, outbound http.RoundTripper, log *slog.Logger) (func(context.Context, string, string) (cds.Caller, error), error) {
	if cfg.Auth.Disabled {
		log.Error("CDS client authentication is DISABLED (auth.disabled): any caller can use this service; for a local demo only")
		return nil, nil
	}
	var issuers []auth.Issuer
	backend := map[string]auth.BackendService{}
	for _, is := range cfg.Auth.Issuers {
		issuers = append(issuers, auth.Issuer{ID: is.Iss, JWKSFile: is.JWKSFile, JWKSURL: is.JWKSURL, JKUAllowlist: is.JKUAllowlist, FHIRServers: is.FHIRServers, DICOMwebBases: is.DICOMwebBases})
		if bs := is.BackendServices; bs != nil {
			backend[is.Iss] = auth.BackendService{TokenURL: bs.TokenURL, ClientID: bs.ClientID, Scope: bs.Scope}
		}
	}
	var tokens *auth.TokenSource
	if key != nil {
		tokens = auth.NewTokenSource(key, &http.Client{Transport: outbound})
	}
	if len(issuers) == 0 {
		log.Error("no trusted issuers (auth.issuers_file): every CDS call will be refused with 401")
	}
	v, err := auth.NewVerifier(ctx, issuers, replay, cfg.Auth.Leeway, log)
	if err != nil {
		return nil, fmt.Errorf("auth.issuers_file: %w", err)
	}
	return func(ctx context.Context, token, aud string) (cds.Caller, error) {
		c, err := v.Verify(ctx, token, aud)
		if err != nil {
			return cds.Caller{}, err
		}
		caller := cds.Caller{Issuer: c.Issuer, FHIRServers: c.FHIRServers, DICOMwebBases: c.DICOMwebBases}
		if bs, ok := backend[c.Issuer]; ok && tokens != nil {
			caller.BackendToken = func(ctx context.Context) (string, error) { return tokens.Token(ctx, bs) }
		}
		return caller, nil
	}, nil
}

func jwksOf(k *auth.ClientKey) []byte {
	if k == nil {
		return nil
	}
	return k.JWKS()
}

// retrieverOptions maps the imaging settings onto the imaging room's options.
func retrieverOptions(cfg config.Config) imaging.RetrieverOptions {
	im := cfg.Imaging
	o := imaging.RetrieverOptions{
		Limits:  imaging.Limits{MaxBytes: im.MaxInstanceBytes, MaxRows: im.MaxRows, MaxColumns: im.MaxColumns, MaxFrames: im.MaxFrames},
		Timeout: im.FetchTimeout,
		Retries: im.FetchRetries,
		// Off by default: see imaging.RetrieverOptions.Compressed.
		Compressed: im.CompressedTransfer,
	}
	if im.FetchRetries == 0 {
		o.Retries = -1 // zero configured means none; the imaging default is 2
	}
	for _, c := range im.Credentials {
		o.Credentials = append(o.Credentials, imaging.Credential{BaseURL: c.BaseURL, Token: c.Token.Reveal(), Username: c.Username, Password: c.Password.Reveal()})
	}
	return o
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func printVersion(w io.Writer, cfg config.Config) {
	rev := commit
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	ortVersion := "not available"
	if path, err := onnx.FindLibrary(cfg.ONNXRuntime.Library); err != nil {
		ortVersion += " (" + err.Error() + ")"
	} else if v, err := onnx.RuntimeVersion(path); err != nil {
		ortVersion += " (" + err.Error() + ")"
	} else {
		ortVersion = v + " (" + path + ")"
	}
	fmt.Fprintf(w, "orthotriage %s\ncommit: %s\ngo: %s %s/%s\nonnxruntime: %s\n",
		version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, ortVersion)
}

// serve wires the service from cfg and runs it until ctx is done, then
// drains in-flight requests and closes what it opened.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) (err error) {
	log.Info("starting", "version", version, "config", cfg.Redacted())
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	models, err := loadModels(cfg.ONNXRuntime, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, b := range models {
			err = errors.Join(err, b.close())
		}
	}()
	for _, b := range models {
		id := b.Manifest.ID
		labels := prometheus.Labels{"model": id}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orthotriage_inference_batches_total",
				Help: "Batches run by the model's session.", ConstLabels: labels},
				func() float64 { n, _ := b.Batcher.Stats(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orthotriage_inference_crops_total",
				Help: "Crops (one per hip, or per vertebral body) classified by the model.", ConstLabels: labels},
				func() float64 { _, n := b.Batcher.Stats(); return float64(n) }))
	}
	ready := []api.Check{{Name: "models", Check: func(context.Context) error {
		if len(models) == 0 {
			return errors.New("no model loaded")
		}
		return nil
	}}}
	var feedback cds.FeedbackLog = store.NewMemoryFeedback(cfg.Feedback.MaxEvents)
	var replay auth.ReplayCache = store.NewMemoryReplay(cfg.Auth.ReplayMax)
	var results cds.ReportStore = store.NewMemoryResults(cfg.Results.Kept)
	var locker analysis.Locker = store.NewMemoryLocker()
	queuePolicy := analysis.QueuePolicy{MaxAttempts: cfg.Precompute.MaxAttempts, Backoff: cfg.Precompute.Backoff}
	memQueue := store.NewMemoryQueue(cfg.Precompute.QueueSize, queuePolicy, log)
	var queue analysis.Queue = memQueue
	queueStats := &memQueue.Stats
	if cfg.Redis.URL != "" || len(cfg.Redis.Addrs) > 0 {
		rdb, err := store.NewUniversalClient(cfg.Redis.URL.Reveal(), cfg.Redis.Addrs, cfg.Redis.MasterName)
		if err != nil {
			return fmt.Errorf("redis.url: %w", err)
		}
		results, locker = store.NewRedisResults(rdb), store.NewRedisLocker(rdb)
		rq := store.NewRedisQueue(rdb, queuePolicy, "", log)
		rq.Visibility = cfg.Precompute.Visibility
		queue, queueStats = rq, &rq.Stats
		defer func() { err = errors.Join(err, rdb.Close()) }()
		feedback = store.NewRedisFeedback(rdb, cfg.Feedback.MaxEvents)
		replay = auth.Fallback{Primary: store.NewRedisReplay(rdb), Secondary: replay, OnError: func(err error) {
			log.Warn("jti replay check fell back to memory", "err", err)
		}}
		ready = append(ready, api.Check{Name: "redis", Degrades: true, Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
		if err := rdb.Ping(ctx).Err(); err != nil {
			log.Warn("redis not reachable at start: hooks are answered without the cache, readiness reports degraded until it is", "err", err)
		}
	} else {
		log.Info("no redis.url: results, locks and feedback are kept in this process")
	}

	outbound, err := outboundTransport(cfg)
	if err != nil {
		return err
	}
	fhirClient := fhir.NewClient(cfg.FHIR.Timeout, cfg.FHIR.MaxResponseSize, outbound)
	resolver := &cds.Resolver{
		FHIR:       fhirClient,
		MaxPages:   cfg.FHIR.MaxPages,
		MaxStudies: cfg.FHIR.MaxStudies,
		Log:        log,
	}
	ro := retrieverOptions(cfg)
	ro.Transport = outbound
	engine, triage, cached := wireResults(cfg, models, imaging.NewRetriever(ro), fhirClient, resolver, feedback, results, locker, log)
	for _, m := range []struct {
		name, help string
		value      func(analysis.CacheStats) uint64
	}{
		{"orthotriage_analyses_total", "Studies analysed here (results computed, not read from the store).",
			func(s analysis.CacheStats) uint64 { return s.Computed }},
		{"orthotriage_result_cache_hits_total", "Analyses answered from the result store.",
			func(s analysis.CacheStats) uint64 { return s.Hits }},
		{"orthotriage_result_cache_misses_total", "Analyses not in the store when asked (computed, or waited for).",
			func(s analysis.CacheStats) uint64 { return s.Misses }},
		{"orthotriage_result_store_errors_total", "Result store or lock operations that failed (Redis down or slow); they were retried, or the analysis went on without.",
			func(s analysis.CacheStats) uint64 { return s.StoreErrors }},
		{"orthotriage_result_store_outages_total", "Times the result store was found down (connection refused, or failing without a success for 3 s).",
			func(s analysis.CacheStats) uint64 { return s.Outages }},
		{"orthotriage_study_lock_bypassed_total", "Analyses run without the cross-replica study lock because the store was down (another replica may compute the same study).",
			func(s analysis.CacheStats) uint64 { return s.LockBypassed }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help},
			func() float64 { return float64(m.value(cached.Stats())) }))
	}
	var clientKey *auth.ClientKey
	if cfg.Auth.PrivateKeyFile != "" {
		if clientKey, err = auth.LoadClientKey(cfg.Auth.PrivateKeyFile); err != nil {
			return fmt.Errorf("auth.private_key_file: %w", err)
		}
	}
	authenticate, err := newAuthenticator(ctx, cfg, replay, clientKey, outbound, log)
	if err != nil {
		return err
	}
	tenants := tenantsFrom(cfg, clientKey, outbound)
	workers, stopWorkers := context.WithCancel(ctx)
	workersDone := make(chan struct{})
	defer func() { // before Redis is closed (deferred earlier, run later)
		stopWorkers()
		<-workersDone
	}()
	go func() {
		defer close(workersDone)
		queue.Work(workers, cfg.Precompute.Workers, func(ctx context.Context, j analysis.Job) error {
			t, ok := tenants(j.FHIRServer)
			if !ok { // refused at enqueue; the registration changed since
				return fmt.Errorf("fhir server %s is no longer registered", j.FHIRServer)
			}
			return triage.Precompute(ctx, j, t)
		})
	}()
	log.Info("precompute workers started", "workers", cfg.Precompute.Workers, "queue", fmt.Sprintf("%T", queue))
	for _, m := range []struct {
		event string
		value func() uint64
	}{
		{"enqueued", queueStats.Enqueued.Load}, {"done", queueStats.Done.Load},
		{"retried", queueStats.Retried.Load}, {"dead_lettered", queueStats.DeadLettered.Load},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orthotriage_precompute_jobs_total",
			Help:        "Precompute jobs by event: enqueued here, done, retried, dead-lettered (after precompute.max_attempts).",
			ConstLabels: prometheus.Labels{"event": m.event}}, func() float64 { return float64(m.value()) }))
	}
	precompute := &api.Precompute{
		Enqueue: func(ctx context.Context, fhirServer, study string) error {
			if _, ok := tenants(fhirServer); !ok {
				return orthotriage.Errorf(orthotriage.EForbidden, "fhirServer %s is not registered for any issuer (auth.issuers_file fhir_servers)", fhirServer)
			}
			if err := queue.Enqueue(ctx, analysis.Job{FHIRServer: fhirServer, Study: study}); err != nil {
				return &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "the study could not be queued", Err: err}
			}
			return nil
		},
		NotifiedStudies:   fhir.NotifiedStudies,
		FHIRServer:        cfg.Precompute.FHIRServer,
		NotificationToken: cfg.Precompute.NotificationToken.Reveal(),
		AdminToken:        cfg.Precompute.AdminToken.Reveal(),
	}
	// Readiness is checked in the background (once before listening), so
	// that /readyz answers at once whatever Redis does; the checks run
	// until serve returns, after draining, and stop before Redis closes.
	readiness := api.NewReadiness(ready, api.DefaultReadinessInterval, api.DefaultReadinessTimeout)
	readiness.Refresh(ctx)
	checking, stopChecking := context.WithCancel(context.WithoutCancel(ctx))
	checkingDone := make(chan struct{})
	defer func() {
		stopChecking()
		<-checkingDone
	}()
	go func() {
		defer close(checkingDone)
		readiness.Run(checking)
	}()
	gin.SetMode(gin.ReleaseMode)
	handler := api.NewRouter(api.Options{
		Log:            log,
		Registry:       reg,
		CDS:            engine,
		Ready:          readiness,
		BodyLimit:      cfg.HTTP.BodyLimitBytes,
		RequestTimeout: cfg.HTTP.RequestTimeout,
		AllowedOrigins: cfg.CORS.AllowedOrigins,
		Authenticate:   authenticate,
		PublicBaseURL:  cfg.Auth.PublicBaseURL,
		PerIP:          api.RateLimit{Rate: cfg.HTTP.RatePerIP, Burst: cfg.HTTP.BurstPerIP},
		JWKS:           jwksOf(clientKey),
		PerIssuer:      api.RateLimit{Rate: cfg.HTTP.RatePerIssuer, Burst: cfg.HTTP.BurstPerIssuer},
		Precompute:     precompute,
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	scheme := "http"
	if cfg.HTTP.TLSCertFile != "" {
		scheme = "https"
		go func() { served <- srv.ServeTLS(ln, cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile) }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.HTTP.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
