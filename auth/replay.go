package auth

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryReplay is the in-process ReplayCache, bounded: expired ids are
// swept, and past max live ids new tokens are refused rather than
// forgotten ones accepted twice.
type MemoryReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
	max  int
	now  func() time.Time
}

// NewMemoryReplay returns a cache of at most max live token ids.
func NewMemoryReplay(max int) *MemoryReplay {
	return &MemoryReplay{seen: map[string]time.Time{}, max: max, now: time.Now}
}

// errReplayCacheFull means too many live token ids are held.
var errReplayCacheFull = errors.New("replay cache full")

// FirstUse records key until until and reports whether it was new.
func (m *MemoryReplay) FirstUse(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if exp, ok := m.seen[key]; ok && exp.After(now) {
		return false, nil
	}
	if len(m.seen) >= m.max {
		for k, exp := range m.seen {
			if !exp.After(now) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= m.max {
			return false, errReplayCacheFull
		}
	}
	m.seen[key] = until
	return true, nil
}

// Fallback is a ReplayCache that uses Primary (Redis, shared by replicas)
// and, while Primary fails, Secondary (memory), so that calls keep being
// checked for replay when Redis is down.
type Fallback struct {
	Primary, Secondary ReplayCache
	OnError            func(error)
}

// FirstUse asks Primary, else Secondary.
func (f Fallback) FirstUse(ctx context.Context, key string, until time.Time) (bool, error) {
	ok, err := f.Primary.FirstUse(ctx, key, until)
	if err == nil {
		return ok, nil
	}
	if f.OnError != nil {
		f.OnError(err)
	}
	return f.Secondary.FirstUse(ctx, key, until)
}
