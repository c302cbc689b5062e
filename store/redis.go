package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orthotriage/orthotriage/cds"
	"github.com/redis/go-redis/v9"
)

var _ cds.FeedbackLog = (*RedisFeedback)(nil)

// Redis key names. Keys share the prefix so a deployment can scope ACLs.
const (
	FeedbackStream  = "orthotriage:feedback"
	feedbackSeenKey = "orthotriage:feedback:seen:"
	// feedbackSeenTTL is how long a duplicate is recognised.
	feedbackSeenTTL = 7 * 24 * time.Hour
)

// NewRedisClient connects to the Redis named by url (redis://, rediss:// or
// unix://). The connection is lazy: Ping to check it.
func NewRedisClient(url string) (redis.UniversalClient, error) {
	return NewUniversalClient(url, nil, "")
}

// NewUniversalClient is NewRedisClient for any deployment: with addrs it is
// a Sentinel client (masterName set) or a Cluster client (several addrs),
// url then giving only the password, database and TLS; without, the single
// node of url.
func NewUniversalClient(url string, addrs []string, masterName string) (redis.UniversalClient, error) {
	opts := &redis.Options{}
	if url != "" {
		var err error
		if opts, err = redis.ParseURL(url); err != nil {
			return nil, fmt.Errorf("parse redis url: %w", err)
		}
	}
	if len(addrs) == 0 { // one node, as the URL says (also unix sockets)
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, time.Second, time.Second
		opts.ContextTimeoutEnabled = true // callers' deadlines (200 ms store calls, probes) bound each command
		return redis.NewClient(opts), nil
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:        addrs,
		MasterName:   masterName,
		Username:     opts.Username,
		Password:     opts.Password,
		DB:           opts.DB,
		TLSConfig:    opts.TLSConfig,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		// Callers' deadlines (200 ms store calls, probes) bound each command.
		ContextTimeoutEnabled: true,
	}), nil
}

// RedisFeedback appends feedback events to a capped Redis stream, each once:
// a SET NX on the event's key guards the XADD.
type RedisFeedback struct {
	rdb redis.UniversalClient
	max int64
}

// NewRedisFeedback returns a log on rdb whose stream is trimmed to about max
// entries.
func NewRedisFeedback(rdb redis.UniversalClient, max int) *RedisFeedback {
	return &RedisFeedback{rdb: rdb, max: int64(max)}
}

// Record appends e to the stream unless its key was seen.
func (r *RedisFeedback) Record(ctx context.Context, e cds.FeedbackEvent) (bool, error) {
	first, err := r.rdb.SetNX(ctx, feedbackSeenKey+e.Key, 1, feedbackSeenTTL).Result()
	if err != nil {
		return false, fmt.Errorf("redis set feedback key: %w", err)
	}
	if !first {
		return false, nil
	}
	fb, err := json.Marshal(e.Feedback)
	if err != nil {
		return false, fmt.Errorf("encode feedback: %w", err)
	}
	err = r.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: FeedbackStream,
		MaxLen: r.max,
		Approx: true,
		Values: map[string]any{
			"service":    e.Service,
			"key":        e.Key,
			"outcome":    e.Feedback.Outcome,
			"feedback":   fb,
			"receivedAt": e.ReceivedAt.UTC().Format(time.RFC3339Nano),
		},
	}).Err()
	if err != nil {
		// Forget the key so that the client's retry is recorded.
		r.rdb.Del(context.WithoutCancel(ctx), feedbackSeenKey+e.Key)
		return false, fmt.Errorf("redis xadd feedback: %w", err)
	}
	return true, nil
}

// RedisReplay is the auth.ReplayCache shared by replicas: SET NX with the
// token's remaining lifetime.
type RedisReplay struct{ rdb redis.UniversalClient }

// NewRedisReplay returns a replay cache on rdb.
func NewRedisReplay(rdb redis.UniversalClient) *RedisReplay { return &RedisReplay{rdb: rdb} }

// FirstUse records key until until and reports whether it was new.
func (r *RedisReplay) FirstUse(ctx context.Context, key string, until time.Time) (bool, error) {
	ttl := time.Until(until)
	if ttl < time.Second {
		ttl = time.Second
	}
	ok, err := r.rdb.SetNX(ctx, "orthotriage:jti:"+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis set jti: %w", err)
	}
	return ok, nil
}
