package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisQueueRetriesAndDeadLetters(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	q := store.NewRedisQueue(rdb, analysis.QueuePolicy{MaxAttempts: 3, Backoff: 10 * time.Millisecond}, "t", quiet)
	q.Block = 50 * time.Millisecond
	var mu sync.Mutex
	attempts := map[string][]int{}
	h := func(_ context.Context, j analysis.Job) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[j.Study] = append(attempts[j.Study], j.Attempt)
		switch {
		case j.Study == "ImagingStudy/flaky" && j.Attempt < 2:
			return errors.New("orthanc 503")
		case j.Study == "ImagingStudy/broken":
			return errors.New("study has no endpoint")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { q.Work(ctx, 2, h); close(done) }()
	for _, s := range []string{"ImagingStudy/ok", "ImagingStudy/flaky", "ImagingStudy/broken"} {
		if err := q.Enqueue(t.Context(), analysis.Job{FHIRServer: "https://ehr.example.org/fhir", Study: s}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all jobs settled", func() bool { return q.Stats.Done.Load() == 2 && q.Stats.DeadLettered.Load() == 1 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(attempts["ImagingStudy/ok"]) != 1 || len(attempts["ImagingStudy/flaky"]) != 2 || len(attempts["ImagingStudy/broken"]) != 3 {
		t.Errorf("attempts %v, want ok once, flaky twice, broken three times", attempts)
	}
	dead, err := q.DeadLetters(t.Context(), 10)
	if err != nil || len(dead) != 1 || dead[0].Study != "ImagingStudy/broken" || dead[0].LastError != "study has no endpoint" || dead[0].Attempt != 3 {
		t.Errorf("dead letters %+v %v", dead, err)
	}
	if pending := rdb.XPending(t.Context(), store.QueueStream, store.QueueGroup).Val(); pending.Count != 0 {
		t.Errorf("%d jobs left unacknowledged", pending.Count)
	}
}

// TestRedisQueueRedeliversAfterAWorkerDies: a worker that stops holding a
// job (its process dies before acknowledging) leaves it pending; another
// replica's worker takes it over once it has been idle for Visibility.
func TestRedisQueueRedeliversAfterAWorkerDies(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	policy := analysis.QueuePolicy{MaxAttempts: 5, Backoff: time.Hour}
	dying := store.NewRedisQueue(rdb, policy, "dying", quiet)
	dying.Block = 50 * time.Millisecond
	taken := make(chan struct{})
	ctx, die := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		dying.Work(ctx, 1, func(ctx context.Context, j analysis.Job) error {
			close(taken)
			<-ctx.Done() // dies while working
			return ctx.Err()
		})
		close(done)
	}()
	if err := dying.Enqueue(t.Context(), analysis.Job{FHIRServer: "https://ehr.example.org/fhir", Study: "ImagingStudy/1"}); err != nil {
		t.Fatal(err)
	}
	<-taken
	die()
	<-done
	if pending := rdb.XPending(t.Context(), store.QueueStream, store.QueueGroup).Val(); pending.Count != 1 {
		t.Fatalf("after the worker died %d jobs are pending, want 1", pending.Count)
	}
	heir := store.NewRedisQueue(rdb, policy, "heir", quiet)
	heir.Block, heir.Visibility = 50*time.Millisecond, 200*time.Millisecond
	got := make(chan analysis.Job, 1)
	ctx2, stop := context.WithCancel(t.Context())
	defer stop()
	go heir.Work(ctx2, 1, func(_ context.Context, j analysis.Job) error { got <- j; return nil })
	select {
	case j := <-got:
		if j.Study != "ImagingStudy/1" || j.Attempt != 1 {
			t.Errorf("redelivered %+v", j)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dead worker's job was not taken over")
	}
	waitFor(t, "the job acknowledged", func() bool {
		return rdb.XPending(t.Context(), store.QueueStream, store.QueueGroup).Val().Count == 0
	})
}

// TestRedisQueueRetryDoesNotBlockTheWorker: a job waiting out a long
// back-off does not hold the only worker; the retry waits in Redis.
func TestRedisQueueRetryDoesNotBlockTheWorker(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	q := store.NewRedisQueue(rdb, analysis.QueuePolicy{MaxAttempts: 5, Backoff: time.Hour}, "one", quiet)
	q.Block = 50 * time.Millisecond
	done := make(chan string, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go q.Work(ctx, 1, func(_ context.Context, j analysis.Job) error {
		if j.Study == "ImagingStudy/failing" {
			return errors.New("pacs down")
		}
		done <- j.Study
		return nil
	})
	q.Enqueue(t.Context(), analysis.Job{Study: "ImagingStudy/failing"})
	q.Enqueue(t.Context(), analysis.Job{Study: "ImagingStudy/next"})
	select {
	case s := <-done:
		if s != "ImagingStudy/next" {
			t.Errorf("done %s", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the worker was held by the failing job's back-off")
	}
	if n := rdb.ZCard(t.Context(), store.QueueDelayed).Val(); n != 1 {
		t.Errorf("%d retries waiting, want 1", n)
	}
}
