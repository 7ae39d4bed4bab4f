// Package ordered runs numbered jobs on several goroutines and hands their
// results on in number order, holding only a few results at once. It is how
// streaming writers (decode to safetensors, synthetic checkpoints) use every
// core while their output stays a sequential stream.
package ordered

import (
	"context"
	"sync"
)

// Run calls fill(i, buf) for i in [0, n) on jobs goroutines, buf being
// size(i) bytes long, and emit(i, buf) for each i in order on the calling
// goroutine. At most Slots(jobs) buffers exist at once, and they are reused.
// The first error of fill or emit, or ctx's, stops the run and is returned
// once every goroutine has finished.
func Run(ctx context.Context, n int64, jobs int, size func(i int64) int,
	fill func(i int64, buf []byte) error, emit func(i int64, buf []byte) error) error {
	type job struct {
		i    int64
		buf  []byte
		err  error
		done chan struct{}
	}
	jobs = max(jobs, 1)
	ctx, cancel := context.WithCancel(ctx)
	slots := Slots(jobs)
	free := make(chan []byte, slots)
	for range slots {
		free <- nil
	}
	queue := make(chan *job, slots)
	work := make(chan *job)
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				j.err = fill(j.i, j.buf)
				close(j.done)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		defer close(work)
		for i := range n {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			if sz := size(i); cap(buf) < sz {
				buf = make([]byte, sz)
			} else {
				buf = buf[:sz]
			}
			j := &job{i: i, buf: buf, done: make(chan struct{})}
			queue <- j // never blocks: no more than slots jobs exist
			select {
			case work <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel() // stops the producer, which closes work for the workers
		wg.Wait()
	}()
	for j := range queue {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.err != nil {
			return j.err
		}
		if err := emit(j.i, j.buf); err != nil {
			return err
		}
		free <- j.buf
	}
	return ctx.Err()
}

// Slots is the number of buffers Run holds at most for jobs goroutines:
// one being filled by each, as many waiting to be emitted, and two more so
// the emitter never waits on a slow job with nothing queued behind it.
func Slots(jobs int) int { return 2*max(jobs, 1) + 2 }
