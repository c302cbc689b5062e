package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/store"
)

func TestLockerContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testLockerContract(t, func(*testing.T) (analysis.Locker, analysis.Locker) {
			l := store.NewMemoryLocker()
			return l, l.Replica()
		})
	})
	t.Run("redis", func(t *testing.T) {
		testLockerContract(t, func(t *testing.T) (analysis.Locker, analysis.Locker) {
			rdb := newRedis(t)
			return store.NewRedisLocker(rdb), store.NewRedisLocker(rdb)
		})
	})
}

// testLockerContract is what study locks do, in memory or on Redis, seen
// from two replicas' lockers on the same locks: one holder at a time; a
// lock held past its expiry is the next taker's, and its old holder can
// neither renew nor release it; a locker retakes its own lock.
func testLockerContract(t *testing.T, newLockers func(t *testing.T) (l1, l2 analysis.Locker)) {
	tests := []struct {
		name string
		run  func(t *testing.T, l1, l2 analysis.Locker)
	}{
		{"one holder at a time; expiry and release free the lock", func(t *testing.T, l1, l2 analysis.Locker) {
			a, ok, err := l1.Lock(t.Context(), "k", 300*time.Millisecond)
			if !ok || err != nil {
				t.Fatalf("first lock: ok=%v err=%v", ok, err)
			}
			if _, ok, _ := l2.Lock(t.Context(), "k", time.Second); ok {
				t.Fatal("a second holder got a held lock")
			}
			if err := a.Renew(t.Context(), 300*time.Millisecond); err != nil {
				t.Fatalf("renew: %v", err)
			}
			time.Sleep(400 * time.Millisecond) // a's lock expires; b takes it
			b, ok, _ := l2.Lock(t.Context(), "k", time.Second)
			if !ok {
				t.Fatal("expired lock not taken")
			}
			if err := a.Renew(t.Context(), time.Second); !errors.Is(err, analysis.ErrLockLost) {
				t.Errorf("renewing a lost lock: %v, want ErrLockLost", err)
			}
			if err := a.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := l1.Lock(t.Context(), "k", time.Second); ok {
				t.Error("the old holder's release freed the new holder's lock")
			}
			b.Release(t.Context())
			if _, ok, _ := l1.Lock(t.Context(), "k", time.Second); !ok {
				t.Error("released lock not free")
			}
		}},
		{"renewal keeps the lock past its first expiry", func(t *testing.T, l1, l2 analysis.Locker) {
			a, ok, err := l1.Lock(t.Context(), "k", 200*time.Millisecond)
			if !ok || err != nil {
				t.Fatalf("lock: ok=%v err=%v", ok, err)
			}
			if err := a.Renew(t.Context(), time.Minute); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if _, ok, _ := l2.Lock(t.Context(), "k", time.Second); ok {
				t.Error("a renewed lock expired at its first expiry")
			}
		}},
		{"a released lock cannot be renewed", func(t *testing.T, l1, _ analysis.Locker) {
			a, _, _ := l1.Lock(t.Context(), "k", time.Minute)
			if err := a.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := a.Renew(t.Context(), time.Minute); !errors.Is(err, analysis.ErrLockLost) {
				t.Errorf("renewing a released lock: %v, want ErrLockLost", err)
			}
		}},
		{"keys are locked apart", func(t *testing.T, l1, l2 analysis.Locker) {
			if _, ok, _ := l1.Lock(t.Context(), "study-1", time.Minute); !ok {
				t.Fatal("study-1 not locked")
			}
			if _, ok, _ := l2.Lock(t.Context(), "study-2", time.Minute); !ok {
				t.Error("study-2 held by study-1's lock")
			}
		}},
		// A lock whose SET Redis carried out after the client stopped
		// waiting (a busy Redis) is this locker's on the next try, not
		// nobody's until it expires.
		{"a locker retakes its own lock", func(t *testing.T, l, other analysis.Locker) {
			if _, ok, err := l.Lock(t.Context(), "study", time.Minute); !ok || err != nil {
				t.Fatalf("first lock: ok=%v err=%v", ok, err)
			}
			lease, ok, err := l.Lock(t.Context(), "study", time.Minute) // the retry after a lost answer
			if !ok || err != nil {
				t.Fatalf("retaking its own lock: ok=%v err=%v, want it granted", ok, err)
			}
			if _, ok, _ := other.Lock(t.Context(), "study", time.Minute); ok {
				t.Fatal("another replica got the retaken lock")
			}
			if err := lease.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := other.Lock(t.Context(), "study", time.Minute); !ok {
				t.Error("released lock not free for the other replica")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l1, l2 := newLockers(t)
			tt.run(t, l1, l2)
		})
	}
}
