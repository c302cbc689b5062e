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
	"github.com/orthotriage/orthotriage/internal/textx"
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

// standardMethods are the methods of RFC 9110 and PATCH (RFC 5789).
var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

// methodLabel is the request method as metrics and logs carry it: a
// standard method, else "other". The raw method is any token up to the
// header size limit, and a label per value would grow without bound.
func methodLabel(method string) string {
	if standardMethods[method] {
		return method
	}
	return "other"
}

// oneOf is v when it is one of allowed, else "other": a label value from a
// fixed set.
func oneOf(v string, allowed ...string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return "other"
}

// Bounds of what an answer or a log line echoes from a request.
const (
	maxEchoedMethod = 32
	maxEchoedPath   = 200
)

// observe logs every request and records its metrics. Only the route
// template and the method's label are logged: no query strings, bodies or
// headers. A hook call's line also says what the call was about
// (cds.CallSummary), so that it needs no line of its own.
func observe(log *slog.Logger, m *metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		ctx, summary := cds.WithCallSummary(c.Request.Context())
		c.Request = c.Request.WithContext(ctx)
		c.Next()
		elapsed := time.Since(start)
		status := strconv.Itoa(c.Writer.Status())
		method := methodLabel(c.Request.Method)
		m.requests.WithLabelValues(route(c), method, status).Inc()
		m.duration.WithLabelValues(route(c), method).Observe(elapsed.Seconds())
		log.InfoContext(c.Request.Context(), "request", append([]any{
			"method", method, "route", route(c), "status", c.Writer.Status(),
			"duration_ms", float64(elapsed.Microseconds()) / 1000, "request_id", c.GetString(requestIDKey)},
			summary.LogAttrs()...)...)
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
			writeError(c, log, orthotriage.Errorf(orthotriage.EForbidden, "origin %s is not allowed (cors.allowed_origins)", textx.Clip(origin, maxEchoedPath)))
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// authenticate requires a verified bearer JWT whose aud is the URL called,
// under the configured public base URL (never one taken from the request).
// Failures get a bare 401 with WWW-Authenticate; the reason is logged, the
// token never is.
func authenticate(check func(ctx context.Context, token, aud string) (cds.Caller, error), publicBase string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if check == nil {
			c.Next()
			return
		}
		if publicBase == "" {
			log.ErrorContext(c.Request.Context(), "cds call refused", "route", route(c), "reason", "no auth.public_base_url to check aud against", "request_id", c.GetString(requestIDKey))
			unauthorized(c)
			return
		}
		token, _ := bearerToken(c.GetHeader("Authorization"))
		caller, err := check(c.Request.Context(), token, audience(c.Request, publicBase))
		if err != nil {
			log.WarnContext(c.Request.Context(), "cds call refused", "route", route(c), "reason", textx.Clip(err.Error(), 300), "request_id", c.GetString(requestIDKey))
			unauthorized(c)
			return
		}
		c.Request = c.Request.WithContext(cds.WithCaller(c.Request.Context(), caller))
		c.Next()
	}
}

// bearerToken is the credential of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 7235 section 2.1); ok is
// false for any other scheme or none.
func bearerToken(header string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimLeft(header, " "), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.Trim(rest, " ")
	return token, token != ""
}

// unauthorized answers a bare 401 naming the scheme expected (RFC 6750
// section 3).
func unauthorized(c *gin.Context) {
	c.Header("WWW-Authenticate", "Bearer")
	c.AbortWithStatus(http.StatusUnauthorized)
}

// audience is the exact URL called: the public base URL plus the path,
// without the query.
func audience(r *http.Request, publicBase string) string {
	return strings.TrimRight(publicBase, "/") + r.URL.Path
}

// baseURL is the service's URL as the caller sees it, for report links: the
// configured public base; with authentication off and none configured (a
// local demo), the request's scheme and Host; else "" (no links).
func baseURL(r *http.Request, publicBase string, authOn bool) string {
	if publicBase == "" {
		if authOn {
			return ""
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		publicBase = scheme + "://" + r.Host
	}
	return strings.TrimRight(publicBase, "/")
}
