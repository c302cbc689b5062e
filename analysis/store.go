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
// and the caller goes on without it. store.RedisResults and its embedded
// twin store.MemoryResults are ones.
type Store interface {
	Get(ctx context.Context, key string) (r Result, ok bool, err error)
	Put(ctx context.Context, key string, r Result, ttl time.Duration) error
}

// InProcess is an optional method of a Store, a Locker or a report store
// that keeps everything in this process's memory and never waits, such as
// store.MemoryResults: no deadline is set on its operations (each would
// cost a timer on every hook call, for nothing).
type InProcess interface{ InProcess() bool }

// IsInProcess reports whether v says it is InProcess.
func IsInProcess(v any) bool {
	p, ok := v.(InProcess)
	return ok && p.InProcess()
}

// Locker gives one computation per key across replicas: Lock takes the
// key's lock for ttl, or reports ok=false when another holder has it.
// store.RedisLocker and store.MemoryLocker are ones.
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

// nearCopy keeps results in this process for a while: Cached's near copy
// of a shared store's results, and its only store when given none.
type nearCopy struct{ m *lru.Expiring[Result] }

func newNearCopy(size int) *nearCopy { return &nearCopy{m: lru.NewExpiring[Result](size)} }

func (*nearCopy) InProcess() bool { return true }

func (n *nearCopy) Get(_ context.Context, key string) (Result, bool, error) {
	r, ok := n.m.Get(key)
	return r, ok, nil
}

func (n *nearCopy) Put(_ context.Context, key string, r Result, ttl time.Duration) error {
	n.m.Put(key, r, ttl)
	return nil
}

// grantAll is Cached's Locker when given none, for one process: its
// singleflight already runs one computation per key.
type grantAll struct{}

func (grantAll) Lock(context.Context, string, time.Duration) (Lease, bool, error) {
	return grantAll{}, true, nil
}
func (grantAll) InProcess() bool                            { return true }
func (grantAll) Renew(context.Context, time.Duration) error { return nil }
func (grantAll) Release(context.Context) error              { return nil }

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
