// Package store holds the Redis and in-memory adapters of the interfaces
// that cds and analysis declare. Without Redis the service runs on the
// in-memory ones (the embedded default); with Redis, replicas share state.
package store

import (
	"context"
	"sync"

	"github.com/orthotriage/orthotriage/cds"
)

var _ cds.FeedbackLog = (*MemoryFeedback)(nil)

// MemoryFeedback keeps the newest max feedback events in a ring and forgets
// the oldest, together with their duplicate keys.
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
