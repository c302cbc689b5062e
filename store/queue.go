package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/redis/go-redis/v9"
)

var (
	_ analysis.Queue = (*RedisQueue)(nil)
	_ analysis.Queue = (*MemoryQueue)(nil)
)

// Redis names of the precompute queue.
const (
	QueueStream     = "orthotriage:precompute"
	QueueGroup      = "workers"
	QueueDeadLetter = "orthotriage:precompute:dead"
	// QueueDelayed holds retries until they are due (a sorted set by due
	// time in ms).
	QueueDelayed = "orthotriage:precompute:delayed"
	// DeadLetterMax bounds the dead-letter list (newest kept).
	DeadLetterMax = 10000
)

// RedisQueue is the precompute queue on a Redis stream with one consumer
// group shared by every replica. A job is acknowledged only after it was
// handled (or handed to its retry or the dead-letter list), so a worker
// that dies holding one leaves it pending, and another worker claims it
// once it has been idle for Visibility.
type RedisQueue struct {
	rdb      redis.UniversalClient
	policy   analysis.QueuePolicy
	log      *slog.Logger
	consumer string
	// Visibility is how long a job may stay unacknowledged before another
	// worker takes it over; it must exceed the longest analysis.
	Visibility time.Duration
	// Block is how long one read waits for new jobs.
	Block time.Duration
	Stats analysis.QueueStats
	// MaxLen bounds the stream (approximately).
	MaxLen int64
}

