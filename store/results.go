package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/internal/lru"
	"github.com/redis/go-redis/v9"
)

var (
	_ analysis.Store  = (*RedisResults)(nil)
	_ cds.ReportStore = (*RedisResults)(nil)
	_ analysis.Store  = (*MemoryResults)(nil)
	_ cds.ReportStore = (*MemoryResults)(nil)
)

// storedResult is a result as kept in Redis: the schema version beside it,
// so that a replica of another version reads an incompatible value as a
// miss, never as a wrong result.
type storedResult struct {
	Schema int             `json:"schema"`
	Result analysis.Result `json:"result"`
}

// RedisResults keeps results in Redis under analysis.StoreKey keys.
type RedisResults struct{ rdb redis.UniversalClient }

// NewRedisResults returns the result store on rdb.
func NewRedisResults(rdb redis.UniversalClient) *RedisResults { return &RedisResults{rdb: rdb} }

// Get reads the result under key; a missing key or another schema (of the
// stored value or of the result in it) is a miss.
func (s *RedisResults) Get(ctx context.Context, key string) (analysis.Result, bool, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return analysis.Result{}, false, nil
	}
	if err != nil {
		return analysis.Result{}, false, fmt.Errorf("redis get result: %w", err)
	}
	var v storedResult
	if err := json.Unmarshal(b, &v); err != nil || v.Schema != analysis.SchemaVersion || v.Result.Schema != analysis.SchemaVersion {
		return analysis.Result{}, false, nil
	}
	return v.Result, true, nil
}

// Put stores r under key for ttl (positive: Redis keeps a key set with no
// expiry for ever), replacing what was there and its expiry.
func (s *RedisResults) Put(ctx context.Context, key string, r analysis.Result, ttl time.Duration) error {
	b, err := json.Marshal(storedResult{Schema: analysis.SchemaVersion, Result: r})
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := s.rdb.Set(ctx, key, b, ttl).Err(); err != nil {
		return fmt.Errorf("redis set result: %w", err)
	}
	return nil
}

// Touch extends key's expiry to ttl from now and reports whether it is
// there.
func (s *RedisResults) Touch(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.PExpire(ctx, key, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis touch: %w", err)
	}
	return ok, nil
}

// MemoryResults is the embedded twin of RedisResults: a bounded in-process
// map with expiry, which forgets the least recently used result when full.
type MemoryResults struct {
	m *lru.Expiring[analysis.Result]
}

// NewMemoryResults keeps up to max results.
func NewMemoryResults(max int) *MemoryResults {
	return &MemoryResults{m: lru.NewExpiring[analysis.Result](max)}
}

// InProcess reports that the results are this process's memory
// (analysis.InProcess): nothing to set a deadline for.
func (s *MemoryResults) InProcess() bool { return true }

// Get returns the unexpired result under key; a result of another schema
// is a miss.
func (s *MemoryResults) Get(_ context.Context, key string) (analysis.Result, bool, error) {
	r, ok := s.m.Get(key)
	if !ok || r.Schema != analysis.SchemaVersion {
		return analysis.Result{}, false, nil
	}
	return r, true, nil
}

// Put keeps r under key for ttl, replacing what was there and its expiry.
func (s *MemoryResults) Put(_ context.Context, key string, r analysis.Result, ttl time.Duration) error {
	s.m.Put(key, r, ttl)
	return nil
}

// Touch extends the unexpired result under key to ttl from now and reports
// whether it is there.
func (s *MemoryResults) Touch(_ context.Context, key string, ttl time.Duration) (bool, error) {
	return s.m.Touch(key, ttl), nil
}
