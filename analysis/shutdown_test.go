package analysis_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// blockedRetriever holds every retrieval until its context ends, or, when
// deaf, until release is closed (a retrieval that ignores cancellation).
type blockedRetriever struct {
	deaf      bool
	release   chan struct{}
	started   chan struct{} // one value per retrieval begun
	cancelled atomic.Int32
}

func newBlockedRetriever(deaf bool) *blockedRetriever {
	return &blockedRetriever{deaf: deaf, release: make(chan struct{}), started: make(chan struct{}, 10)}
}

func (b *blockedRetriever) Retrieve(ctx context.Context, _ fhirmodels.Endpoint, _ imaging.InstanceRef, _ imaging.Access, _ int) ([]*imaging.Image, error) {
	b.started <- struct{}{}
	if b.deaf {
		<-b.release
		return nil, errors.New("released")
	}
	<-ctx.Done()
	b.cancelled.Add(1)
	return nil, ctx.Err()
}

// Shutdown cancels the analyses under way, the background computation a
// hook stopped waiting for and an uncacheable one alike, waits for them,
// and refuses later ones.
func TestShutdownCancelsAndWaitsForAnalyses(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	br := newBlockedRetriever(false)
	a := analyzer(br, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)

	hook, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Analyze(hook, studyWith("Pelvis")); !analysis.IsPending(err) {
		t.Fatalf("at the budget: %v, want pending", err)
	}
	uncached := studyWith("Pelvis")
	uncached.FHIRServer, uncached.Study.Identifier = "", nil // no key: analysed on the caller's time
	uncachedErr := make(chan error, 1)
	go func() {
		_, err := c.Analyze(context.Background(), uncached)
		uncachedErr <- err
	}()
	<-br.started
	<-br.started

	ctx, stop := context.WithTimeout(t.Context(), 5*time.Second)
	defer stop()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := br.cancelled.Load(); n != 2 {
		t.Errorf("%d retrievals cancelled, want both", n)
	}
	if err := <-uncachedErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the uncached analysis ended with %v, want its cancellation", err)
	}
	other := studyWith("Pelvis")
	other.Study.Identifier[0].Value = ptr("urn:oid:9.9.9")
	if _, err := c.Analyze(t.Context(), other); !errors.Is(err, analysis.ErrStopped) {
		t.Errorf("after shutdown: %v, want ErrStopped", err)
	}
}

// An analysis that does not return when cancelled keeps Shutdown waiting
// only until its context ends; the error says so.
func TestShutdownIsBounded(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	br := newBlockedRetriever(true)
	a := analyzer(br, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	hook, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	c.Analyze(hook, studyWith("Pelvis"))
	<-br.started
	ctx, stop := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer stop()
	start := time.Now()
	err := c.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("shutdown under a deaf analysis: %v after %s, want the deadline's error soon", err, time.Since(start))
	}
	close(br.release)
}

// The observer is told each stage, where the work happens.
func TestObserverSeesEachStage(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	var obs stages
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	a.Observer = &obs
	if _, err := a.Analyze(t.Context(), studyWith("Pelvis")); err != nil {
		t.Fatal(err)
	}
	a.Retriever = &fakeRetriever{err: errors.New("pacs down")}
	a.Analyze(t.Context(), studyWith("Pelvis"))
	a.Analyze(t.Context(), studyWith("Chest"))
	want := []string{"retrieved ok", "inferred hip-000", "analysed hip computed", "retrieved failed", "analysed hip failed", "analysed hip not_read"}
	if got := obs.list(); !equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// Every analysis asked for of the cache is a lookup: a hit or a miss.
func TestLookupsAreHitsPlusMisses(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	for range 3 {
		c.Analyze(t.Context(), studyWith("Pelvis"))
	}
	if st := c.Stats(); st.Lookups != 3 || st.Hits != 2 || st.Misses != 1 {
		t.Errorf("stats %+v, want 3 lookups: 2 hits, 1 miss", st)
	}
}

type stages struct {
	mu   sync.Mutex
	seen []string
}

func (s *stages) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, v)
}

func (s *stages) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.seen...)
}

func (s *stages) Retrieved(_ time.Duration, ok bool) {
	if ok {
		s.add("retrieved ok")
	} else {
		s.add("retrieved failed")
	}
}
func (s *stages) Inferred(model string, _ time.Duration) { s.add("inferred " + model) }
func (s *stages) Refused(task, reason string)            { s.add("refused " + task + " " + reason) }
func (s *stages) Analysed(task, outcome string, _ time.Duration) {
	s.add("analysed " + task + " " + outcome)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// slowWriter writes after delay, or gives up when its context ends first.
type slowWriter struct {
	delay              time.Duration
	written, cancelled atomic.Int32
}

func (w *slowWriter) WriteResult(ctx context.Context, _ analysis.FHIRServer, r analysis.Result) (string, error) {
	select {
	case <-time.After(w.delay):
		w.written.Add(1)
		return "dr-" + r.Study.ImagingStudyID, nil
	case <-ctx.Done():
		w.cancelled.Add(1)
		return "", ctx.Err()
	}
}

// Shutdown lets the write-backs under way finish within its bound, cancels
// those that would not, and takes no more offers.
func TestWriteBackShutdown(t *testing.T) {
	server := analysis.FHIRServer{BaseURL: "https://ehr.example.org/fhir"}
	tests := []struct {
		name                     string
		delay, bound             time.Duration
		wantWritten, wantAborted int32
	}{
		{"finishes within the bound", 20 * time.Millisecond, 5 * time.Second, 1, 0},
		{"cancelled past the bound", time.Minute, 50 * time.Millisecond, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &slowWriter{delay: tc.delay}
			wb := analysis.NewWriteBack(w, analysis.WriteBackOptions{Kept: 10}, slogDiscard())
			wb.Offer(server, hipResult("s1", true))
			ctx, cancel := context.WithTimeout(t.Context(), tc.bound)
			defer cancel()
			err := wb.Shutdown(ctx)
			if (err != nil) != (tc.wantAborted > 0) {
				t.Errorf("shutdown: %v", err)
			}
			wb.Offer(server, hipResult("s2", true)) // after shutdown: not written
			wb.Wait()
			if w.written.Load() != tc.wantWritten || w.cancelled.Load() != tc.wantAborted {
				t.Errorf("%d written, %d cancelled; want %d, %d", w.written.Load(), w.cancelled.Load(), tc.wantWritten, tc.wantAborted)
			}
		})
	}
}
