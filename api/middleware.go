package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
)

const requestIDKey = "request_id"

var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,64}$`)

// requestID takes the caller's X-Request-Id when it is sane, or makes one,
// and echoes it in the response.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if !saneRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

// route is the matched route template, so metrics and logs never carry ids
// from the path.
func route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// observe logs every request and records its metrics. Only the route
// template is logged: no query strings, bodies or headers.
func observe(log *slog.Logger, m *metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		elapsed := time.Since(start)
		status := strconv.Itoa(c.Writer.Status())
		m.requests.WithLabelValues(route(c), c.Request.Method, status).Inc()
		m.duration.WithLabelValues(route(c), c.Request.Method).Observe(elapsed.Seconds())
		log.InfoContext(c.Request.Context(), "request",
			"method", c.Request.Method, "route", route(c), "status", c.Writer.Status(),
			"duration_ms", float64(elapsed.Microseconds())/1000, "request_id", c.GetString(requestIDKey))
	}
}

// recoverPanics turns a panic into a 500 OperationOutcome and logs the stack.
func recoverPanics(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(c.Request.Context(), "panic", "route", route(c), "panic", p, "stack", string(debug.Stack()), "request_id", c.GetString(requestIDKey))
				if !c.Writer.Written() {
					writeError(c, log, orthotriage.Errorf(orthotriage.EInternal, "internal error"))
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// limits caps the request body and gives the request a deadline.
func limits(bodyLimit int64, timeout time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, bodyLimit)
		ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// cors allows the listed origins ("*": any) to call the API from a browser.
// Preflights from other origins are refused with 403.
func cors(allowed []string, log *slog.Logger) gin.HandlerFunc {
	anyOrigin := false
	set := map[string]bool{}
	for _, o := range allowed {
		if o == "*" {
			anyOrigin = true
		}
		set[strings.TrimRight(o, "/")] = true
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" {
			c.Next()
			return
		}
		ok := anyOrigin || set[origin]
		preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
		if ok {
			h := c.Writer.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "X-Request-Id")
		}
		if !preflight {
			c.Next()
			return
		}
		if !ok {
			writeError(c, log, orthotriage.Errorf(orthotriage.EForbidden, "origin %s is not allowed (cors.allowed_origins)", origin))
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// authenticate requires a verified bearer JWT whose aud is the URL called.
// Failures get a bare 401; the reason is logged, the token never is.
func authenticate(check func(ctx context.Context, token, aud string) (cds.Caller, error), publicBase string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if check == nil {
			c.Next()
			return
		}
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok {
			token = ""
		}
		caller, err := check(c.Request.Context(), strings.TrimSpace(token), audience(c.Request, publicBase))
		if err != nil {
			log.WarnContext(c.Request.Context(), "cds call refused", "route", route(c), "reason", err.Error(), "request_id", c.GetString(requestIDKey))
			c.AbortWithStatus(http.StatusUnauthorized)
			return
		}
		c.Request = c.Request.WithContext(cds.WithCaller(c.Request.Context(), caller))
		c.Next()
	}
}

// audience is the exact URL called: the public base URL (or the request's
// scheme and Host) plus the path, without the query.
func audience(r *http.Request, publicBase string) string {
	return baseURL(r, publicBase) + r.URL.Path
}

// baseURL is the service's URL as the caller sees it: the configured public
// base, else the request's scheme and Host.
func baseURL(r *http.Request, publicBase string) string {
	if publicBase == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		publicBase = scheme + "://" + r.Host
	}
	return strings.TrimRight(publicBase, "/")
}
