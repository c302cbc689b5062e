package api

import (
	"context"
	"fmt"
	"github.com/orthotriage/orthotriage/internal/textx"
	"math"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness check: nil means ready. It must return when its
// ctx is done.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
	// Degrades marks a dependency the service answers without (Redis):
	// its failure makes readiness "degraded" but still 200, so that a load
	// balancer keeps sending hooks, which are answered without the cache.
	Degrades bool
}

// Readiness runs the readiness checks in the background and keeps their
// last results, so that /readyz answers at once whatever the dependencies
// do: a probe with a short timeout never sees a hanging Redis as a hanging
// service.
type Readiness struct {
	checks   []Check
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	mu     sync.Mutex
	states []checkState
}

// checkState is what is known of one check.
type checkState struct {
	err     error
	checked time.Time // when the last run ended; zero: none has
	running time.Time // when the run in flight began; zero: none is
}

// Readiness defaults: how often each check runs, and how long one run may
// take before /readyz reports it failing.
const (
	DefaultReadinessInterval = time.Second
	DefaultReadinessTimeout  = time.Second
)

// NewReadiness returns the readiness of checks, each run every interval
// with a deadline of timeout (zero: the defaults). Nothing runs until Run
// or Refresh is called.
func NewReadiness(checks []Check, interval, timeout time.Duration) *Readiness {
	if interval <= 0 {
		interval = DefaultReadinessInterval
	}
	if timeout <= 0 {
		timeout = DefaultReadinessTimeout
	}
	return &Readiness{checks: checks, interval: interval, timeout: timeout, now: time.Now, states: make([]checkState, len(checks))}
}

// Run runs every check now and then every interval, each on its own, until
// ctx is done; it returns once every check has returned.
func (r *Readiness) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range r.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(r.interval)
			defer tick.Stop()
			for {
				r.runOne(ctx, i)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
}

// Refresh runs every check once, together, and returns when all have
// answered or the check timeout has passed (a late check records its result
// when it returns). serve calls it before listening, so that the first
// /readyz already knows.
func (r *Readiness) Refresh(ctx context.Context) {
	done := make(chan struct{}, len(r.checks))
	for i := range r.checks {
		go func() {
			r.runOne(ctx, i)
			done <- struct{}{}
		}()
	}
	wait := time.NewTimer(r.timeout)
	defer wait.Stop()
	for range r.checks {
		select {
		case <-done:
		case <-wait.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// runOne runs check i with its deadline and records the result; it does
// nothing while a run of the same check is still in flight.
func (r *Readiness) runOne(ctx context.Context, i int) {
	r.mu.Lock()
	if !r.states[i].running.IsZero() {
		r.mu.Unlock()
		return
	}
	r.states[i].running = r.now()
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	err := safeCheck(cctx, r.checks[i].Check)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[i].running = time.Time{}
	if ctx.Err() != nil {
		return // shutting down: the check was cut short, not failing
	}
	r.states[i].err, r.states[i].checked = err, r.now()
}

// safeCheck runs check, turning a panic into a failure.
func safeCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return check(ctx)
}

// Report is the last known readiness: the HTTP status to answer with,
// "ready", "degraded" or "not ready", each check's state ("ok" or
// "failing: ...") and how many seconds ago each last answered.
func (r *Readiness) Report() (code int, status string, checks map[string]string, ages map[string]float64) {
	code, status = http.StatusOK, "ready"
	checks, ages = map[string]string{}, map[string]float64{}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ch := range r.checks {
		st := r.states[i]
		var failing string
		switch {
		case !st.running.IsZero() && now.Sub(st.running) > r.timeout:
			failing = fmt.Sprintf("no answer for %s", now.Sub(st.running).Round(time.Millisecond))
		case st.checked.IsZero():
			failing = "not checked yet"
		case st.err != nil:
			failing = st.err.Error()
		}
		if !st.checked.IsZero() {
			ages[ch.Name] = math.Round(now.Sub(st.checked).Seconds()*1000) / 1000
		}
		if failing == "" {
			checks[ch.Name] = "ok"
			continue
		}
		checks[ch.Name] = "failing: " + textx.Clip(failing, 200)
		if ch.Degrades {
			if code == http.StatusOK {
				status = "degraded"
			}
		} else {
			code, status = http.StatusServiceUnavailable, "not ready"
		}
	}
	return code, status, checks, ages
}
