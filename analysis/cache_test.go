package analysis_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// slowRetriever is fakeRetriever held back until release is closed.
type slowRetriever struct {
	fakeRetriever
	release chan struct{}
	calls   atomic.Int32
}

func (s *slowRetriever) Retrieve(ctx context.Context, ep fhirmodels.Endpoint, ref imaging.InstanceRef, acc imaging.Access, n int) ([]*imaging.Image, error) {
	s.calls.Add(1)
	<-s.release
	return s.fakeRetriever.Retrieve(ctx, ep, ref, acc, n)
}

// refused is the error of a store that is down: its connection refused.
var refused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// brokenStore fails every operation, as Redis does when down.
type brokenStore struct{ calls atomic.Int32 }

func (b *brokenStore) Get(context.Context, string) (analysis.Result, bool, error) {
	b.calls.Add(1)
	return analysis.Result{}, false, fmt.Errorf("redis get result: %w", refused)
}

func (b *brokenStore) Put(context.Context, string, analysis.Result, time.Duration) error {
	b.calls.Add(1)
	return fmt.Errorf("redis set result: %w", refused)
}

func TestConcurrentCallsComputeOnce(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	sr := &slowRetriever{fakeRetriever: fakeRetriever{bodyPart: "PELVIS"}, release: make(chan struct{})}
	a := analyzer(sr, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 50 {
		wg.Go(func() {
			if _, err := c.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
				failed.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(sr.release)
	wg.Wait()
	if st := c.Stats(); st.Computed != 1 || sr.calls.Load() != 1 || failed.Load() != 0 {
		t.Errorf("50 callers: computed %d, retrieved %d times, %d failed; want 1, 1, 0", st.Computed, sr.calls.Load(), failed.Load())
	}
}

func TestBudgetEndsTheWaitNotTheWork(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	sr := &slowRetriever{fakeRetriever: fakeRetriever{bodyPart: "PELVIS"}, release: make(chan struct{})}
	a := analyzer(sr, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Analyze(ctx, studyWith("Pelvis")); !analysis.IsPending(err) {
		t.Fatalf("at the budget: %v, want a pending (deadline) error", err)
	}
	close(sr.release) // the background computation finishes and is stored
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Computed == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Computed != 1 || st.Hits != 1 {
		t.Errorf("stats %+v, want 1 computed and the second call a hit", st)
	}
}

func TestBrokenStoreIsBypassed(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	bs := &brokenStore{}
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, bs, nil, analysis.CacheOptions{StoreBackoff: time.Hour}, a.Log)
	for range 3 {
		if _, err := c.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
			t.Fatalf("with the store down: %v", err)
		}
	}
	// The first Get fails; then the store is left alone for the backoff,
	// and the result computed then is served from this process's near copy.
	if st := c.Stats(); bs.calls.Load() != 1 || st.StoreErrors != 1 || st.Computed != 1 || st.Hits != 2 {
		t.Errorf("store calls %d, stats %+v; want 1 store call, 1 error, 1 computed, 2 hits", bs.calls.Load(), st)
	}
}

// TestRetryBackOffIsCapped: each retry waits twice as long as the one
// before, up to MaxBackoff. (The queues themselves are tested in store.)
func TestRetryBackOffIsCapped(t *testing.T) {
	if d := (analysis.QueuePolicy{Backoff: time.Second, MaxBackoff: 5 * time.Second}).Delay(4); d != 5*time.Second {
		t.Errorf("fourth retry waits %s, want the 5 s cap", d)
	}
}

// panickyRetriever stands for a bug deep in retrieval or decoding.
type panickyRetriever struct{}

func (panickyRetriever) Retrieve(context.Context, fhirmodels.Endpoint, imaging.InstanceRef, imaging.Access, int) ([]*imaging.Image, error) {
	panic("index out of range")
}

func TestAPanicBecomesTheStudysError(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	a := analyzer(panickyRetriever{}, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	if _, err := c.Analyze(context.Background(), studyWith("Pelvis")); err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("err = %v, want an internal error", err)
	}
}
