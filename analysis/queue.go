package analysis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Job asks for one study to be analysed ahead of time, so that the hook
// finds its result cached.
type Job struct {
	FHIRServer string `json:"fhirServer"`
	Study      string `json:"study"` // "ImagingStudy/{id}"
	Attempt    int    `json:"attempt"`
	LastError  string `json:"lastError,omitempty"`
}

// Handler processes one job; an error asks for a retry.
type Handler func(ctx context.Context, j Job) error

// Queue carries precompute jobs to workers: Redis Streams with a consumer
// group across replicas, or a channel in one process.
type Queue interface {
	Enqueue(ctx context.Context, j Job) error
	// Work runs workers handlers until ctx ends.
	Work(ctx context.Context, workers int, h Handler)
}

// QueuePolicy is how failed jobs are retried.
type QueuePolicy struct {
	MaxAttempts int           // tries before the dead-letter list; 5 when 0
	Backoff     time.Duration // wait before the first retry, doubled each time; 1 s when 0
	MaxBackoff  time.Duration // 1 min when 0
}

// WithDefaults fills in zero fields.
func (p QueuePolicy) WithDefaults() QueuePolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.Backoff <= 0 {
		p.Backoff = time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = time.Minute
	}
	return p
}

// Delay is the wait before retry number attempt (1 for the first retry).
func (p QueuePolicy) Delay(attempt int) time.Duration {
	p = p.WithDefaults()
	d := p.Backoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// QueueStats count what a queue did; every replica counts its own.
type QueueStats struct {
	Enqueued, Done, Retried, DeadLettered atomic.Uint64
}

// ErrQueueFull means the in-memory queue holds as many jobs as it may.
var ErrQueueFull = errors.New("analysis: precompute queue is full")

// MemoryQueue is the embedded Queue: a bounded channel; retries wait in
// timers, dead letters are kept (the newest Kept) for inspection.
type MemoryQueue struct {
	jobs   chan Job
	policy QueuePolicy
	log    *slog.Logger
	Stats  QueueStats

	mu   sync.Mutex
	dead []Job
	kept int
}

// NewMemoryQueue holds up to size waiting jobs.
func NewMemoryQueue(size int, p QueuePolicy, log *slog.Logger) *MemoryQueue {
	return &MemoryQueue{jobs: make(chan Job, max(1, size)), policy: p.WithDefaults(), log: log, kept: 1000}
}

// Enqueue adds j, or fails with ErrQueueFull.
func (q *MemoryQueue) Enqueue(_ context.Context, j Job) error {
	select {
	case q.jobs <- j:
		q.Stats.Enqueued.Add(1)
		return nil
	default:
		return ErrQueueFull
	}
}

// Work runs workers goroutines until ctx ends.
func (q *MemoryQueue) Work(ctx context.Context, workers int, h Handler) {
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-q.jobs:
					q.handle(ctx, j, h)
				}
			}
		})
	}
	wg.Wait()
}

func (q *MemoryQueue) handle(ctx context.Context, j Job, h Handler) {
	j.Attempt++
	err := func() (err error) {
		defer func() { // a job's panic is its error, not the process's end
			if p := recover(); p != nil {
				err = fmt.Errorf("precompute job panicked: %v", p)
			}
		}()
		return h(ctx, j)
	}()
	if err == nil {
		q.Stats.Done.Add(1)
		return
	}
	j.LastError = err.Error()
	if j.Attempt >= q.policy.MaxAttempts {
		q.mu.Lock()
		q.dead = append(q.dead, j)
		if len(q.dead) > q.kept {
			q.dead = q.dead[len(q.dead)-q.kept:]
		}
		q.mu.Unlock()
		q.Stats.DeadLettered.Add(1) // after the list: who sees the count sees the job
		q.log.ErrorContext(ctx, "precompute job dead-lettered", "study", j.Study, "attempts", j.Attempt, "err", err)
		return
	}
	delay := q.policy.Delay(j.Attempt)
	q.log.WarnContext(ctx, "precompute job failed: retrying", "study", j.Study, "attempt", j.Attempt, "in", delay.String(), "err", err)
	time.AfterFunc(delay, func() {
		select {
		case q.jobs <- j:
			q.Stats.Retried.Add(1)
		default:
			q.log.Error("precompute retry dropped: queue full", "study", j.Study)
		}
	})
}

// DeadLetters returns the jobs that failed every attempt.
func (q *MemoryQueue) DeadLetters() []Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Job(nil), q.dead...)
}

// String names a job in logs.
func (j Job) String() string { return fmt.Sprintf("%s on %s", j.Study, j.FHIRServer) }
