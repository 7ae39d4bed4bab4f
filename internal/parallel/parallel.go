// Package parallel runs the independent parts of one encoding on a
// bounded number of goroutines. Callers write each part's result to its
// own place, so the outcome does not depend on the number of goroutines
// or on their scheduling.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Jobs returns the number of goroutines an option value asks for: n when
// positive, else GOMAXPROCS.
func Jobs(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Each calls f(i) for every i in [0, n) on at most jobs goroutines (the
// calling one included), handing out indices in increasing order, and
// returns the error of the lowest index that failed, or nil. Parts after
// a failure may be skipped.
func Each(jobs, n int, f func(i int) error) error {
	jobs = min(Jobs(jobs), n)
	if jobs <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		first  = n
		err    error
		wg     sync.WaitGroup
	)
	work := func() {
		for !failed.Load() {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if e := f(i); e != nil {
				mu.Lock()
				if i < first {
					first, err = i, e
				}
				mu.Unlock()
				failed.Store(true)
			}
		}
	}
	wg.Add(jobs - 1)
	for range jobs - 1 {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
	return err
}

// Range cuts [0, n) into at most jobs×4 contiguous parts of at least
// minPart elements (the last may be shorter) and calls f(lo, hi) for each
// on at most jobs goroutines; the error is Each's.
func Range(jobs, n, minPart int, f func(lo, hi int) error) error {
	if n <= 0 {
		return nil
	}
	parts := min(Jobs(jobs)*4, max(1, n/max(minPart, 1)))
	if Jobs(jobs) == 1 {
		parts = 1
	}
	size := (n + parts - 1) / parts
	return Each(jobs, (n+size-1)/size, func(i int) error {
		return f(i*size, min((i+1)*size, n))
	})
}