// NewRedisQueue returns the queue on rdb; consumer names this replica
// (host and process id when empty).
func NewRedisQueue(rdb redis.UniversalClient, p analysis.QueuePolicy, consumer string, log *slog.Logger) *RedisQueue {
	if consumer == "" {
		host, _ := os.Hostname()
		consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return &RedisQueue{rdb: rdb, policy: p.WithDefaults(), log: log, consumer: consumer, Visibility: 5 * time.Minute, Block: 2 * time.Second, MaxLen: 100000}
}

// Enqueue appends j to the stream.
func (q *RedisQueue) Enqueue(ctx context.Context, j analysis.Job) error {
	if err := q.add(ctx, j); err != nil {
		return err
	}
	q.Stats.Enqueued.Add(1)
	return nil
}

func (q *RedisQueue) add(ctx context.Context, j analysis.Job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := q.rdb.XAdd(ctx, &redis.XAddArgs{Stream: QueueStream, MaxLen: q.MaxLen, Approx: true, Values: map[string]any{"job": b}}).Err(); err != nil {
		return fmt.Errorf("redis enqueue: %w", err)
	}
	return nil
}

// group makes the consumer group once (BUSYGROUP: it exists).
func (q *RedisQueue) group(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, QueueStream, QueueGroup, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// Work runs workers until ctx ends. Redis errors are logged and retried
// after a pause; jobs are never lost to them (they stay pending).
func (q *RedisQueue) Work(ctx context.Context, workers int, h analysis.Handler) {
	var wg sync.WaitGroup
	for i := range max(1, workers) {
		wg.Go(func() { q.worker(ctx, fmt.Sprintf("%s-%d", q.consumer, i), h) })
	}
	wg.Wait()
}

func (q *RedisQueue) worker(ctx context.Context, name string, h analysis.Handler) {
	pause := func(err error) {
		q.log.WarnContext(ctx, "precompute queue: redis error, retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	ready := false
	for ctx.Err() == nil {
		if !ready {
			if err := q.group(ctx); err != nil {
				pause(err)
				continue
			}
			ready = true
		}
		msgs, err := q.next(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				pause(err)
				ready = false
			}
			continue
		}
		for _, m := range msgs {
			q.handle(ctx, m, h)
		}
	}
}

// next queues the retries that are due, takes over one job idle past
// Visibility (a dead worker's), else waits for a new one. With Block at 2 s
// a retry starts at most about 2 s after it is due.
func (q *RedisQueue) next(ctx context.Context, name string) ([]redis.XMessage, error) {
	if err := q.promote(ctx); err != nil {
		return nil, err
	}
	claimed, _, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: QueueStream, Group: QueueGroup, Consumer: name,
		MinIdle: q.Visibility, Start: "0-0", Count: 1}).Result()
	if err != nil {
		return nil, err
	}
	if len(claimed) > 0 {
		q.log.InfoContext(ctx, "precompute job taken over from an idle worker", "id", claimed[0].ID)
		return claimed, nil
	}
	streams, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: QueueGroup, Consumer: name, Streams: []string{QueueStream, ">"},
		Count: 1, Block: q.Block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []redis.XMessage
	for _, s := range streams {
		out = append(out, s.Messages...)
	}
	return out, nil
}

// handle runs one job and settles it: acknowledged when done, re-added
// after the back-off for a retry, moved to the dead-letter list after the
// last attempt.
func (q *RedisQueue) handle(ctx context.Context, m redis.XMessage, h analysis.Handler) {
	var j analysis.Job
	raw, _ := m.Values["job"].(string)
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		q.log.ErrorContext(ctx, "precompute queue: unreadable job dropped", "id", m.ID, "err", err)
		q.ack(context.WithoutCancel(ctx), m.ID)
		return
	}
	j.Attempt++
	err := safely(ctx, h, j)
	if err != nil && ctx.Err() != nil {
		// The worker is stopping and the job did not finish: it stays
		// pending and another worker takes it over after Visibility.
		q.log.InfoContext(ctx, "precompute job left pending: worker stopping", "study", j.Study)
		return
	}
	// The job is settled (acknowledged, re-added, dead-lettered) even
	// when the worker is stopping, so that finished work is not redone.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch {
	case err == nil:
		q.Stats.Done.Add(1)
	case j.Attempt >= q.policy.MaxAttempts:
		j.LastError = err.Error()
		b, _ := json.Marshal(j)
		pipe := q.rdb.TxPipeline()
		pipe.LPush(settle, QueueDeadLetter, b)
		pipe.LTrim(settle, QueueDeadLetter, 0, DeadLetterMax-1)
		if _, perr := pipe.Exec(settle); perr != nil {
			q.log.ErrorContext(ctx, "precompute job not dead-lettered (stays pending)", "study", j.Study, "err", perr)
			return
		}
		q.Stats.DeadLettered.Add(1)
		q.log.ErrorContext(ctx, "precompute job dead-lettered", "study", j.Study, "attempts", j.Attempt, "err", err)
	default:
		j.LastError = err.Error()
		delay := q.policy.Delay(j.Attempt)
		q.log.WarnContext(ctx, "precompute job failed: retrying", "study", j.Study, "attempt", j.Attempt, "in", delay.String(), "err", err)
		// The retry waits in a sorted set, due at now + delay, and is
		// acknowledged here in the same transaction: the worker goes on
		// with other jobs, and a crash between the two loses nothing.
		b, _ := json.Marshal(j)
		pipe := q.rdb.TxPipeline()
		pipe.ZAdd(settle, QueueDelayed, redis.Z{Score: float64(time.Now().Add(delay).UnixMilli()), Member: b})
		pipe.XAck(settle, QueueStream, QueueGroup, m.ID)
		if _, err := pipe.Exec(settle); err != nil {
			q.log.ErrorContext(ctx, "precompute retry not scheduled (stays pending)", "study", j.Study, "err", err)
			return
		}
		q.Stats.Retried.Add(1)
		return
	}
	q.ack(settle, m.ID)
}

// promoteScript moves due retries from the delayed set to the stream, at
// most ARGV[2] at a time, atomically (no retry is moved twice or lost).
var promoteScript = redis.NewScript(`
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
for _, job in ipairs(due) do
  redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[3], "*", "job", job)
  redis.call("ZREM", KEYS[1], job)
end
return #due`)

// promote queues the retries that are due.
func (q *RedisQueue) promote(ctx context.Context) error {
	return promoteScript.Run(ctx, q.rdb, []string{QueueDelayed, QueueStream}, time.Now().UnixMilli(), 100, q.MaxLen).Err()
}

