package api

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: Rate requests per second, bursts of Burst.
// A zero Rate turns the limit off.
type RateLimit struct {
	Rate  float64
	Burst int
}

// limiters holds one token bucket per key (client IP or issuer), forgetting
// keys idle for ten minutes so the map stays bounded.
type limiters struct {
	limit RateLimit
	mu    sync.Mutex
	keys  map[string]*keyLimiter
	swept time.Time
}

type keyLimiter struct {
	*rate.Limiter
	last time.Time
}

func newLimiters(l RateLimit) *limiters {
	return &limiters{limit: l, keys: map[string]*keyLimiter{}, swept: time.Now()}
}

// allow reports whether key may go on now, or how long it should wait.
func (l *limiters) allow(key string) (bool, time.Duration) {
	if l == nil || l.limit.Rate <= 0 {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, kl := range l.keys {
			if now.Sub(kl.last) > 10*time.Minute {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	kl, ok := l.keys[key]
	if !ok {
		kl = &keyLimiter{Limiter: rate.NewLimiter(rate.Limit(l.limit.Rate), max(1, l.limit.Burst))}
		l.keys[key] = kl
	}
	kl.last = now
	r := kl.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitBy answers 429 with Retry-After when key's bucket is empty.
func limitBy(l *limiters, key func(*gin.Context) string, what string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ok, wait := l.allow(key(c))
		if ok {
			c.Next()
			return
		}
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeOutcome(c, http.StatusTooManyRequests, outcome(orthotriage.EUnavailable, "too many requests from this "+what+"; retry later", nil))
	}
}

// clientIP is the peer address; X-Forwarded-For is not trusted, since the
// service cannot know which proxies are in front of it.
func clientIP(c *gin.Context) string {
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil {
		return c.Request.RemoteAddr
	}
	return host
}

func callerIssuer(c *gin.Context) string {
	if caller, ok := cds.CallerFrom(c.Request.Context()); ok {
		return caller.Issuer
	}
	return ""
}
