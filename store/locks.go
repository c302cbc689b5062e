package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/redis/go-redis/v9"
)

var (
	_ analysis.Locker = (*RedisLocker)(nil)
	_ analysis.Locker = (*MemoryLocker)(nil)
)

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

// MemoryLocker is the embedded twin of RedisLocker: a lock per key in this
// process, with the same rules. A locker's token tells its locks from those
// of the lockers that Replica makes on the same locks, which stand for
// other replicas; so in a process with one locker every lock is granted
// (it retakes its own), as one process's singleflight already runs one
// computation per key.
type MemoryLocker struct {
	locks *memoryLocks
	token uint64
}

type memoryLocks struct {
	mu     sync.Mutex
	held   map[string]memoryLock
	tokens uint64 // the last token given
}

type memoryLock struct {
	token   uint64
	expires time.Time
}

// sweepAbove is how many locks are held before expired ones (their holder
// never released them) are swept at the next Lock.
const sweepAbove = 64

// NewMemoryLocker returns a locker on locks of its own.
func NewMemoryLocker() *MemoryLocker {
	return (&memoryLocks{held: map[string]memoryLock{}}).locker()
}

// Replica returns another locker on l's locks, with a token of its own: as
// another replica's RedisLocker on the same Redis.
func (l *MemoryLocker) Replica() *MemoryLocker { return l.locks.locker() }

func (m *memoryLocks) locker() *MemoryLocker {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens++
	return &MemoryLocker{locks: m, token: m.tokens}
}

// InProcess reports that the locks are this process's memory
// (analysis.InProcess).
func (l *MemoryLocker) InProcess() bool { return true }

// Lock takes key's lock for ttl when free (or already this locker's).
func (l *MemoryLocker) Lock(_ context.Context, key string, ttl time.Duration) (analysis.Lease, bool, error) {
	m := l.locks
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if len(m.held) > sweepAbove {
		for k, h := range m.held {
			if !now.Before(h.expires) {
				delete(m.held, k)
			}
		}
	}
	lease := &memoryLease{locks: m, key: key, token: l.token}
	if h, ok := m.held[key]; ok && now.Before(h.expires) && h.token != l.token {
		return lease, false, nil
	}
	m.held[key] = memoryLock{token: l.token, expires: now.Add(ttl)}
	return lease, true, nil
}

type memoryLease struct {
	locks *memoryLocks
	key   string
	token uint64
}

func (l *memoryLease) Renew(_ context.Context, ttl time.Duration) error {
	m := l.locks
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if h, ok := m.held[l.key]; !ok || !now.Before(h.expires) || h.token != l.token {
		return analysis.ErrLockLost
	}
	m.held[l.key] = memoryLock{token: l.token, expires: now.Add(ttl)}
	return nil
}

func (l *memoryLease) Release(context.Context) error {
	m := l.locks
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.held[l.key]; ok && h.token == l.token {
		delete(m.held, l.key)
	}
	return nil
}
