package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
)

func TestReplayContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testReplayContract(t, func(*testing.T) auth.ReplayCache { return store.NewMemoryReplay(1000) })
	})
	t.Run("redis", func(t *testing.T) {
		testReplayContract(t, func(t *testing.T) auth.ReplayCache { return store.NewRedisReplay(newRedis(t)) })
	})
}

// testReplayContract is what a jti replay cache does, in memory or on
// Redis: a token id is new once, until its time is up; and it is held for
// a second at least, even when its time is (nearly) up already.
func testReplayContract(t *testing.T, newCache func(t *testing.T) auth.ReplayCache) {
	tests := []struct {
		name string
		run  func(t *testing.T, c auth.ReplayCache)
	}{
		{"a token id is new once", func(t *testing.T, c auth.ReplayCache) {
			until := time.Now().Add(time.Minute)
			for _, tt := range []struct {
				key  string
				want bool
			}{{"iss|jti-1", true}, {"iss|jti-1", false}, {"iss|jti-2", true}, {"other-iss|jti-1", true}, {"iss|jti-2", false}} {
				if got, err := c.FirstUse(t.Context(), tt.key, until); err != nil || got != tt.want {
					t.Errorf("FirstUse(%s) = %v, %v; want %v", tt.key, got, err, tt.want)
				}
			}
		}},
		{"an id is new again once its time is up", func(t *testing.T, c auth.ReplayCache) {
			if first, err := c.FirstUse(t.Context(), "jti", time.Now().Add(1200*time.Millisecond)); !first || err != nil {
				t.Fatalf("first use: %v, %v", first, err)
			}
			time.Sleep(1400 * time.Millisecond)
			if again, err := c.FirstUse(t.Context(), "jti", time.Now().Add(time.Minute)); !again || err != nil {
				t.Errorf("after its time: new=%v err=%v, want new", again, err)
			}
		}},
		{"a replay within a second is refused even past the token's time", func(t *testing.T, c auth.ReplayCache) {
			past := time.Now().Add(-time.Minute)
			if first, err := c.FirstUse(t.Context(), "jti", past); !first || err != nil {
				t.Fatalf("first use: %v, %v", first, err)
			}
			if again, err := c.FirstUse(t.Context(), "jti", past); again || err != nil {
				t.Errorf("replay at once: new=%v err=%v, want refused", again, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newCache(t)) })
	}
}

// TestMemoryReplayRefusesNewIDsWhenFull: past its bound of live ids the
// embedded cache refuses new tokens rather than forget live ones (which
// could then be replayed); expired ids make room again.
func TestMemoryReplayRefusesNewIDsWhenFull(t *testing.T) {
	c := store.NewMemoryReplay(2)
	soon := time.Now().Add(time.Second)
	for _, key := range []string{"a", "b"} {
		if ok, err := c.FirstUse(t.Context(), key, soon); !ok || err != nil {
			t.Fatalf("FirstUse(%s) = %v, %v", key, ok, err)
		}
	}
	if _, err := c.FirstUse(t.Context(), "c", soon); !errors.Is(err, store.ErrReplayCacheFull) {
		t.Errorf("a third live id: %v, want ErrReplayCacheFull", err)
	}
	if ok, err := c.FirstUse(t.Context(), "a", soon); ok || err != nil {
		t.Errorf("replay of a live id when full: new=%v err=%v, want refused", ok, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if ok, err := c.FirstUse(t.Context(), "c", time.Now().Add(time.Minute)); !ok || err != nil {
		t.Errorf("after a and b expired: new=%v err=%v, want new", ok, err)
	}
}

// TestFallbackChecksReplaysWhileRedisIsDown: as serve wires it, the memory
// twin takes over the replay check while Redis fails.
func TestFallbackChecksReplaysWhileRedisIsDown(t *testing.T) {
	rdb, err := store.NewRedisClient(fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	var failures int
	c := auth.Fallback{Primary: store.NewRedisReplay(rdb), Secondary: store.NewMemoryReplay(10), OnError: func(error) { failures++ }}
	until := time.Now().Add(time.Minute)
	if ok, err := c.FirstUse(t.Context(), "jti", until); !ok || err != nil {
		t.Fatalf("first use: %v, %v", ok, err)
	}
	if ok, err := c.FirstUse(t.Context(), "jti", until); ok || err != nil {
		t.Errorf("replay with Redis down: new=%v err=%v, want refused", ok, err)
	}
	if failures != 2 {
		t.Errorf("OnError called %d times, want 2", failures)
	}
}

// Ids used again after they expired are new again, and the cache keeps
// taking new ids while old ones expire in between.
func TestMemoryReplayForgetsAsIdsExpire(t *testing.T) {
	c := store.NewMemoryReplay(100)
	soon := time.Now().Add(time.Second)
	for i := range 100 {
		if ok, err := c.FirstUse(t.Context(), fmt.Sprint("old", i), soon); !ok || err != nil {
			t.Fatalf("old%d: %v, %v", i, ok, err)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	later := time.Now().Add(time.Minute)
	for i := range 100 {
		key := fmt.Sprint("old", i)
		if i%2 == 1 {
			key = fmt.Sprint("new", i)
		}
		if ok, err := c.FirstUse(t.Context(), key, later); !ok || err != nil {
			t.Fatalf("%s after the old ids expired: %v, %v", key, ok, err)
		}
		if ok, _ := c.FirstUse(t.Context(), key, later); ok {
			t.Fatalf("%s accepted twice", key)
		}
	}
	if _, err := c.FirstUse(t.Context(), "one-more", later); !errors.Is(err, store.ErrReplayCacheFull) {
		t.Errorf("101st live id: %v, want ErrReplayCacheFull", err)
	}
}

// BenchmarkMemoryReplayFull is a new token id offered to a cache holding
// auth.replay_max's default of live ids: refused, at a cost that must not
// grow with the cache.
func BenchmarkMemoryReplayFull(b *testing.B) {
	const max = 100000
	c := store.NewMemoryReplay(max)
	until := time.Now().Add(time.Hour)
	for i := range max {
		c.FirstUse(b.Context(), fmt.Sprint("live", i), until)
	}
	i := 0
	for b.Loop() {
		if _, err := c.FirstUse(b.Context(), fmt.Sprint("new", i), until); !errors.Is(err, store.ErrReplayCacheFull) {
			b.Fatal(err)
		}
		i++
	}
}
