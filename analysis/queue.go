package analysis

import (
	"context"
	"fmt"
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
// group across replicas (store.RedisQueue), or a channel in one process
// (store.MemoryQueue).
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

// String names a job in logs.
func (j Job) String() string { return fmt.Sprintf("%s on %s", j.Study, j.FHIRServer) }
