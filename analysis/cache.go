package analysis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"golang.org/x/sync/singleflight"
)

// Cached is the analysis as hooks and workers use it: a result is read
// from the Store when there; otherwise it is computed once per study, in
// this process (singleflight) and across replicas (the Locker), in the
// background, so that a caller who stops waiting (its hook budget ran out)
// does not stop the computation, whose result is stored for the next call.
type Cached struct {
	analyzer *Analyzer
	store    Store
	// near keeps results read from a shared store for a short while, so
	// that a hot study costs no Redis round trip and decoding per hook.
	// Results never change under a key (it names the model version), so
	// a near copy cannot be stale, only expire later than in Redis.
	near   *MemoryStore
	locker Locker
	opt    CacheOptions
	group  singleflight.Group
	log    *slog.Logger

	hits, misses, computed, storeErrors atomic.Uint64
	// downUntil (unix ns): after a store failure the store is left alone
	// for a while, so a Redis that is down or slow costs a hook nothing.
	downUntil atomic.Int64
}

// CacheOptions time the cache, the lock and the background computation.
type CacheOptions struct {
	TTL     time.Duration // how long a result is kept; 24 h when 0
	LockTTL time.Duration // lock expiry, renewed at a third; 30 s when 0
	// Timeout bounds one background computation; 2 min when 0.
	Timeout time.Duration
	// Poll is how often a replica that lost the lock looks for the
	// winner's result; 50 ms when 0.
	Poll time.Duration
	// StoreTimeout bounds each store or lock operation (200 ms when 0);
	// after a failure the store is skipped for StoreBackoff (1 s when 0).
	StoreTimeout, StoreBackoff time.Duration
	// NearTTL is how long a result read from a shared store is kept in
	// this process (1 min when 0; never past TTL); NearSize how many
	// (1000 when 0).
	NearTTL  time.Duration
	NearSize int
}

// NewCached returns the cached analysis over store and locker (nil: an
// in-memory store of 1000 results and the local locker).
func NewCached(a *Analyzer, store Store, locker Locker, opt CacheOptions, log *slog.Logger) *Cached {
	if store == nil {
		store = NewMemoryStore(1000)
	}
	if locker == nil {
		locker = LocalLocker{}
	}
	if opt.TTL <= 0 {
		opt.TTL = 24 * time.Hour
	}
	if opt.LockTTL <= 0 {
		opt.LockTTL = 30 * time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Minute
	}
	if opt.Poll <= 0 {
		opt.Poll = 50 * time.Millisecond
	}
	if opt.StoreTimeout <= 0 {
		opt.StoreTimeout = 200 * time.Millisecond
	}
	if opt.StoreBackoff <= 0 {
		opt.StoreBackoff = time.Second
	}
	if opt.NearTTL <= 0 {
		opt.NearTTL = time.Minute
	}
	opt.NearTTL = min(opt.NearTTL, opt.TTL)
	if opt.NearSize <= 0 {
		opt.NearSize = 1000
	}
	c := &Cached{analyzer: a, store: store, locker: locker, opt: opt, log: log}
	if _, local := store.(*MemoryStore); !local {
		c.near = NewMemoryStore(opt.NearSize)
	}
	return c
}

// Key is the store key of in's study; "" when the study cannot be named
// safely (no Study Instance UID and no FHIR server: its id alone could be
// another server's).
func (c *Cached) Key(in Input) string {
	if imaging.StudyInstanceUID(in.Study) == "" && in.FHIRServer == "" {
		return ""
	}
	return StoreKey(in.Tenant, in.FHIRServer, studyKey(in), in.Task, c.analyzer.modelKey(in.Task))
}

