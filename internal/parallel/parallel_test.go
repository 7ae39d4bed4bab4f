package parallel

import (
	"errors"
	"fmt"
	"testing"
)

func TestEachCoversEveryIndexOnce(t *testing.T) {
	for _, jobs := range []int{0, 1, 3, 50} {
		for _, n := range []int{0, 1, 7, 1000} {
			seen := make([]int, n)
			if err := Each(jobs, n, func(i int) error { seen[i]++; return nil }); err != nil {
				t.Fatal(err)
			}
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("jobs %d n %d: index %d run %d times", jobs, n, i, c)
				}
			}
		}
	}
}

func TestEachReturnsLowestError(t *testing.T) {
	bad := errors.New("bad")
	for _, jobs := range []int{1, 3} {
		err := Each(jobs, 100, func(i int) error {
			if i == 40 || i == 41 {
				return fmt.Errorf("part %d: %w", i, bad)
			}
			return nil
		})
		if !errors.Is(err, bad) {
			t.Fatalf("jobs %d: err %v", jobs, err)
		}
		if jobs == 1 && err.Error() != "part 40: bad" {
			t.Fatalf("jobs 1: err %v, want part 40's", err)
		}
	}
}

func TestRangeTiles(t *testing.T) {
	for _, tc := range []struct{ jobs, n, minPart int }{{1, 10, 1}, {3, 10, 1}, {2, 1000, 64}, {4, 5, 100}, {3, 0, 1}} {
		seen := make([]int, tc.n)
		err := Range(tc.jobs, tc.n, tc.minPart, func(lo, hi int) error {
			if hi-lo < min(tc.minPart, tc.n) && hi != tc.n {
				return fmt.Errorf("part [%d, %d) under %d", lo, hi, tc.minPart)
			}
			for i := lo; i < hi; i++ {
				seen[i]++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("%+v: index %d covered %d times", tc, i, c)
			}
		}
	}
}
