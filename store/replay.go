package store

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/auth"
	"github.com/redis/go-redis/v9"
)

var (
	_ auth.ReplayCache = (*RedisReplay)(nil)
	_ auth.ReplayCache = (*MemoryReplay)(nil)
)

// minReplayHold is the least time a token id is held, even when its
// lifetime is (nearly) over: a replay in the same second is refused.
const minReplayHold = time.Second

// RedisReplay is the auth.ReplayCache shared by replicas: SET NX with the
// token's remaining lifetime.
type RedisReplay struct{ rdb redis.UniversalClient }

// NewRedisReplay returns a replay cache on rdb.
func NewRedisReplay(rdb redis.UniversalClient) *RedisReplay { return &RedisReplay{rdb: rdb} }

// FirstUse records key until until and reports whether it was new.
func (r *RedisReplay) FirstUse(ctx context.Context, key string, until time.Time) (bool, error) {
	ttl := max(time.Until(until), minReplayHold)
	ok, err := r.rdb.SetNX(ctx, "orthotriage:jti:"+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis set jti: %w", err)
	}
	return ok, nil
}

// MemoryReplay is the embedded twin of RedisReplay, bounded: expired ids
// are forgotten as they expire (a min-heap by expiry, so each call costs
// O(log n), however full), and past max live ids new tokens are refused
// rather than forgotten ones accepted twice.
type MemoryReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
	// byExpiry holds every id of seen once, soonest expiry first: an id
	// is pushed only when new or expired, and expired ids are popped (and
	// forgotten) before any id is looked up.
	byExpiry expiryHeap
	max      int
}

// NewMemoryReplay returns a cache of at most max live token ids.
func NewMemoryReplay(max int) *MemoryReplay {
	return &MemoryReplay{seen: map[string]time.Time{}, max: max}
}

// ErrReplayCacheFull means the in-memory replay cache holds as many live
// token ids as it may.
var ErrReplayCacheFull = errors.New("store: replay cache full")

// FirstUse records key until until (a second from now at least, as
// RedisReplay) and reports whether it was new.
func (m *MemoryReplay) FirstUse(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for len(m.byExpiry) > 0 && !m.byExpiry[0].exp.After(now) {
		delete(m.seen, heap.Pop(&m.byExpiry).(expiring).key)
	}
	if _, ok := m.seen[key]; ok {
		return false, nil
	}
	if len(m.seen) >= m.max {
		return false, ErrReplayCacheFull
	}
	exp := maxTime(until, now.Add(minReplayHold))
	m.seen[key] = exp
	heap.Push(&m.byExpiry, expiring{key: key, exp: exp})
	return true, nil
}

// expiring is a token id and when it expires.
type expiring struct {
	key string
	exp time.Time
}

// expiryHeap is a container/heap of ids, soonest expiry first.
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiring{}
	*h = old[:len(old)-1]
	return e
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
