package analysis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/internal/lru"
)

// Store keeps results by key for a time. Get reports a miss as ok=false
// with no error; an error means the store could not be asked (Redis down),
// and the caller goes on without it.
type Store interface {
	Get(ctx context.Context, key string) (r Result, ok bool, err error)
	Put(ctx context.Context, key string, r Result, ttl time.Duration) error
}

// Locker gives one computation per key across replicas: Lock takes the
// key's lock for ttl, or reports ok=false when another holder has it.
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (l Lease, ok bool, err error)
}

// Lease is a held lock: renewed while the work goes on, released at the
// end. Both only touch the lock while it is still this holder's.
type Lease interface {
	Renew(ctx context.Context, ttl time.Duration) error
	Release(ctx context.Context) error
}

// ErrLockLost means a lease could not be renewed because another holder
// took the lock (it had expired).
var ErrLockLost = errors.New("analysis: lock lost")

// StoreKey is the cache key of a study's result: a hash of the tenant, the
// FHIR server identity (scheme and host in lower case, no trailing slash),
// the study, the task and the ids and versions of the task's models. A new
// model version never reads an old result, and one tenant never another's.
func StoreKey(tenant, fhirServer, study, task, models string) string {
	h := sha256.New()
	for _, p := range []string{tenant, NormalizeServer(fhirServer), study, task, models} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "orthotriage:result:v1:" + hex.EncodeToString(h.Sum(nil)[:20])
}

// MemoryStore is the embedded Store: a bounded in-process map with expiry.
type MemoryStore struct {
	m   *lru.Map[memoryEntry]
	now func() time.Time
}

type memoryEntry struct {
	r       Result
	expires time.Time
}

// NewMemoryStore keeps up to max results.
func NewMemoryStore(max int) *MemoryStore {
	return &MemoryStore{m: lru.New[memoryEntry](max), now: time.Now}
}

// Get returns the unexpired result under key.
func (s *MemoryStore) Get(_ context.Context, key string) (Result, bool, error) {
	e, ok := s.m.Get(key)
	if !ok || !s.now().Before(e.expires) || e.r.Schema != SchemaVersion {
		return Result{}, false, nil
	}
	return e.r, true, nil
}

// Put keeps r under key for ttl.
func (s *MemoryStore) Put(_ context.Context, key string, r Result, ttl time.Duration) error {
	s.m.Put(key, memoryEntry{r: r, expires: s.now().Add(ttl)})
	return nil
}

// Touch extends the unexpired result under key to ttl from now and reports
// whether it is there.
func (s *MemoryStore) Touch(_ context.Context, key string, ttl time.Duration) (bool, error) {
	e, ok := s.m.Get(key)
	if !ok || !s.now().Before(e.expires) {
		return false, nil
	}
	e.expires = s.now().Add(ttl)
	s.m.Put(key, e)
	return true, nil
}

// LocalLocker is the Locker of a single process: singleflight already
// makes one computation per key, so every lock is granted.
type LocalLocker struct{}

// Lock grants the lock.
func (LocalLocker) Lock(context.Context, string, time.Duration) (Lease, bool, error) {
	return localLease{}, true, nil
}

type localLease struct{}

func (localLease) Renew(context.Context, time.Duration) error { return nil }
func (localLease) Release(context.Context) error              { return nil }

// NormalizeServer writes a FHIR base URL one way: scheme and host in lower
// case, no trailing slash. Cache keys and the tenant check compare URLs so.
func NormalizeServer(u string) string {
	u = strings.TrimRight(u, "/")
	if i := strings.Index(u, "://"); i > 0 {
		host, path, _ := strings.Cut(u[i+3:], "/")
		u = strings.ToLower(u[:i]) + "://" + strings.ToLower(host)
		if path != "" {
			u += "/" + path
		}
	}
	return u
}
