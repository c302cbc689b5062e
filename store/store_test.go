package store_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
	"github.com/redis/go-redis/v9"
)

// Each interface's contract test (testResultsContract, testLockerContract,
// testQueueContract, testFeedbackContract, testReplayContract,
// testWorklistContract) runs on the memory twin and on Redis: the embedded
// default behaves as the shared deployment does.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newRedis starts a private Redis for t and returns a client on it.
func newRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
