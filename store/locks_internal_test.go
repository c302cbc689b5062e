package store

import (
	"fmt"
	"testing"
	"time"
)

// TestMemoryLockerSweepsAbandonedLocks: locks whose holder never released
// them are forgotten once expired, so the table stays small. (On a slow
// machine early locks expire, and are swept, while the loop still runs:
// the bound, not an exact count, is the property.)
func TestMemoryLockerSweepsAbandonedLocks(t *testing.T) {
	l := NewMemoryLocker()
	for i := range 2 * sweepAbove {
		if _, ok, _ := l.Lock(t.Context(), fmt.Sprint(i), time.Millisecond); !ok {
			t.Fatal("lock refused")
		}
	}
	time.Sleep(5 * time.Millisecond)
	if _, ok, _ := l.Replica().Lock(t.Context(), "next", time.Minute); !ok {
		t.Fatal("lock refused")
	}
	if n := len(l.locks.held); n > sweepAbove+1 {
		t.Errorf("%d locks held after %d abandoned ones expired, want at most %d", n, 2*sweepAbove, sweepAbove+1)
	}
	if _, live := l.locks.held["next"]; !live {
		t.Error("the live lock was swept")
	}
}
