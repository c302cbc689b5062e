package analysis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"golang.org/x/sync/singleflight"
)

// Cached is the analysis as hooks and workers use it: a result is read
// from the Store when there; otherwise it is computed once per study, in
// this process (singleflight) and across replicas (the Locker), in the
// background, so that a caller who stops waiting (its hook budget ran out)
// does not stop the computation, whose result is stored for the next call.
//
// What is stored is what the pixels say (pixelsOnly); each caller gets the
// result bound to its own call (bind): its patient, ImagingStudy, FHIR
// server and tenant.
//
// A slow store is not a down store: an operation that times out is retried
// under the lock rules, and only an outage (the store refuses connections,
// or has failed without a single success for OutageAfter) lets a replica
// compute without the lock, which LockBypassed counts.
type Cached struct {
	analyzer *Analyzer
	store    Store
	// near keeps results read from a shared store for a short while, so
	// that a hot study costs no Redis round trip and decoding per hook.
	// Results never change under a key (it names the model version), so
	// a near copy cannot be stale, only expire later than in Redis.
	near   *nearCopy
	locker Locker
	// inProcess: the store and the locker are this process's memory (the
	// embedded store): their operations get no deadline of their own.
	inProcess bool
	opt       CacheOptions
	group     singleflight.Group
	log       *slog.Logger

	hits, misses, computed, storeErrors, outages, bypassed atomic.Uint64
	// failingSince (unix ns) is when the present run of store failures
	// began; 0 while the store answers.
	failingSince atomic.Int64
	// downUntil (unix ns): during an outage the store is left alone for
	// StoreBackoff, so a Redis that is down costs a hook nothing.
	downUntil atomic.Int64

	// Every computation under way (a hook's, detached from it, or a job's)
	// is counted in running and ends when stopping does: Shutdown cancels
	// and waits for them, so that nothing they use (model sessions) is
	// released under them.
	mu       sync.Mutex // closed and running.Add are one step
	closed   bool
	stopping context.Context
	stop     context.CancelFunc
	running  sync.WaitGroup
	active   atomic.Int64
}

// ErrStopped is returned by an analysis asked for after Shutdown.
var ErrStopped = errors.New("analysis: the service is shutting down")

// CacheOptions time the cache, the lock and the background computation.
type CacheOptions struct {
	TTL     time.Duration // how long a result is kept; 24 h when 0
	LockTTL time.Duration // lock expiry, renewed at a third; 30 s when 0
	// Timeout bounds one background computation; 2 min when 0.
	Timeout time.Duration
	// Poll is how often a replica that lost the lock looks for the
	// winner's result; 50 ms when 0.
	Poll time.Duration
	// StoreTimeout bounds each store or lock operation (200 ms when 0).
	StoreTimeout time.Duration
	// OutageAfter is how long the store must fail without one success
	// before it counts as down (3 s when 0); a refused connection counts
	// at once. StoreBackoff is how long a down store is left alone before
	// it is tried again (1 s when 0).
	OutageAfter, StoreBackoff time.Duration
	// NearTTL is how long a result read from a shared store is kept in
	// this process (1 min when 0; never past TTL); NearSize how many
	// (1000 when 0; none when negative, for a store in this process
	// already, as store.MemoryResults).
	NearTTL  time.Duration
	NearSize int
}

