package auth

import (
	"context"
	"time"
)

// Fallback is a ReplayCache that uses Primary (Redis, shared by replicas)
// and, while Primary fails, Secondary (memory), so that calls keep being
// checked for replay when Redis is down. store.RedisReplay and
// store.MemoryReplay are the two.
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
