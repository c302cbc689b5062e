package parallel_test

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/orthotriage/orthotriage/internal/parallel"
)

// Every part runs once, and the ranges cover [0, n) exactly.
func TestEachAndRanges(t *testing.T) {
	var ran [5]atomic.Int32
	parallel.Each(len(ran), func(i int) { ran[i].Add(1) })
	for i := range ran {
		if got := ran[i].Load(); got != 1 {
			t.Errorf("part %d ran %d times", i, got)
		}
	}
	for _, tc := range []struct{ n, parts int }{{10, 3}, {2, 8}, {1, 1}, {0, 4}, {7, 0}} {
		seen := make([]atomic.Int32, tc.n)
		parallel.Ranges(tc.n, tc.parts, func(from, to int) {
			for i := from; i < to; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Errorf("Ranges(%d, %d): index %d covered %d times", tc.n, tc.parts, i, got)
			}
		}
	}
}

// A part's panic reaches the caller's goroutine, where it can be
// recovered, after the other parts have finished.
func TestEachPanicReachesTheCaller(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // the parts on goroutines of their own
	var finished atomic.Int32
	got := func() (r any) {
		defer func() { r = recover() }()
		parallel.Each(4, func(i int) {
			if i == 2 {
				panic("part 2 failed")
			}
			finished.Add(1)
		})
		return nil
	}()
	if s, _ := got.(string); !strings.Contains(s, "part 2 failed") {
		t.Errorf("recovered %v, want part 2's panic", got)
	}
	if finished.Load() != 3 {
		t.Errorf("%d other parts finished, want 3", finished.Load())
	}
}
