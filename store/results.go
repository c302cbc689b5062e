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
	"github.com/orthotriage/orthotriage/cds"
	"github.com/redis/go-redis/v9"
)

var (
	_ analysis.Store  = (*RedisResults)(nil)
	_ cds.ReportStore = (*RedisResults)(nil)
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

// Touch extends key's expiry to ttl from now and reports whether it is
// there.
func (s *RedisResults) Touch(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.PExpire(ctx, key, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis touch: %w", err)
	}
	return ok, nil
}

// RedisLocker is a lock per key across replicas: SET NX PX with this
// locker's random token; renewal and release are scripts that act only while
// the lock still holds this token, so a holder whose lock expired cannot
// touch the next holder's. Taking a lock this locker holds already succeeds
// (and extends it): a SET that Redis carried out after the client stopped
// waiting for its answer (a busy Redis) does not leave the study locked by
// nobody for the lock's whole expiry. One locker serves one process's
// singleflight group (analysis.Cached), which runs one computation per key.
type RedisLocker struct {
	rdb   redis.UniversalClient
	token string
}

// NewRedisLocker returns the locker on rdb, with a token of its own.
func NewRedisLocker(rdb redis.UniversalClient) *RedisLocker {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok) // crypto/rand.Read never fails on Linux
	return &RedisLocker{rdb: rdb, token: hex.EncodeToString(tok)}
}

var (
	// Set if free, or extend if ours already.
	lockScript  = redis.NewScript(`local v = redis.call("GET", KEYS[1]) if not v then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) return 1 elseif v == ARGV[1] then redis.call("PEXPIRE", KEYS[1], ARGV[2]) return 1 else return 0 end`)
	renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)
	// Compare-and-delete.
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)
)

// Lock takes key's lock for ttl when free (or already this locker's).
func (l *RedisLocker) Lock(ctx context.Context, key string, ttl time.Duration) (analysis.Lease, bool, error) {
	lease := &redisLease{rdb: l.rdb, key: key + ":lock", token: l.token}
	n, err := lockScript.Run(ctx, l.rdb, []string{lease.key}, lease.token, ttl.Milliseconds()).Int()
	if err != nil {
		return nil, false, fmt.Errorf("redis lock: %w", err)
	}
	return lease, n == 1, nil
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
