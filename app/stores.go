package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/store"
	"github.com/redis/go-redis/v9"
)

// precomputeQueue is the precompute queue as the service uses it: jobs in,
// workers, and how much waits (for the metrics).
type precomputeQueue interface {
	analysis.Queue
	Depth(ctx context.Context) (int64, error)
	OldestAge(ctx context.Context) (time.Duration, error)
}

var (
	_ precomputeQueue = (*store.MemoryQueue)(nil)
	_ precomputeQueue = (*store.RedisQueue)(nil)
)

// stores are where the service keeps what it shares: in this process by
// default, in Redis with redis.url (or redis.addrs) set.
type stores struct {
	rdb        redis.UniversalClient // nil: embedded
	results    cds.ReportStore
	locker     analysis.Locker
	feedback   cds.FeedbackLog
	replay     auth.ReplayCache
	queue      precomputeQueue
	queueStats *analysis.QueueStats
	// worklist is the radiologists' worklist index, which the use case
	// notes studies on and the SMART app's worklist endpoint lists.
	worklist analysis.Worklist
	checks   []api.Check // readiness beyond the models
}

// embedded reports whether results are kept in this process.
func (s *stores) embedded() bool { return s.rdb == nil }

// openStores connects Redis when configured, else keeps everything here. A
// Redis not reachable at start is not an error: hooks are answered without
// the cache until it is.
func openStores(ctx context.Context, cfg config.Config, log *slog.Logger) (*stores, error) {
	policy := analysis.QueuePolicy{MaxAttempts: cfg.Precompute.MaxAttempts, Backoff: cfg.Precompute.Backoff}
	mq := store.NewMemoryQueue(cfg.Precompute.QueueSize, policy, log)
	st := &stores{
		results:  store.NewMemoryResults(cfg.Results.Kept),
		locker:   store.NewMemoryLocker(),
		feedback: store.NewMemoryFeedback(cfg.Feedback.MaxEvents),
		replay:   store.NewMemoryReplay(cfg.Auth.ReplayMax),
		queue:    mq, queueStats: &mq.Stats,
		worklist: store.NewMemoryWorklist(cfg.Results.TTL, store.DefaultWorklistItems),
	}
	if cfg.Redis.URL == "" && len(cfg.Redis.Addrs) == 0 {
		log.Info("no redis.url: results, locks, feedback and the worklist are kept in this process")
		return st, nil
	}
	rdb, err := store.NewUniversalClient(cfg.Redis.URL.Reveal(), cfg.Redis.Addrs, cfg.Redis.MasterName)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	st.rdb = rdb
	st.results, st.locker = store.NewRedisResults(rdb), store.NewRedisLocker(rdb)
	rq := store.NewRedisQueue(rdb, policy, "", log)
	rq.Visibility = cfg.Precompute.Visibility
	st.queue, st.queueStats = rq, &rq.Stats
	st.feedback = store.NewRedisFeedback(rdb, cfg.Feedback.MaxEvents)
	st.worklist = store.NewRedisWorklist(rdb, cfg.Results.TTL, store.DefaultWorklistItems)
	st.replay = auth.Fallback{Primary: store.NewRedisReplay(rdb), Secondary: st.replay, OnError: func(err error) {
		log.Warn("jti replay check fell back to memory", "err", err)
	}}
	st.checks = append(st.checks, api.Check{Name: "redis", Degrades: true, Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Warn("redis not reachable at start: hooks are answered without the cache, readiness reports degraded until it is", "err", err)
	}
	return st, nil
}
