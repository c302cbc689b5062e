package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/store"
)

// contractQueue is what the queue contract sees of either queue.
type contractQueue interface {
	analysis.Queue
	DeadLetters(ctx context.Context, n int64) ([]analysis.Job, error)
	Depth(ctx context.Context) (int64, error)
	OldestAge(ctx context.Context) (time.Duration, error)
}

func TestQueueContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testQueueContract(t, func(_ *testing.T, p analysis.QueuePolicy) (contractQueue, *analysis.QueueStats) {
			q := store.NewMemoryQueue(100, p, quiet)
			return q, &q.Stats
		})
	})
	t.Run("redis", func(t *testing.T) {
		testQueueContract(t, func(t *testing.T, p analysis.QueuePolicy) (contractQueue, *analysis.QueueStats) {
			rdb := newRedis(t)
			q := store.NewRedisQueue(rdb, p, "t", quiet)
			q.Block, q.Visibility = 50*time.Millisecond, 200*time.Millisecond
			t.Cleanup(func() { // after the test's workers stopped
				if pending := rdb.XPending(context.Background(), store.QueueStream, store.QueueGroup).Val(); pending != nil && pending.Count != 0 {
					t.Errorf("%d jobs left unacknowledged", pending.Count)
				}
			})
			return q, &q.Stats
		})
	})
}

