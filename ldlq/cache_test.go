package ldlq

import (
	"slices"
	"sync"
	"testing"
)

// TestFactorizeCache checks that Factorize returns the remembered factor
// for a Hessian of the same contents, even in another buffer, and a new
// one when the contents, the damping or the recency differ.
func TestFactorizeCache(t *testing.T) {
	const n = cachedMin
	h := correlatedHessian(n, 2*n, 0.5, 1)
	f1, err := Factorize(h, n, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	if f2, _ := Factorize(slices.Clone(h), n, DefaultDamp); f2 != f1 {
		t.Error("the same Hessian in a new buffer was factored again")
	}
	if f3, _ := Factorize(h, n, 2*DefaultDamp); f3 == f1 {
		t.Error("another damping returned the remembered factor")
	}
	h2 := slices.Clone(h)
	h2[n*n-1] *= 1.5
	f4, err := Factorize(h2, n, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	if f4 == f1 {
		t.Error("changed contents returned the remembered factor")
	}
	fresh, err := factorize(h2, n, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fresh.m, f4.m) || !slices.Equal(fresh.d, f4.d) {
		t.Error("the remembered factor differs from a fresh one")
	}
	// Two other Hessians since: the first has been forgotten.
	if f5, _ := Factorize(h, n, DefaultDamp); f5 == f1 {
		t.Error("a factor outlived the cache's two entries")
	}
}

// TestFactorizeConcurrent factors one Hessian from several goroutines:
// all get the same factor (run under -race).
func TestFactorizeConcurrent(t *testing.T) {
	const n = cachedMin
	h := correlatedHessian(n, 2*n, 0.3, 2)
	fs := make([]*Factor, 6)
	var wg sync.WaitGroup
	for i := range fs {
		wg.Go(func() {
			f, err := Factorize(h, n, 0.02)
			if err != nil {
				t.Error(err)
			}
			fs[i] = f
		})
	}
	wg.Wait()
	for _, f := range fs[1:] {
		if f != fs[0] {
			t.Fatal("concurrent calls factored one Hessian more than once")
		}
	}
}