// NewCached returns the cached analysis over store and locker (nil: 1000
// results kept in this process, and every lock granted, as one process
// needs).
func NewCached(a *Analyzer, store Store, locker Locker, opt CacheOptions, log *slog.Logger) *Cached {
	local := store == nil
	if local {
		store = newNearCopy(1000)
	}
	if locker == nil {
		locker = grantAll{}
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
	if opt.OutageAfter <= 0 {
		opt.OutageAfter = 3 * time.Second
	}
	if opt.StoreBackoff <= 0 {
		opt.StoreBackoff = time.Second
	}
	if opt.NearTTL <= 0 {
		opt.NearTTL = time.Minute
	}
	opt.NearTTL = min(opt.NearTTL, opt.TTL)
	if opt.NearSize == 0 {
		opt.NearSize = 1000
	}
	c := &Cached{analyzer: a, store: store, locker: locker, opt: opt, log: log, inProcess: IsInProcess(store) && IsInProcess(locker)}
	c.stopping, c.stop = context.WithCancel(context.Background())
	if !local && opt.NearSize > 0 {
		c.near = newNearCopy(opt.NearSize)
	}
	return c
}

// Key is the store key of in's study; "" when the study cannot be named
// safely (no Study Instance UID and no FHIR server: its id alone could be
// another server's). A vertebral result also reads the patient's clinical
// data (the nomogram), so its key names the patient as well: only a hip
// result is what the pixels alone say.
func (c *Cached) Key(in Input) string {
	if imaging.StudyInstanceUID(in.Study) == "" && in.FHIRServer == "" {
		return ""
	}
	study := studyKey(in)
	if in.Task == inference.TaskVertebral {
		patient := in.Patient
		if patient == "" {
			patient = relativeSubject(deref(in.Study.Subject.Reference), in.FHIRServer)
		}
		study += "#patient=" + patient
	}
	return StoreKey(in.Tenant, in.FHIRServer, study, in.Task, c.analyzer.modelKey(in.Task))
}

// Analyze returns the stored result of in's study, or computes it, bound to
// in (its patient, study and server). A study whose subject is not in's
// patient is refused with ErrOtherPatient. When ctx ends first it returns
// ctx's error and the computation goes on.
func (c *Cached) Analyze(ctx context.Context, in Input) (Result, error) {
	if _, err := boundStudy(in); err != nil {
		return Result{}, err
	}
	key := c.Key(in)
	if key == "" {
		c.misses.Add(1)
		return c.uncached(ctx, in)
	}
	if r, ok := c.lookup(ctx, key); ok {
		c.hits.Add(1)
		return bind(r, in)
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
		bg, done, err := c.begin(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		defer done()
		bg, cancel := context.WithTimeout(bg, c.opt.Timeout)
		defer cancel()
		return c.compute(bg, key, in)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Result{}, res.Err
		}
		return bind(res.Val.(Result), in)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// uncached analyses a study that cannot be cached, on the caller's time.
func (c *Cached) uncached(ctx context.Context, in Input) (Result, error) {
	ctx, done, err := c.begin(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	r, err := c.analyzer.Analyze(ctx, in)
	if err == nil {
		c.computed.Add(1)
	}
	return r, err
}

// begin counts a computation in, unless Shutdown was called (ErrStopped);
// its context ends with ctx or at Shutdown. done counts it out.
func (c *Cached) begin(ctx context.Context) (_ context.Context, done func(), _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, ErrStopped
	}
	c.running.Add(1)
	c.active.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(c.stopping, cancel)
	return ctx, func() {
		unhook()
		cancel()
		c.active.Add(-1)
		c.running.Done()
	}, nil
}

// Shutdown stops the analyses: later ones fail with ErrStopped, and those
// under way (hooks' background computations, jobs') are cancelled at once;
// it waits for them to return until ctx ends. An error means some were
// still running then, and still hold what they use: the caller must not
// release it (model sessions) under them.
func (c *Cached) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	if waitFor(ctx, &c.running) {
		return nil
	}
	return fmt.Errorf("analysis: %d analyses still running after being cancelled: %w", c.active.Load(), ctx.Err())
}

// waitFor waits for wg until ctx ends; false when ctx ended first.
func waitFor(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// storeUp reports whether the store is to be asked now (it is not in an
// outage), and gives the operation its deadline.
func (c *Cached) storeUp(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	if c.down() {
		return ctx, func() {}, false
	}
	if c.inProcess { // nothing to wait for
		return ctx, func() {}, true
	}
	sctx, cancel := context.WithTimeout(ctx, c.opt.StoreTimeout)
	return sctx, cancel, true
}

func (c *Cached) down() bool { return time.Now().UnixNano() < c.downUntil.Load() }

// storeOK notes an answer from the store: a run of failures ends.
func (c *Cached) storeOK() { c.failingSince.Store(0) }

// storeFailed counts and logs a store failure and reports whether the store
// is now taken as down: it refused the connection, or it has failed without
// a success for OutageAfter. A down store is left alone for StoreBackoff.
func (c *Cached) storeFailed(ctx context.Context, what string, err error) (outage bool) {
	c.storeErrors.Add(1)
	now := time.Now()
	c.failingSince.CompareAndSwap(0, now.UnixNano())
	since := time.Unix(0, c.failingSince.Load())
	outage = unreachable(err) || now.Sub(since) >= c.opt.OutageAfter
	if !outage {
		c.log.WarnContext(ctx, "result store slow or failing: retrying", "op", what, "failingFor", now.Sub(since).String(), "err", err)
		return false
	}
	if !c.down() {
		c.outages.Add(1)
	}
	c.downUntil.Store(now.Add(c.opt.StoreBackoff).UnixNano())
	c.log.WarnContext(ctx, "result store down: going on without it", "op", what, "retryIn", c.opt.StoreBackoff.String(), "err", err)
	return true
}

// unreachable reports whether err means the store could not be reached at
// all (a refused or reset connection, a failed dial), as opposed to a slow
// answer.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// lookup reads the near copy, then the store; a store error counts as a
// miss.
func (c *Cached) lookup(ctx context.Context, key string) (Result, bool) {
	if c.near != nil {
		if r, ok, _ := c.near.Get(ctx, key); ok {
			return r, true
		}
	}
	r, ok, _ := c.lookupStore(ctx, key)
	if ok && c.near != nil {
		c.near.Put(ctx, key, r, c.opt.NearTTL)
	}
	return r, ok
}

// lookupStore asks the store; asked is false when it could not be asked
// (down, or the operation failed).
func (c *Cached) lookupStore(ctx context.Context, key string) (r Result, ok, asked bool) {
	sctx, cancel, up := c.storeUp(ctx)
	defer cancel()
	if !up {
		return Result{}, false, false
	}
	r, ok, err := c.store.Get(sctx, key)
	if err != nil {
		if ctx.Err() == nil { // the caller giving up is not the store failing
			c.storeFailed(ctx, "get", err)
		}
		return Result{}, false, false
	}
	c.storeOK()
	return r, ok && r.Schema == SchemaVersion, true
}

// compute runs the analysis under the study's lock, or waits for the
// replica holding it to store the result. A lock or store operation that
// fails is retried; only during an outage does it compute without the lock
// (answering matters more than computing once), and counts it.
func (c *Cached) compute(ctx context.Context, key string, in Input) (Result, error) {
	for {
		if r, ok := c.lookup(ctx, key); ok {
			return r, nil
		}
		sctx, cancel, up := c.storeUp(ctx)
		if !up {
			cancel()
			return c.runUnlocked(ctx, key, in)
		}
		lease, ok, err := c.locker.Lock(sctx, key, c.opt.LockTTL)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return Result{}, fmt.Errorf("analysis: waiting for the study lock: %w", ctx.Err())
		case err != nil:
			if c.storeFailed(ctx, "lock", err) {
				return c.runUnlocked(ctx, key, in)
			}
		case ok:
			c.storeOK()
			// Another replica may have stored the result between the
			// lookup above and the lock: look once more before computing.
			if r, found := c.recheck(ctx, key); found {
				c.release(ctx, lease)
				return r, nil
			}
			return c.run(ctx, key, in, lease)
		default:
			c.storeOK()
		}
		select { // another replica computes, or the store was slow: look again shortly
		case <-ctx.Done():
			return Result{}, fmt.Errorf("analysis: waiting for another replica's result: %w", ctx.Err())
		case <-time.After(c.opt.Poll):
		}
	}
}

// recheck reads the store for a result stored by another replica while
// this one took the lock; a failed read is retried a few times, then the
// holder of the lock computes.
func (c *Cached) recheck(ctx context.Context, key string) (Result, bool) {
	for range 3 {
		r, ok, asked := c.lookupStore(ctx, key)
		if asked || c.down() || ctx.Err() != nil {
			if ok && c.near != nil {
				c.near.Put(ctx, key, r, c.opt.NearTTL)
			}
			return r, ok
		}
	}
	return Result{}, false
}

// runUnlocked computes without the lock during a store outage.
func (c *Cached) runUnlocked(ctx context.Context, key string, in Input) (Result, error) {
	c.bypassed.Add(1)
	c.log.WarnContext(ctx, "result store down: analysing without the study lock", "retryIn", c.opt.StoreBackoff.String())
	return c.run(ctx, key, in, nil)
}

func (c *Cached) release(ctx context.Context, lease Lease) {
	if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
		c.log.WarnContext(ctx, "study lock not released (it expires by itself)", "err", err)
	}
}

// run analyses while renewing the lease, then stores the result (before
// the lease is released, so that a replica waiting for the lock finds it).
func (c *Cached) run(ctx context.Context, key string, in Input, lease Lease) (Result, error) {
	if lease != nil {
		stop := make(chan struct{})
		defer func() {
			close(stop)
			c.release(ctx, lease)
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
	r = pixelsOnly(r)
	if c.near != nil {
		c.near.Put(ctx, key, r, c.opt.NearTTL)
	}
	c.put(ctx, key, r)
	return r, nil
}

// put stores r, retrying a failed write a few times unless the store is
// down: a result not stored is computed again by the next replica.
func (c *Cached) put(ctx context.Context, key string, r Result) {
	for range 3 {
		sctx, cancel, up := c.storeUp(ctx)
		if !up {
			return
		}
		err := c.store.Put(sctx, key, r, c.opt.TTL)
		cancel()
		if err == nil {
			c.storeOK()
			return
		}
		if ctx.Err() != nil || c.storeFailed(ctx, "put", err) {
			return
		}
	}
}

// Reads reports whether a model for task is loaded.
func (c *Cached) Reads(task string) bool { return c.analyzer.Reads(task) }

// CacheStats are the cache's counters. Every analysis asked for is one
// lookup, a hit or a miss: Lookups is Hits + Misses, and the hit ratio is
// Hits / Lookups.
type CacheStats struct {
	Lookups, Hits, Misses, Computed, StoreErrors uint64
	// Outages counts the times the store was found down; LockBypassed
	// the analyses run without the study lock because of it.
	Outages, LockBypassed uint64
}

// Stats returns the counters: lookups, hits and misses of callers, analyses
// computed, store and lock errors, outages and lock bypasses.
func (c *Cached) Stats() CacheStats {
	s := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Computed: c.computed.Load(), StoreErrors: c.storeErrors.Load(),
		Outages: c.outages.Load(), LockBypassed: c.bypassed.Load()}
	s.Lookups = s.Hits + s.Misses
	return s
}

// studyKey names the study; vertebral bodies given by the caller make
// another result than the localiser's, so they are part of the key.
func studyKey(in Input) string {
	key := "ImagingStudy/" + deref(in.Study.Id)
	if uid := imaging.StudyInstanceUID(in.Study); uid != "" {
		key = uid
	}
	if d := bodiesDigest(in.Bodies); d != "" {
		key += "#bodies=" + d
	}
	return key
}

// bodiesDigest names a list of vertebral bodies given by a caller (their
// levels and boxes, in order); "" for none.
func bodiesDigest(bodies []inference.Body) string {
	if len(bodies) == 0 {
		return ""
	}
	var b strings.Builder
	for _, body := range bodies {
		r := body.Box
		fmt.Fprintf(&b, "%s:%d,%d,%d,%d;", body.Level, r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// IsPending reports whether err means the caller stopped waiting while the
// computation goes on.
func IsPending(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
