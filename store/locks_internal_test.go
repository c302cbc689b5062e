package store

import (
	"fmt"
	"testing"
	"time"
)

// TestMemoryLockerSweepsAbandonedLocks: locks whose holder never released
// them are forgotten once expired, so the table stays small.
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
	if n := len(l.locks.held); n != 1 {
		t.Errorf("%d locks held, want the one live lock", n)
	}
}
