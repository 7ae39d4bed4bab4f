package ordered_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nwcodec/nwc/internal/ordered"
)

func TestOrderAndBound(t *testing.T) {
	for _, jobs := range []int{1, 2, 7} {
		var live, peak atomic.Int64
		var next int64
		err := ordered.Run(context.Background(), 200, jobs, func(i int64) int { return int(i%5) + 1 },
			func(i int64, buf []byte) error {
				if n := live.Add(1); n > peak.Load() {
					peak.Store(n)
				}
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				for k := range buf {
					buf[k] = byte(i)
				}
				return nil
			},
			func(i int64, buf []byte) error {
				live.Add(-1)
				if i != next || len(buf) != int(i%5)+1 || buf[0] != byte(i) {
					t.Fatalf("jobs %d: got block %d (%d bytes, %d), want %d", jobs, i, len(buf), buf[0], next)
				}
				next++
				return nil
			})
		if err != nil || next != 200 {
			t.Fatalf("jobs %d: %v after %d blocks", jobs, err, next)
		}
		if p := peak.Load(); p > int64(ordered.Slots(jobs)) {
			t.Errorf("jobs %d: %d blocks alive at once, want ≤ %d", jobs, p, ordered.Slots(jobs))
		}
	}
}

func TestErrors(t *testing.T) {
	boom := errors.New("boom")
	size := func(int64) int { return 8 }
	ok := func(int64, []byte) error { return nil }
	if err := ordered.Run(context.Background(), 100, 3, size, func(i int64, _ []byte) error {
		if i == 37 {
			return boom
		}
		return nil
	}, ok); !errors.Is(err, boom) {
		t.Errorf("fill error: %v", err)
	}
	var emitted int64
	if err := ordered.Run(context.Background(), 100, 3, size, ok, func(i int64, _ []byte) error {
		emitted++
		if i == 10 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) || emitted != 11 {
		t.Errorf("emit error: %v after %d", err, emitted)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := ordered.Run(ctx, 1<<40, 2, size, ok, func(i int64, _ []byte) error {
		if i == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}
