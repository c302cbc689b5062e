package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/redis/go-redis/v9"
)

var (
	_ analysis.Store  = (*RedisResults)(nil)
	_ analysis.Locker = (*RedisLocker)(nil)
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

// Get reads the result under key; a missing key or another schema is a miss.
func (s *RedisResults) Get(ctx context.Context, key string) (analysis.Result, bool, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return analysis.Result{}, false, nil
	}
	if err != nil {
		return analysis.Result{}, false, fmt.Errorf("redis get result: %w", err)
	}
	var v storedResult
	if err := json.Unmarshal(b, &v); err != nil || v.Schema != analysis.SchemaVersion {
		return analysis.Result{}, false, nil
	}
	return v.Result, true, nil
}

// Put stores r under key for ttl.
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

// RedisLocker is a lock per key across replicas: SET NX PX with a random
// token; renewal and release are scripts that act only while the lock still
// holds this token, so a holder whose lock expired cannot touch the next
// holder's.
type RedisLocker struct{ rdb redis.UniversalClient }

// NewRedisLocker returns the locker on rdb.
func NewRedisLocker(rdb redis.UniversalClient) *RedisLocker { return &RedisLocker{rdb: rdb} }

var (
	renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)
	// Compare-and-delete.
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)
)

// Lock takes key's lock for ttl when free.
func (l *RedisLocker) Lock(ctx context.Context, key string, ttl time.Duration) (analysis.Lease, bool, error) {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, false, err
	}
	lease := &redisLease{rdb: l.rdb, key: key + ":lock", token: hex.EncodeToString(tok)}
	ok, err := l.rdb.SetNX(ctx, lease.key, lease.token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redis lock: %w", err)
	}
	return lease, ok, nil
}

type redisLease struct {
	rdb        redis.UniversalClient
	key, token string
}

func (l *redisLease) Renew(ctx context.Context, ttl time.Duration) error {
	n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.token, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redis renew lock: %w", err)
	}
	if n == 0 {
		return analysis.ErrLockLost
	}
	return nil
}

func (l *redisLease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("redis release lock: %w", err)
	}
	return nil
}
