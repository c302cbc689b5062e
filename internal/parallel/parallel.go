// Package parallel runs the independent parts of one computation side by
// side (a radiograph's rows, a pelvis's two hips).
package parallel

import (
	"runtime"
	"sync"
)

// Each calls f(0) to f(n-1), each in its own goroutine when there is more
// than one and more than one processor, and waits for them all. A panic in
// a part is raised again on the caller's goroutine once every part has
// ended (the first one caught), so that the caller's own recovery, such as
// a study's analysis turning a panic into that study's error, still
// catches it rather than the process ending.
func Each(n int, f func(i int)) {
	if n <= 1 || runtime.GOMAXPROCS(0) == 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		caught any
	)
	for i := range n {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					if caught == nil {
						caught = r
					}
					mu.Unlock()
				}
			}()
			f(i)
		})
	}
	wg.Wait()
	if caught != nil {
		panic(caught)
	}
}

// Ranges splits [0, n) into parts consecutive ranges (fewer when n is
// smaller) and calls f on each as Each calls its parts.
func Ranges(n, parts int, f func(from, to int)) {
	parts = max(1, min(parts, n))
	Each(parts, func(p int) { f(n*p/parts, n*(p+1)/parts) })
}