// safely runs h, turning a panic into the job's error: a job that crashes
// its worker would otherwise be taken over, and crash the next one.
func safely(ctx context.Context, h analysis.Handler, j analysis.Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("precompute job panicked: %v", p)
		}
	}()
	return h(ctx, j)
}

func (q *RedisQueue) ack(ctx context.Context, id string) {
	if err := q.rdb.XAck(ctx, QueueStream, QueueGroup, id).Err(); err != nil {
		q.log.WarnContext(ctx, "precompute job not acknowledged (it will run again)", "id", id, "err", err)
	}
}

// Depth is how many jobs wait in the stream for a worker: those not yet
// delivered to the consumer group (not those being handled, nor retries
// waiting out their back-off). Every replica sees the same number.
func (q *RedisQueue) Depth(ctx context.Context) (int64, error) {
	n, _, err := q.waiting(ctx)
	return n, err
}

// OldestAge is how long the job waiting longest for a worker has waited,
// by its stream id (a retry since it was due); 0 when none waits.
func (q *RedisQueue) OldestAge(ctx context.Context) (time.Duration, error) {
	_, oldest, err := q.waiting(ctx)
	if err != nil || oldest.IsZero() {
		return 0, err
	}
	return max(0, time.Since(oldest)), nil
}

// waiting reads how many jobs wait for a worker, and when the oldest of
// them was added (zero when none waits).
func (q *RedisQueue) waiting(ctx context.Context) (n int64, oldest time.Time, err error) {
	groups, err := q.rdb.XInfoGroups(ctx, QueueStream).Result()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		return 0, time.Time{}, nil // nothing was ever queued
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("redis queue depth: %w", err)
	}
	after, lag := "-", int64(-1) // no group yet: every entry waits
	for _, g := range groups {
		if g.Name == QueueGroup {
			after, lag = "("+g.LastDeliveredID, g.Lag
		}
	}
	first, err := q.rdb.XRangeN(ctx, QueueStream, after, "+", 1).Result()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("redis queue depth: %w", err)
	}
	if len(first) == 0 {
		return 0, time.Time{}, nil
	}
	if lag < 0 {
		if lag, err = q.rdb.XLen(ctx, QueueStream).Result(); err != nil {
			return 0, time.Time{}, fmt.Errorf("redis queue depth: %w", err)
		}
	}
	// Redis gives no lag when it cannot tell (go-redis reads it as 0);
	// one job is known to wait.
	return max(lag, 1), streamTime(first[0].ID), nil
}

// streamTime is when Redis added a stream entry: its id's milliseconds.
func streamTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// DeadLetters returns up to n dead-lettered jobs, newest first.
func (q *RedisQueue) DeadLetters(ctx context.Context, n int64) ([]analysis.Job, error) {
	raw, err := q.rdb.LRange(ctx, QueueDeadLetter, 0, n-1).Result()
	if err != nil {
		return nil, err
	}
	var out []analysis.Job
	for _, r := range raw {
		var j analysis.Job
		if json.Unmarshal([]byte(r), &j) == nil {
			out = append(out, j)
		}
	}
	return out, nil
}

// ErrQueueFull means the in-memory queue holds as many jobs as it may.
var ErrQueueFull = errors.New("store: precompute queue is full")

// MemoryQueue is the embedded twin of RedisQueue: a bounded list of waiting
// jobs; retries wait in timers, dead letters are kept (the newest 1000) for
// inspection. As on Redis, a job whose worker stops before it finishes is
// not a failed attempt: it goes back to the queue for the next Work.
type MemoryQueue struct {
	size   int
	policy analysis.QueuePolicy
	log    *slog.Logger
	Stats  analysis.QueueStats
	// ready holds a token while jobs may be waiting: a worker with
	// nothing to do waits for it.
	ready chan struct{}

	mu      sync.Mutex
	waiting []waitingJob // oldest first
	dead    []analysis.Job
	kept    int
}

// waitingJob is a job waiting for a worker since it was queued (or, for a
// retry, since it was due).
type waitingJob struct {
	job   analysis.Job
	since time.Time
}

