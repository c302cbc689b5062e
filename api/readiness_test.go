package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Readiness.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestReadinessReport(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stuck := func(context.Context) error { // ignores its deadline
		once.Do(func() { close(entered) })
		<-release
		return nil
	}
	clock := &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	r := NewReadiness([]Check{
		{Name: "models", Check: func(context.Context) error { return nil }},
		{Name: "redis", Check: stuck, Degrades: true},
		{Name: "broken", Check: func(context.Context) error { panic("boom") }, Degrades: true},
		{Name: "failing", Check: func(context.Context) error { return errors.New("dial tcp: connection refused") }, Degrades: true},
	}, time.Hour, time.Second)
	r.now = clock.now
	for _, i := range []int{0, 2, 3} {
		r.runOne(t.Context(), i)
	}
	done := make(chan struct{})
	go func() { r.runOne(t.Context(), 1); close(done) }()
	<-entered
	clock.advance(1500 * time.Millisecond)
	r.runOne(t.Context(), 1) // a second run of a check in flight is skipped
	code, status, checks, ages := r.Report()
	want := map[string]string{
		"models":  "ok",
		"redis":   "failing: no answer for 1.5s",
		"broken":  "failing: check panicked: boom",
		"failing": "failing: dial tcp: connection refused",
	}
	if code != http.StatusOK || status != "degraded" {
		t.Errorf("report %d %s, want 200 degraded", code, status)
	}
	for name, w := range want {
		if checks[name] != w {
			t.Errorf("%s = %q, want %q", name, checks[name], w)
		}
	}
	if ages["models"] != 1.5 {
		t.Errorf("models checked %v s ago, want 1.5", ages["models"])
	}
	if _, ok := ages["redis"]; ok {
		t.Errorf("redis has an age (%v) but never answered", ages["redis"])
	}
	close(release)
	<-done
	if _, _, checks, _ := r.Report(); checks["redis"] != "ok" {
		t.Errorf("redis after it answered = %q, want ok", checks["redis"])
	}
}

// TestReadinessRunStopsWithItsContext: Run returns once its context ends,
// leaving no check running.
func TestReadinessRunStopsWithItsContext(t *testing.T) {
	var mu sync.Mutex
	calls, running := 0, 0
	check := func(ctx context.Context) error {
		mu.Lock()
		calls++
		running++
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		<-ctx.Done() // a slow dependency: returns at its deadline
		return ctx.Err()
	}
	r := NewReadiness([]Check{{Name: "a", Check: check}, {Name: "b", Check: check}}, 10*time.Millisecond, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for {
		mu.Lock()
		n := calls
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if running != 0 {
		t.Errorf("%d checks still running after Run returned", running)
	}
	if _, _, checks, _ := r.Report(); !strings.Contains(checks["a"], "not checked yet") {
		t.Errorf("a check cut short by shutdown was recorded: %q", checks["a"])
	}
}
