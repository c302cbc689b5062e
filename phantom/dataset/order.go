package dataset

import (
	"context"
	"runtime"
	"sync"
)

// inOrder makes items 0..n-1 on every core and hands each to use in
// index order; it stops at use's first error or when ctx ends, and returns
// once every producer has stopped.
func inOrder[T any](ctx context.Context, n int, produce func(i int) T, use func(i int, it T) error) error {
	items := make([]chan T, n)
	for i := range items {
		items[i] = make(chan T, 1)
	}
	jobs := make(chan int)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range jobs {
				items[i] <- produce(i)
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(done)
	for i := range n {
		select {
		case it := <-items[i]:
			if err := use(i, it); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