// NewMemoryQueue holds up to size waiting jobs.
func NewMemoryQueue(size int, p analysis.QueuePolicy, log *slog.Logger) *MemoryQueue {
	return &MemoryQueue{size: max(1, size), policy: p.WithDefaults(), log: log, kept: 1000, ready: make(chan struct{}, 1)}
}

// Enqueue adds j, or fails with ErrQueueFull.
func (q *MemoryQueue) Enqueue(_ context.Context, j analysis.Job) error {
	if !q.push(j) {
		return ErrQueueFull
	}
	q.Stats.Enqueued.Add(1)
	return nil
}

// push adds j behind the waiting jobs; false when the queue is full.
func (q *MemoryQueue) push(j analysis.Job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) >= q.size {
		return false
	}
	q.waiting = append(q.waiting, waitingJob{job: j, since: time.Now()})
	q.signal()
	return true
}

// take removes the oldest waiting job; false when none waits.
func (q *MemoryQueue) take() (analysis.Job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		return analysis.Job{}, false
	}
	j := q.waiting[0].job
	q.waiting[0] = waitingJob{}
	q.waiting = q.waiting[1:]
	if len(q.waiting) > 0 {
		q.signal() // for the next idle worker
	}
	return j, true
}

// signal wakes one idle worker, unless one is being woken already.
func (q *MemoryQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Depth is how many jobs wait for a worker (not those being handled, nor
// retries waiting out their back-off).
func (q *MemoryQueue) Depth(context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.waiting)), nil
}

// OldestAge is how long the job waiting longest for a worker has waited
// (a retry since it was due); 0 when none waits.
func (q *MemoryQueue) OldestAge(context.Context) (time.Duration, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		return 0, nil
	}
	return time.Since(q.waiting[0].since), nil
}

// Work runs workers goroutines until ctx ends.
func (q *MemoryQueue) Work(ctx context.Context, workers int, h analysis.Handler) {
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for ctx.Err() == nil {
				if j, ok := q.take(); ok {
					q.handle(ctx, j, h)
					continue
				}
				select {
				case <-ctx.Done():
				case <-q.ready:
				}
			}
		})
	}
	wg.Wait()
}

// handle runs one job and settles it: done, retried after the back-off,
// dead-lettered after the last attempt, or given back to the queue
// untried when the worker is stopping.
func (q *MemoryQueue) handle(ctx context.Context, j analysis.Job, h analysis.Handler) {
	tried := j
	tried.Attempt++
	err := safely(ctx, h, tried)
	switch {
	case err == nil:
		q.Stats.Done.Add(1)
	case ctx.Err() != nil:
		q.log.InfoContext(ctx, "precompute job given back: worker stopping", "study", j.Study)
		q.requeue(j)
	case tried.Attempt >= q.policy.MaxAttempts:
		tried.LastError = err.Error()
		q.mu.Lock()
		q.dead = append(q.dead, tried)
		if len(q.dead) > q.kept {
			q.dead = q.dead[len(q.dead)-q.kept:]
		}
		q.mu.Unlock()
		q.Stats.DeadLettered.Add(1) // after the list: who sees the count sees the job
		q.log.ErrorContext(ctx, "precompute job dead-lettered", "study", j.Study, "attempts", tried.Attempt, "err", err)
	default:
		tried.LastError = err.Error()
		delay := q.policy.Delay(tried.Attempt)
		q.log.WarnContext(ctx, "precompute job failed: retrying", "study", j.Study, "attempt", tried.Attempt, "in", delay.String(), "err", err)
		q.Stats.Retried.Add(1)
		time.AfterFunc(delay, func() { q.requeue(tried) })
	}
}

// requeue puts j back, unless the queue is full.
func (q *MemoryQueue) requeue(j analysis.Job) {
	if !q.push(j) {
		q.log.Error("precompute job dropped: queue full", "study", j.Study)
	}
}

// DeadLetters returns up to n dead-lettered jobs, newest first.
func (q *MemoryQueue) DeadLetters(_ context.Context, n int64) ([]analysis.Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]analysis.Job, 0, min(n, int64(len(q.dead))))
	for i := len(q.dead) - 1; i >= 0 && int64(len(out)) < n; i-- {
		out = append(out, q.dead[i])
	}
	return out, nil
}
