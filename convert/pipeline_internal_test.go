package convert

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunOrdered: results arrive in order whatever the workers' timing,
// plan(k) runs only once everything below k − lag has been emitted, and
// the first error stops the run.
func TestRunOrdered(t *testing.T) {
	const n, lag = 200, 4
	for _, jobs := range []int{1, 2, 7} {
		var emitted atomic.Int64
		var got []int
		err := runOrdered(context.Background(), n, jobs, lag, nil, 0,
			func(k int) error {
				if e := int(emitted.Load()); e < k-lag {
					t.Errorf("jobs %d: plan(%d) with only %d emitted", jobs, k, e)
				}
				return nil
			},
			func(k int) (int, error) {
				s := 0
				for i := range (k * 7919) % 50000 { // uneven work
					s += i
				}
				_ = s
				return k * k, nil
			},
			func(k, v int) error {
				if v != k*k {
					t.Errorf("emit(%d, %d)", k, v)
				}
				got = append(got, k)
				emitted.Store(int64(k + 1))
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		if !slices.Equal(got, want) {
			t.Errorf("jobs %d: emitted %v", jobs, got)
		}
	}
	boom := errors.New("boom")
	for _, where := range []string{"plan", "work", "emit"} {
		fail := func(w string, k int) error {
			if w == where && k == 17 {
				return boom
			}
			return nil
		}
		var last int
		err := runOrdered(context.Background(), n, 3, -1, nil, 0,
			func(k int) error { return fail("plan", k) },
			func(k int) (int, error) { return k, fail("work", k) },
			func(k, _ int) error { last = k; return fail("emit", k) })
		if !errors.Is(err, boom) {
			t.Errorf("%s error: got %v", where, err)
		}
		if last > 17 {
			t.Errorf("%s error at 17: emitted up to %d", where, last)
		}
	}
}

// TestRunOrderedBudget: the indices being worked on never cost more than
// the budget together, unless one alone does, and every index still runs
// in order.
func TestRunOrderedBudget(t *testing.T) {
	const n, budget = 60, 10
	cost := func(k int) int64 { return int64(1 + (k*7)%12) } // some above the budget
	var (
		mu        sync.Mutex
		busy, top int64
		got       []int
	)
	err := runOrdered(context.Background(), n, 4, -1, cost, budget, nil,
		func(k int) (int, error) {
			mu.Lock()
			busy += cost(k)
			if busy > budget && busy != cost(k) {
				t.Errorf("index %d: %d in work at once, budget %d", k, busy, budget)
			}
			top = max(top, busy)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			busy -= cost(k)
			mu.Unlock()
			return k, nil
		},
		func(k, v int) error { got = append(got, v); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("result %d is %d", i, v)
		}
	}
	if top < 2 {
		t.Errorf("never more than %d in work: the budget serialized everything", top)
	}
}
