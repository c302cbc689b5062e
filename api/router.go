// Package api is the HTTP edge of orthotriage: the gin router, its
// middleware (request ids, logs, metrics, panics, limits, CORS) and the
// handlers of the CDS Hooks endpoints, health, readiness and metrics. Every
// error body is a FHIR OperationOutcome.
package api

import (
	"bytes"
	"context"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/internal/textx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures the router.
type Options struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	CDS      *cds.Engine
	// Ready is the readiness /readyz reports, run by its owner (Run);
	// nil: always ready.
	Ready          *Readiness
	BodyLimit      int64
	RequestTimeout time.Duration
	AllowedOrigins []string
	// Authenticate checks the bearer token of a CDS call against aud, the
	// exact URL called; nil turns authentication off (local demo only).
	Authenticate func(ctx context.Context, token, aud string) (cds.Caller, error)
	// PublicBaseURL is the service's URL as callers see it: the base of
	// every token's aud and of report links. It never comes from a
	// request. Required with Authenticate (without it every CDS call gets
	// 401 and cards carry no report link); with authentication off and
	// none set, report links use the request's Host (local demo only).
	PublicBaseURL string
	// PerIP and PerIssuer bound CDS calls per client address (before
	// authentication) and per authenticated issuer.
	PerIP, PerIssuer RateLimit
	// JWKS is this service's public JWK Set (SMART Backend Services), served
	// at /.well-known/jwks.json when set.
	JWKS []byte
	// Precompute serves the notification and analyze endpoints; nil: off.
	Precompute *Precompute
	// App serves the SMART app and its API; nil: off.
	App *App
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
	if o.Ready == nil {
		o.Ready = NewReadiness(nil, 0, 0)
	}
	if o.Authenticate != nil && o.PublicBaseURL == "" {
		o.Log.Error("no public base URL (auth.public_base_url) with authentication on: every CDS call will be refused with 401")
	}
	h := &handlers{log: o.Log, cds: o.CDS, ready: o.Ready, metrics: m, publicBase: o.PublicBaseURL,
		authOn: o.Authenticate != nil, precompute: o.Precompute, perIP: o.PerIP}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(recoverPanics(o.Log), requestID(), observe(o.Log, m), cors(o.AllowedOrigins, o.Log), limits(o.BodyLimit, o.RequestTimeout))
	// Both echo what the caller sent, bounded: a method or path may be
	// up to a megabyte long.
	r.NoRoute(func(c *gin.Context) {
		writeError(c, o.Log, orthotriage.Errorf(orthotriage.ENotFound, "no route %s %s", textx.Clip(c.Request.Method, maxEchoedMethod), textx.Clip(c.Request.URL.Path, maxEchoedPath)))
	})
	r.NoMethod(func(c *gin.Context) {
		writeOutcome(c, http.StatusMethodNotAllowed, outcome(orthotriage.EUnsupported, "method "+textx.Clip(c.Request.Method, maxEchoedMethod)+" not allowed here", nil))
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
	if o.App != nil {
		o.App.routes(r, h)
	}
	return r
}

type handlers struct {
	log     *slog.Logger
	cds     *cds.Engine
	ready   *Readiness
	metrics *metrics
	// publicBase is the configured public base URL; authOn: CDS calls are
	// authenticated (then report links use publicBase only).
	publicBase string
	authOn     bool
	precompute *Precompute
	perIP      RateLimit
}

func (h *handlers) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readiness answers at once with the last known state of the checks, run
// in the background: 503 naming the failing ones, or 200 "degraded" when
// only checks that degrade fail.
func (h *handlers) readiness(c *gin.Context) {
	code, status, checks, ages := h.ready.Report()
	c.JSON(code, gin.H{"status": status, "checks": checks, "ageSeconds": ages})
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
	ctx := cds.WithBaseURL(c.Request.Context(), baseURL(c.Request, h.publicBase, h.authOn))
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
	h.countFeedback(id, results)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.Status(http.StatusOK)
}

// countFeedback counts feedback results sent to service id.
func (h *handlers) countFeedback(id string, results []cds.FeedbackResult) {
	// Every label from a fixed set: the id comes from the path.
	service := "other"
	if _, ok := h.cds.Catalog().Lookup(id); ok {
		service = id
	}
	for _, r := range results {
		result := "recorded"
		if !r.Recorded {
			result = "duplicate"
		}
		outcome := oneOf(r.Outcome, cds.OutcomeAccepted, cds.OutcomeOverridden)
		h.metrics.feedback.WithLabelValues(service, outcome, result).Inc()
		if r.Recorded {
			// Reason is an offered code or "other" (cds bounds it).
			h.metrics.cardFeedback.WithLabelValues(service, outcome, textx.Clip(r.Reason, 64), oneOf(r.Card, "info", "warning", "critical", "unknown")).Inc()
		}
	}
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
	buf := answerBuffers.get()
	defer answerBuffers.put(buf)
	b, err := cds.AppendMarshal((*buf)[:0], v)
	*buf = b
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	// With its length declared, the answer goes unchunked: one write
	// fewer per call, and the client knows its size up front.
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Data(http.StatusOK, "application/json", b)
}

// answerBuffers keeps answer buffers between calls: an answer (about 15
// KB with its resources) was most of the bytes a cached call allocated.
// The buffer is free again once Data returns, the bytes written to the
// connection (nothing on the way keeps them).
var answerBuffers bufferPool

// bufferPool is a pool of byte buffers; one grown past maxPooledAnswer is
// left to the garbage collector rather than kept.
type bufferPool struct{ p sync.Pool }

const maxPooledAnswer = 256 << 10

func (b *bufferPool) get() *[]byte {
	if buf, _ := b.p.Get().(*[]byte); buf != nil {
		return buf
	}
	return new([]byte)
}

func (b *bufferPool) put(buf *[]byte) {
	if cap(*buf) <= maxPooledAnswer {
		*buf = (*buf)[:0]
		b.p.Put(buf)
	}
}

// readJSON reads a body that must be declared as JSON.
func readJSON(c *gin.Context) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "application/json" { // the usual header needs no parsing
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/fhir+json") {
			return nil, orthotriage.Errorf(orthotriage.EUnsupported, "Content-Type must be application/json")
		}
	}
	// A declared length sizes the buffer once, with the room ReadFrom
	// wants to see the end (the body stays capped by limits'
	// MaxBytesReader whatever it declares).
	buf := bytes.NewBuffer(make([]byte, 0, min(max(c.Request.ContentLength, 0), maxPresizedBody)+bytes.MinRead))
	if _, err := buf.ReadFrom(c.Request.Body); err != nil {
		return nil, asError(err)
	}
	return buf.Bytes(), nil
}

// maxPresizedBody bounds the buffer a declared Content-Length reserves
// before any byte has come: a hook call with its prefetch fits, and a
// client declaring a large body it does not send holds no more than this
// (a larger body grows the buffer as it arrives, up to the body limit).
const maxPresizedBody = 64 << 10
