package calib

import (
	"math"
	"slices"
	"testing"
)

func countLevels(l []uint8) [4]int {
	var c [4]int
	for _, v := range l {
		c[v]++
	}
	return c
}

func TestLevelsCounts(t *testing.T) {
	for _, tc := range []struct {
		n    int
		t    Thresholds
		want [4]int // columns at levels 0, 1, 2, 3
	}{
		{0, DefaultThresholds, [4]int{}},
		{1, DefaultThresholds, [4]int{1, 0, 0, 0}},
		{4, DefaultThresholds, [4]int{4, 0, 0, 0}},   // 0.444 columns at level ≥ 1 rounds to none
		{5, DefaultThresholds, [4]int{4, 1, 0, 0}},   // 0.555 rounds to one
		{64, DefaultThresholds, [4]int{57, 6, 1, 0}}, // cumulative 0.064, 0.704, 7.104
		{172, DefaultThresholds, [4]int{153, 17, 2, 0}},
		{500, DefaultThresholds, [4]int{444, 50, 5, 1}}, // 0.5 rounds up
		{4096, DefaultThresholds, [4]int{3641, 410, 41, 4}},
		{10, Thresholds{L3: 0.5, L2: 0.5, L1: 0.5}, [4]int{0, 0, 5, 5}},
		{10, Thresholds{L3: -1, L2: math.NaN(), L1: 0.3}, [4]int{7, 3, 0, 0}},
		{10, Thresholds{}, [4]int{10, 0, 0, 0}},
	} {
		diag := make([]float64, tc.n)
		for i := range diag {
			diag[i] = float64((i * 7919) % (tc.n + 1))
		}
		if got := countLevels(Levels(diag, tc.t)); got != tc.want {
			t.Errorf("n=%d %+v: levels 0..3 hold %v, want %v", tc.n, tc.t, got, tc.want)
		}
	}
}

func TestLevelsRanking(t *testing.T) {
	th := Thresholds{L3: 0.1, L2: 0.2, L1: 0.3}
	for _, tc := range []struct {
		name string
		diag []float64
		want []uint8
	}{
		{"by size", []float64{1, 10, 3, 9, 2, 8, 4, 7, 5, 6}, []uint8{0, 3, 0, 2, 0, 2, 0, 1, 1, 1}},
		// Ties go to the lower index.
		{"ties", []float64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, []uint8{3, 2, 2, 1, 1, 1, 0, 0, 0, 0}},
		// NaN ranks below every number, even −Inf.
		{"NaN", []float64{math.NaN(), math.Inf(-1), 0, 0, 0, 0, 0, 0, 0, 1}, []uint8{0, 0, 2, 2, 1, 1, 1, 0, 0, 3}},
	} {
		if got := Levels(tc.diag, th); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Levels = %v, want %v", tc.name, got, tc.want)
		}
	}
}
