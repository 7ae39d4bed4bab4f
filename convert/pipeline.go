package convert

import (
	"context"
	"runtime"
	"sync"
)

// Conversion runs every pass over the tensors (rate-model sampling, rate
// search, the final encode) through one bounded pipeline: a dispatcher
// hands tensor indices out in order, jobs workers each read one tensor
// from the source and encode it, and the calling goroutine receives the
// results in tensor order, so the output is the same for any number of
// workers. At most window tensors are between dispatch and emission, which
// bounds both the tensors held by workers and the finished encodings the
// in-order emitter buffers while it waits for a slow one.

// Progress reports how far a conversion has got. It is passed to
// Options.Progress after each tensor of each pass.
type Progress struct {
	Phase Phase
	// Pass counts the passes of the phase from 1 (rate search and the
	// rate model run several).
	Pass int
	// Tensors and Weights are done out of TotalTensors and TotalWeights
	// in this pass; Tensor is the one just finished.
	Tensors, TotalTensors int
	Weights, TotalWeights uint64
	Tensor                string
}

// A Phase names a stage of a conversion.
type Phase string

// The phases of a conversion, in the order they run.
const (
	// PhaseProbe measures each matrix's sensitivity for --allocate
	// (Probe), matrix by matrix.
	PhaseProbe Phase = "probe"
	// PhaseCalibrate derives the matrices' Hessians a layer at a time
	// (Guidance.LayerHessians).
	PhaseCalibrate Phase = "calibrate"
	// PhaseRateModel encodes row samples of the matrices at a few steps
	// to model each one's size (see controlRate).
	PhaseRateModel Phase = "rate model"
	// PhaseRateSearch encodes the whole checkpoint into a discarding
	// writer, once per pass of the exact rate search.
	PhaseRateSearch Phase = "rate search"
	// PhaseSequential codes the matrices one by one into the calibration
	// model (sequential guidance).
	PhaseSequential Phase = "sequential"
	// PhaseEncode writes the file.
	PhaseEncode Phase = "encode"
)

// jobs returns the number of encode workers.
func (c *conversion) jobs() int {
	if c.o.Jobs > 0 {
		return c.o.Jobs
	}
	return runtime.GOMAXPROCS(0)
}

// runOrdered calls work(k) for every k in [0, n) on up to jobs goroutines
// and emit(k, v) with its result on the calling goroutine, in increasing
// k. Before work k is handed out, plan(k) (if not nil) is called on the
// dispatching goroutine, after emit has returned for every index below
// k − lag (lag < 0: no such wait), so plan may read what those emits
// recorded, and the plan of k depends on nothing else that finished:
// rate-control feedback stays deterministic. At most 2·jobs indices are
// dispatched and not yet emitted, and, when cost is not nil, their costs
// add up to at most budget unless a single index costs more (it then runs
// with nothing else in flight): conversion charges each tensor its
// elements, so a large tensor does not meet other large ones in memory,
// and peak memory follows the largest tensor rather than the window. The
// budget only delays dispatch, so results do not depend on it. The first
// error of plan, work or emit,
// or ctx's cancellation, stops dispatching and is returned once the
// workers have finished what they hold.
func runOrdered[T any](ctx context.Context, n, jobs, lag int, cost func(k int) int64, budget int64, plan func(k int) error, work func(k int) (T, error), emit func(k int, v T) error) error {
	jobs = max(jobs, 1)
	window := 2 * jobs
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		emitted int   // guarded by mu: emit has returned for every index below
		held    int64 // guarded by mu: cost of the indices dispatched, not emitted
		stopped bool
		planErr error
	)
	stop := func() {
		mu.Lock()
		stopped = true
		cond.Broadcast()
		mu.Unlock()
	}
	defer context.AfterFunc(ctx, stop)()

	type result struct {
		k   int
		v   T
		err error
	}
	tasks := make(chan int)
	results := make(chan result, window)
	go func() {
		defer close(tasks)
		for k := range n {
			mu.Lock()
			var ck int64
			if cost != nil {
				ck = cost(k)
			}
			for !stopped && (k-emitted >= window || (lag >= 0 && emitted < k-lag) || (k > emitted && held+ck > budget)) {
				cond.Wait()
			}
			st := stopped
			held += ck
			mu.Unlock()
			if st {
				return
			}
			if plan != nil {
				if err := plan(k); err != nil {
					mu.Lock()
					planErr = err
					mu.Unlock()
					cancel()
					return
				}
			}
			select {
			case tasks <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range tasks {
				if err := ctx.Err(); err != nil {
					results <- result{k: k, err: err}
					continue
				}
				v, err := work(k)
				results <- result{k: k, v: v, err: err}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var firstErr error
	pending := make(map[int]T, window)
	next := 0
	for r := range results {
		if firstErr != nil {
			continue // drain
		}
		if r.err != nil {
			firstErr = r.err
			cancel()
			continue
		}
		pending[r.k] = r.v
		for {
			v, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			if err := emit(next, v); err != nil {
				firstErr = err
				cancel()
				break
			}
			mu.Lock()
			if cost != nil {
				held -= cost(next)
			}
			next++
			emitted = next
			cond.Broadcast()
			mu.Unlock()
		}
	}
	mu.Lock()
	pe := planErr
	mu.Unlock()
	if pe != nil {
		// Workers may have seen the cancellation it caused.
		return pe
	}
	if firstErr != nil {
		return firstErr
	}
	if next < n {
		return ctx.Err()
	}
	return nil
}
