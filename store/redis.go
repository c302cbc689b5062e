// Package store holds the Redis and in-memory adapters of the interfaces
// that analysis, cds and auth declare: results and reports, study locks,
// the precompute queue, the feedback log, the jti replay cache and the
// worklist. Without
// Redis the service runs on the in-memory twins (the embedded default);
// with Redis, replicas share state. Each interface's two twins live in one
// file and pass one contract test.
package store

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
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
