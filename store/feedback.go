package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/cds"
	"github.com/redis/go-redis/v9"
)

var (
	_ cds.FeedbackLog = (*RedisFeedback)(nil)
	_ cds.FeedbackLog = (*MemoryFeedback)(nil)
)

// Redis names of the feedback log. Keys share the prefix so a deployment
// can scope ACLs.
const (
	FeedbackStream  = "orthotriage:feedback"
	feedbackSeenKey = "orthotriage:feedback:seen:"
	// feedbackSeenTTL is how long a duplicate is recognised.
	feedbackSeenTTL = 7 * 24 * time.Hour
)

// RedisFeedback appends feedback events to a capped Redis stream, each once:
// a SET NX on the event's key guards the XADD.
type RedisFeedback struct {
	rdb redis.UniversalClient
	max int64
}

// NewRedisFeedback returns a log on rdb whose stream is trimmed to about max
// entries.
func NewRedisFeedback(rdb redis.UniversalClient, max int) *RedisFeedback {
	return &RedisFeedback{rdb: rdb, max: int64(max)}
}

// Record appends e to the stream unless its key was seen.
func (r *RedisFeedback) Record(ctx context.Context, e cds.FeedbackEvent) (bool, error) {
	first, err := r.rdb.SetNX(ctx, feedbackSeenKey+e.Key, 1, feedbackSeenTTL).Result()
	if err != nil {
		return false, fmt.Errorf("redis set feedback key: %w", err)
	}
	if !first {
		return false, nil
	}
	fb, err := json.Marshal(e.Feedback)
	if err != nil {
		return false, fmt.Errorf("encode feedback: %w", err)
	}
	err = r.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: FeedbackStream,
		MaxLen: r.max,
		Approx: true,
		Values: map[string]any{
			"service":    e.Service,
			"key":        e.Key,
			"outcome":    e.Feedback.Outcome,
			"feedback":   fb,
			"receivedAt": e.ReceivedAt.UTC().Format(time.RFC3339Nano),
		},
	}).Err()
	if err != nil {
		// Forget the key so that the client's retry is recorded.
		r.rdb.Del(context.WithoutCancel(ctx), feedbackSeenKey+e.Key)
		return false, fmt.Errorf("redis xadd feedback: %w", err)
	}
	return true, nil
}

// MemoryFeedback is the embedded twin of RedisFeedback: it keeps the newest
// max feedback events in a ring and forgets the oldest, together with their
// duplicate keys (Redis recognises a duplicate for feedbackSeenTTL however
// far its stream was trimmed).
type MemoryFeedback struct {
	mu    sync.Mutex
	max   int
	ring  []cds.FeedbackEvent
	next  int
	byKey map[string]bool
}

// NewMemoryFeedback returns a log that keeps at most max events (at least 1).
func NewMemoryFeedback(max int) *MemoryFeedback {
	if max < 1 {
		max = 1
	}
	return &MemoryFeedback{max: max, byKey: map[string]bool{}}
}

// Record keeps e unless an event with the same key is kept already.
func (m *MemoryFeedback) Record(_ context.Context, e cds.FeedbackEvent) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byKey[e.Key] {
		return false, nil
	}
	if len(m.ring) < m.max {
		m.ring = append(m.ring, e)
	} else {
		delete(m.byKey, m.ring[m.next].Key)
		m.ring[m.next] = e
		m.next = (m.next + 1) % m.max
	}
	m.byKey[e.Key] = true
	return true, nil
}

// Events returns the kept events, oldest first.
func (m *MemoryFeedback) Events() []cds.FeedbackEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]cds.FeedbackEvent, 0, len(m.ring))
	out = append(out, m.ring[m.next:]...)
	return append(out, m.ring[:m.next]...)
}
