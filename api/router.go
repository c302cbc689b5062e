// Package api is the HTTP edge of orthotriage: the gin router, its
// middleware (request ids, logs, metrics, panics, limits, CORS) and the
// handlers of the CDS Hooks endpoints, health, readiness and metrics. Every
// error body is a FHIR OperationOutcome.
package api

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: nil means ready.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
	// Degrades marks a dependency the service answers without (Redis):
	// its failure makes readiness "degraded" but still 200, so that a load
	// balancer keeps sending hooks, which are answered without the cache.
	Degrades bool
}

// Options configures the router.
type Options struct {
	Log            *slog.Logger
	Registry       *prometheus.Registry
	CDS            *cds.Engine
	Ready          []Check
	BodyLimit      int64
	RequestTimeout time.Duration
	AllowedOrigins []string
	// Authenticate checks the bearer token of a CDS call against aud, the
	// exact URL called; nil turns authentication off (local demo only).
	Authenticate func(ctx context.Context, token, aud string) (cds.Caller, error)
	// PublicBaseURL is the service's URL as callers see it; empty: taken
	// from each request's Host.
	PublicBaseURL string
	// PerIP and PerIssuer bound CDS calls per client address (before
	// authentication) and per authenticated issuer.
	PerIP, PerIssuer RateLimit
	// JWKS is this service's public JWK Set (SMART Backend Services), served
	// at /.well-known/jwks.json when set.
	JWKS []byte
	// Precompute serves the notification and analyze endpoints; nil: off.
	Precompute *Precompute
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	feedback *prometheus.CounterVec
	// cardFeedback counts recorded feedback matched to the cards issued.
	cardFeedback *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orthotriage_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orthotriage_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5, 5, 10},
		}, []string{"route", "method"}),
		feedback: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orthotriage_cds_feedback_total",
			Help: "CDS Hooks feedback items by service, outcome and result (recorded or duplicate).",
		}, []string{"service", "outcome", "result"}),
		cardFeedback: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orthotriage_card_feedback_total",
			Help: "Recorded feedback by service, outcome, override reason and the indicator of the card it is about (unknown: not a card remembered here).",
		}, []string{"service", "outcome", "reason", "card"}),
	}
}

// NewRouter returns the service's HTTP handler.
func NewRouter(o Options) http.Handler {
	m := newMetrics(o.Registry)
	h := &handlers{log: o.Log, cds: o.CDS, ready: o.Ready, metrics: m, publicBase: o.PublicBaseURL, precompute: o.Precompute}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(recoverPanics(o.Log), requestID(), observe(o.Log, m), cors(o.AllowedOrigins, o.Log), limits(o.BodyLimit, o.RequestTimeout))
	r.NoRoute(func(c *gin.Context) {
		writeError(c, o.Log, orthotriage.Errorf(orthotriage.ENotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		writeOutcome(c, http.StatusMethodNotAllowed, outcome(orthotriage.EUnsupported, "method "+c.Request.Method+" not allowed here", nil))
	})
	r.GET("/healthz", h.health)
	r.GET("/readyz", h.readiness)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{})))
	if len(o.JWKS) > 0 {
		r.GET("/.well-known/jwks.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/jwk-set+json", o.JWKS) })
	}
	cdsRoutes := r.Group("/cds-services",
		limitBy(newLimiters(o.PerIP), clientIP, "client address"),
		authenticate(o.Authenticate, o.PublicBaseURL, o.Log),
		limitBy(newLimiters(o.PerIssuer), callerIssuer, "issuer"))
	cdsRoutes.GET("", h.discovery)
	cdsRoutes.POST("/:id", h.call)
	cdsRoutes.POST("/:id/feedback", h.feedback)
	// The HTML report cards link to, opened in the clinician's browser
	// (no JWT): the link carries the service's signature of the report id.
	r.GET("/reports/:id", h.report)
	// Precompute producers; each checks its own bearer token.
	limited := limitBy(newLimiters(o.PerIP), clientIP, "client address")
	r.POST("/fhir/subscription", limited, h.subscription)
	r.POST("/api/v1/studies/analyze", limited, h.analyze)
	return r
}

type handlers struct {
	log     *slog.Logger
	cds     *cds.Engine
	ready   []Check
	metrics *metrics
	// publicBase is the configured public base URL ("" : from requests).
	publicBase string
	precompute *Precompute
}

func (h *handlers) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readiness runs every check with a short deadline and answers 503 naming
// the failing ones, or 200 "degraded" when only checks that degrade fail.
func (h *handlers) readiness(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	status, code := "ready", http.StatusOK
	checks := gin.H{}
	for _, ch := range h.ready {
		if err := ch.Check(ctx); err != nil {
			checks[ch.Name] = "failing: " + err.Error()
			if ch.Degrades {
				if code == http.StatusOK {
					status = "degraded"
				}
			} else {
				status, code = "not ready", http.StatusServiceUnavailable
			}
			continue
		}
		checks[ch.Name] = "ok"
	}
	c.JSON(code, gin.H{"status": status, "checks": checks})
}

func (h *handlers) discovery(c *gin.Context) {
	h.writeCDS(c, h.cds.Discovery())
}

func (h *handlers) call(c *gin.Context) {
	body, err := readJSON(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	ctx := cds.WithBaseURL(c.Request.Context(), baseURL(c.Request, h.publicBase))
	resp, err := h.cds.Call(ctx, c.Param("id"), body)
	if err != nil {
		writeError(c, h.log, h.deadline(c, err))
		return
	}
	h.writeCDS(c, resp)
}

func (h *handlers) feedback(c *gin.Context) {
	body, err := readJSON(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	id := c.Param("id")
	results, err := h.cds.RecordFeedback(c.Request.Context(), id, body)
	for _, r := range results {
		result := "recorded"
		if !r.Recorded {
			result = "duplicate"
		}
		h.metrics.feedback.WithLabelValues(id, r.Outcome, result).Inc()
		if r.Recorded {
			h.metrics.cardFeedback.WithLabelValues(id, r.Outcome, r.Reason, r.Card).Inc()
		}
	}
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.Status(http.StatusOK)
}

func (h *handlers) report(c *gin.Context) {
	html, err := h.cds.ReportHTML(c.Request.Context(), c.Param("id"), c.Query("sig"))
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.Header("Content-Security-Policy", "default-src 'none'; img-src data:; style-src 'unsafe-inline'")
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/html; charset=utf-8", html)
}

// deadline reports a request that ran out of time as unavailable.
func (h *handlers) deadline(c *gin.Context, err error) error {
	if c.Request.Context().Err() != nil && orthotriage.ErrorCode(err) == orthotriage.EInternal {
		return &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "request timed out", Err: err}
	}
	return err
}

// writeCDS encodes a CDS response through the one encoder that enforces the
// CDS Hooks JSON rules.
func (h *handlers) writeCDS(c *gin.Context, v any) {
	b, err := cds.Marshal(v)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.Data(http.StatusOK, "application/json", b)
}

// readJSON reads a body that must be declared as JSON.
func readJSON(c *gin.Context) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || (mt != "application/json" && mt != "application/fhir+json") {
		return nil, orthotriage.Errorf(orthotriage.EUnsupported, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, asError(err)
	}
	return body, nil
}