// Analyze returns the stored result of in's study, or computes it. When ctx
// ends first it returns ctx's error and the computation goes on.
func (c *Cached) Analyze(ctx context.Context, in Input) (Result, error) {
	key := c.Key(in)
	if key == "" {
		c.misses.Add(1)
		r, err := c.analyzer.Analyze(ctx, in)
		if err == nil {
			c.computed.Add(1)
		}
		return r, err
	}
	if r, ok := c.lookup(ctx, key); ok {
		c.hits.Add(1)
		return r, nil
	}
	c.misses.Add(1)
	ch := c.group.DoChan(key, func() (r any, err error) {
		// A panic here would end the process (singleflight re-raises it
		// in its own goroutine): make it this study's error instead.
		defer func() {
			if p := recover(); p != nil {
				c.log.ErrorContext(ctx, "analysis panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = fmt.Errorf("analysis: internal error (%v)", p)
			}
		}()
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opt.Timeout)
		defer cancel()
		return c.compute(bg, key, in)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Result{}, res.Err
		}
		return res.Val.(Result), nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// storeUp reports whether the store is to be asked now, and gives the
// operation its deadline.
func (c *Cached) storeUp(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	if time.Now().UnixNano() < c.downUntil.Load() {
		return ctx, func() {}, false
	}
	sctx, cancel := context.WithTimeout(ctx, c.opt.StoreTimeout)
	return sctx, cancel, true
}

// storeFailed counts and logs a store failure and skips the store for a
// while.
func (c *Cached) storeFailed(ctx context.Context, what string, err error) {
	c.storeErrors.Add(1)
	c.downUntil.Store(time.Now().Add(c.opt.StoreBackoff).UnixNano())
	c.log.WarnContext(ctx, "result store failed: going on without it", "op", what, "retryIn", c.opt.StoreBackoff.String(), "err", err)
}

// lookup reads the near copy, then the store; a store error counts as a
// miss.
func (c *Cached) lookup(ctx context.Context, key string) (Result, bool) {
	if c.near != nil {
		if r, ok, _ := c.near.Get(ctx, key); ok {
			return r, true
		}
	}
	r, ok := c.lookupStore(ctx, key)
	if ok && c.near != nil {
		c.near.Put(ctx, key, r, c.opt.NearTTL)
	}
	return r, ok
}

func (c *Cached) lookupStore(ctx context.Context, key string) (Result, bool) {
	sctx, cancel, up := c.storeUp(ctx)
	defer cancel()
	if !up {
		return Result{}, false
	}
	r, ok, err := c.store.Get(sctx, key)
	if err != nil {
		if ctx.Err() == nil { // the caller giving up is not the store failing
			c.storeFailed(ctx, "get", err)
		}
		return Result{}, false
	}
	return r, ok && r.Schema == SchemaVersion
}

// compute runs the analysis under the study's lock, or waits for the
// replica holding it to store the result. Without a reachable lock store it
// computes anyway: answering matters more than computing once.
func (c *Cached) compute(ctx context.Context, key string, in Input) (Result, error) {
	for {
		if r, ok := c.lookup(ctx, key); ok {
			return r, nil
		}
		sctx, cancel, up := c.storeUp(ctx)
		if !up {
			cancel()
			return c.run(ctx, key, in, nil)
		}
		lease, ok, err := c.locker.Lock(sctx, key, c.opt.LockTTL)
		cancel()
		if err != nil {
			c.storeFailed(ctx, "lock", err)
			return c.run(ctx, key, in, nil)
		}
		if ok {
			return c.run(ctx, key, in, lease)
		}
		select { // another replica computes: look again shortly
		case <-ctx.Done():
			return Result{}, fmt.Errorf("analysis: waiting for another replica's result: %w", ctx.Err())
		case <-time.After(c.opt.Poll):
		}
	}
}

// run analyses while renewing the lease, then stores the result.
func (c *Cached) run(ctx context.Context, key string, in Input, lease Lease) (Result, error) {
	if lease != nil {
		stop := make(chan struct{})
		defer func() {
			close(stop)
			if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
				c.log.WarnContext(ctx, "study lock not released (it expires by itself)", "err", err)
			}
		}()
		go func() {
			t := time.NewTicker(c.opt.LockTTL / 3)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if err := lease.Renew(ctx, c.opt.LockTTL); err != nil {
						c.log.WarnContext(ctx, "study lock not renewed", "err", err)
					}
				}
			}
		}()
	}
	r, err := c.analyzer.Analyze(ctx, in)
	if err != nil {
		return Result{}, err
	}
	c.computed.Add(1)
	if c.near != nil {
		c.near.Put(ctx, key, r, c.opt.NearTTL)
	}
	if sctx, cancel, up := c.storeUp(ctx); up {
		if err := c.store.Put(sctx, key, r, c.opt.TTL); err != nil {
			c.storeFailed(ctx, "put", err)
		}
		cancel()
	}
	return r, nil
}

// Reads reports whether a model for task is loaded.
func (c *Cached) Reads(task string) bool { return c.analyzer.Reads(task) }

// CacheStats are the cache's counters.
type CacheStats struct {
	Hits, Misses, Computed, StoreErrors uint64
}

// Stats returns the counters: hits and misses of callers, analyses
// computed, store and lock errors.
func (c *Cached) Stats() CacheStats {
	return CacheStats{c.hits.Load(), c.misses.Load(), c.computed.Load(), c.storeErrors.Load()}
}

// studyKey names the study; vertebral bodies given by the caller make
// another result than the localiser's, so they are part of the key.
func studyKey(in Input) string {
	key := "ImagingStudy/" + deref(in.Study.Id)
	if uid := imaging.StudyInstanceUID(in.Study); uid != "" {
		key = uid
	}
	if len(in.Bodies) > 0 {
		var b strings.Builder
		for _, body := range in.Bodies {
			r := body.Box
			fmt.Fprintf(&b, "%s:%d,%d,%d,%d;", body.Level, r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)
		}
		sum := sha256.Sum256([]byte(b.String()))
		key += "#bodies=" + hex.EncodeToString(sum[:8])
	}
	return key
}

// IsPending reports whether err means the caller stopped waiting while the
// computation goes on.
func IsPending(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