// work runs q's workers until the returned stop is called (or the test
// ends); stop waits for them.
func work(t *testing.T, q analysis.Queue, workers int, h analysis.Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Work(ctx, workers, h); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func job(study string) analysis.Job {
	return analysis.Job{FHIRServer: "https://ehr.example.org/fhir", Study: "ImagingStudy/" + study}
}

// testQueueContract is what the precompute queue does, in memory or on
// Redis: each job is handled until done, retried after its back-off while
// attempts are left, then dead-lettered with its last error; one worker
// takes jobs in the order queued; a retry waiting out its back-off holds
// no worker; a panicking job fails as an error; and a job whose worker
// stops before it finishes is not a failed attempt but handled again by a
// later Work; the depth and the oldest job's age count the jobs waiting
// for a worker.
func testQueueContract(t *testing.T, newQueue func(t *testing.T, p analysis.QueuePolicy) (contractQueue, *analysis.QueueStats)) {
	t.Run("each job is settled: done, retried or dead-lettered", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{MaxAttempts: 3, Backoff: 10 * time.Millisecond})
		var mu sync.Mutex
		attempts := map[string][]int{}
		stop := work(t, q, 2, func(_ context.Context, j analysis.Job) error {
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
		})
		for _, s := range []string{"ok", "flaky", "broken"} {
			if err := q.Enqueue(t.Context(), job(s)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "all jobs settled", func() bool { return stats.Done.Load() == 2 && stats.DeadLettered.Load() == 1 })
		stop()
		mu.Lock()
		defer mu.Unlock()
		want := map[string][]int{"ImagingStudy/ok": {1}, "ImagingStudy/flaky": {1, 2}, "ImagingStudy/broken": {1, 2, 3}}
		if fmt.Sprint(attempts) != fmt.Sprint(want) {
			t.Errorf("attempts %v, want ok once, flaky twice, broken three times: %v", attempts, want)
		}
		dead, err := q.DeadLetters(t.Context(), 10)
		if err != nil || len(dead) != 1 || dead[0].Study != "ImagingStudy/broken" || dead[0].LastError != "study has no endpoint" || dead[0].Attempt != 3 {
			t.Errorf("dead letters %+v %v", dead, err)
		}
		if e, d, r, dl := stats.Enqueued.Load(), stats.Done.Load(), stats.Retried.Load(), stats.DeadLettered.Load(); e != 3 || d != 2 || r != 3 || dl != 1 {
			t.Errorf("stats enqueued %d done %d retried %d dead-lettered %d, want 3 2 3 1", e, d, r, dl)
		}
	})
	t.Run("one worker takes jobs in the order queued", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{})
		var want []string
		for i := range 5 {
			want = append(want, fmt.Sprint("ImagingStudy/", i))
			if err := q.Enqueue(t.Context(), job(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var got []string
		stop := work(t, q, 1, func(_ context.Context, j analysis.Job) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, j.Study)
			return nil
		})
		waitFor(t, "all jobs done", func() bool { return stats.Done.Load() == 5 })
		stop()
		if !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}
	})
	t.Run("a retry waiting out its back-off holds no worker", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{MaxAttempts: 5, Backoff: time.Hour})
		done := make(chan string, 2)
		work(t, q, 1, func(_ context.Context, j analysis.Job) error {
			if j.Study == "ImagingStudy/failing" {
				return errors.New("pacs down")
			}
			done <- j.Study
			return nil
		})
		q.Enqueue(t.Context(), job("failing"))
		q.Enqueue(t.Context(), job("next"))
		select {
		case s := <-done:
			if s != "ImagingStudy/next" {
				t.Errorf("done %s", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the worker was held by the failing job's back-off")
		}
		waitFor(t, "the retry scheduled", func() bool { return stats.Retried.Load() == 1 })
	})
	t.Run("a panicking job is retried, and the worker goes on", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{MaxAttempts: 3, Backoff: 10 * time.Millisecond})
		work(t, q, 1, func(_ context.Context, j analysis.Job) error {
			if j.Attempt == 1 {
				panic("index out of range")
			}
			return nil
		})
		q.Enqueue(t.Context(), job("1"))
		waitFor(t, "the job done", func() bool { return stats.Done.Load() == 1 })
		if r, dl := stats.Retried.Load(), stats.DeadLettered.Load(); r != 1 || dl != 0 {
			t.Errorf("retried %d, dead-lettered %d, want 1 and 0", r, dl)
		}
	})
	t.Run("a job its worker stopped on is handled again, as the same attempt", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{MaxAttempts: 1, Backoff: time.Hour})
		taken := make(chan struct{})
		stop := work(t, q, 1, func(ctx context.Context, _ analysis.Job) error {
			close(taken)
			<-ctx.Done() // the worker stops while working
			return ctx.Err()
		})
		if err := q.Enqueue(t.Context(), job("1")); err != nil {
			t.Fatal(err)
		}
		<-taken
		stop()
		if r, dl := stats.Retried.Load(), stats.DeadLettered.Load(); r != 0 || dl != 0 {
			t.Fatalf("a stopped worker's job was retried %d, dead-lettered %d times: want neither", r, dl)
		}
		got := make(chan analysis.Job, 1)
		work(t, q, 1, func(_ context.Context, j analysis.Job) error { got <- j; return nil })
		select {
		case j := <-got:
			if j.Study != "ImagingStudy/1" || j.Attempt != 1 {
				t.Errorf("handled again as %+v, want attempt 1", j)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stopped worker's job was not handled again")
		}
		waitFor(t, "the job done", func() bool { return stats.Done.Load() == 1 })
	})
	t.Run("depth and oldest age count the jobs waiting for a worker", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{})
		waiting := func() (int64, time.Duration) {
			t.Helper()
			n, err := q.Depth(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			age, err := q.OldestAge(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			return n, age
		}
		if n, age := waiting(); n != 0 || age != 0 {
			t.Errorf("empty queue: depth %d, oldest %s; want 0, 0", n, age)
		}
		for _, s := range []string{"a", "b", "c"} {
			if err := q.Enqueue(t.Context(), job(s)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if n, age := waiting(); n != 3 || age < 40*time.Millisecond || age > time.Minute {
			t.Errorf("three jobs queued 50 ms ago: depth %d, oldest %s", n, age)
		}
		taken, release := make(chan struct{}, 3), make(chan struct{})
		work(t, q, 1, func(context.Context, analysis.Job) error {
			taken <- struct{}{}
			<-release
			return nil
		})
		<-taken
		if n, _ := waiting(); n != 2 {
			t.Errorf("one job being handled: depth %d, want the 2 behind it", n)
		}
		close(release)
		waitFor(t, "all jobs done", func() bool { return stats.Done.Load() == 3 })
		if n, age := waiting(); n != 0 || age != 0 {
			t.Errorf("all done: depth %d, oldest %s; want 0, 0", n, age)
		}
	})
	t.Run("dead letters come newest first", func(t *testing.T) {
		q, stats := newQueue(t, analysis.QueuePolicy{MaxAttempts: 1})
		for _, s := range []string{"a", "b", "c"} {
			q.Enqueue(t.Context(), job(s))
		}
		work(t, q, 1, func(context.Context, analysis.Job) error { return errors.New("no endpoint") })
		waitFor(t, "all dead-lettered", func() bool { return stats.DeadLettered.Load() == 3 })
		dead, err := q.DeadLetters(t.Context(), 2)
		if err != nil || len(dead) != 2 || dead[0].Study != "ImagingStudy/c" || dead[1].Study != "ImagingStudy/b" {
			t.Errorf("dead letters %+v %v, want c then b", dead, err)
		}
	})
}

// TestRedisQueueRedeliversAfterAWorkerDies: a worker that stops holding a
// job (its process dies before acknowledging) leaves it pending; another
// replica's worker takes it over once it has been idle for Visibility.
func TestRedisQueueRedeliversAfterAWorkerDies(t *testing.T) {
	rdb := newRedis(t)
	policy := analysis.QueuePolicy{MaxAttempts: 5, Backoff: time.Hour}
	dying := store.NewRedisQueue(rdb, policy, "dying", quiet)
	dying.Block = 50 * time.Millisecond
	taken := make(chan struct{})
	die := work(t, dying, 1, func(ctx context.Context, j analysis.Job) error {
		close(taken)
		<-ctx.Done() // dies while working
		return ctx.Err()
	})
	if err := dying.Enqueue(t.Context(), job("1")); err != nil {
		t.Fatal(err)
	}
	<-taken
	die()
	if pending := rdb.XPending(t.Context(), store.QueueStream, store.QueueGroup).Val(); pending.Count != 1 {
		t.Fatalf("after the worker died %d jobs are pending, want 1", pending.Count)
	}
	heir := store.NewRedisQueue(rdb, policy, "heir", quiet)
	heir.Block, heir.Visibility = 50*time.Millisecond, 200*time.Millisecond
	got := make(chan analysis.Job, 1)
	work(t, heir, 1, func(_ context.Context, j analysis.Job) error { got <- j; return nil })
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

// TestRedisQueueRetryWaitsInRedis: a retry waiting out its back-off is
// acknowledged and kept in the delayed set, not pending on a worker.
func TestRedisQueueRetryWaitsInRedis(t *testing.T) {
	rdb := newRedis(t)
	q := store.NewRedisQueue(rdb, analysis.QueuePolicy{MaxAttempts: 5, Backoff: time.Hour}, "one", quiet)
	q.Block = 50 * time.Millisecond
	stop := work(t, q, 1, func(context.Context, analysis.Job) error { return errors.New("pacs down") })
	q.Enqueue(t.Context(), job("failing"))
	waitFor(t, "the retry scheduled", func() bool { return q.Stats.Retried.Load() == 1 })
	stop()
	if n := rdb.ZCard(t.Context(), store.QueueDelayed).Val(); n != 1 {
		t.Errorf("%d retries waiting, want 1", n)
	}
	if pending := rdb.XPending(t.Context(), store.QueueStream, store.QueueGroup).Val(); pending.Count != 0 {
		t.Errorf("%d jobs left unacknowledged", pending.Count)
	}
}

// TestMemoryQueueRefusesPastItsSize: the embedded queue is bounded and
// says so (Redis trims its stream instead: see RedisQueue.MaxLen).
func TestMemoryQueueRefusesPastItsSize(t *testing.T) {
	full := store.NewMemoryQueue(1, analysis.QueuePolicy{}, quiet)
	if err := full.Enqueue(t.Context(), analysis.Job{}); err != nil {
		t.Fatal(err)
	}
	if err := full.Enqueue(t.Context(), analysis.Job{}); !errors.Is(err, store.ErrQueueFull) {
		t.Errorf("full queue: %v", err)
	}
}
