package dataset

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestInOrder(t *testing.T) {
	t.Run("every item in index order", func(t *testing.T) {
		var got []int
		err := inOrder(t.Context(), 50, func(i int) int {
			time.Sleep(time.Duration((50-i)%7) * time.Millisecond) // later items finish first
			return i * i
		}, func(i, it int) error {
			if it != i*i {
				t.Errorf("item %d is %d", i, it)
			}
			got = append(got, i)
			return nil
		})
		if err != nil || len(got) != 50 {
			t.Fatalf("%d items, %v", len(got), err)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("order %v", got)
			}
		}
	})
	t.Run("use's error stops the run", func(t *testing.T) {
		boom := errors.New("disk full")
		var made atomic.Int32
		err := inOrder(t.Context(), 1000, func(i int) int {
			time.Sleep(10 * time.Millisecond)
			made.Add(1)
			return i
		}, func(i, _ int) error {
			if i == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("error %v", err)
		}
		if n := made.Load(); n == 1000 {
			t.Errorf("all %d items were made after the error", n)
		}
	})
	t.Run("a cancelled context stops the run", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		err := inOrder(ctx, 10000, func(i int) int { return i }, func(i, _ int) error {
			if i == 5 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	})
}
