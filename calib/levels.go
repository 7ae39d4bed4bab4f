package calib

import (
	"cmp"
	"math"
	"slices"
)

// Thresholds give the fractions of a matrix's input columns promoted to
// each importance level, ranked by the Hessian diagonal: the top L3 of
// the columns get level 3, the next L2 level 2, the next L1 level 1 and
// the rest level 0.
type Thresholds struct {
	L3, L2, L1 float64
}

// DefaultThresholds is the paper's split: the top 0.1 % of columns at
// level 3, the next 1 % at level 2, the next 10 % at level 1.
var DefaultThresholds = Thresholds{L3: 0.001, L2: 0.01, L1: 0.10}

// Levels assigns an importance level 0..3 to each input column from diag,
// the diagonal of its Hessian (the mean square of each input): a column
// whose input is larger causes more output error per unit of weight error.
//
// Columns are ranked by diag, largest first, ties broken by the lower
// index; NaN ranks below every number. The number of columns at level 3 or
// above, at level 2 or above and at level 1 or above are the cumulative
// fractions L3, L3+L2 and L3+L2+L1 of n = len(diag), each rounded to the
// nearest integer with halves rounded up (so a level gains its first
// column once its cumulative share reaches half a column) and clamped to
// [0, n]. Negative or NaN fractions count as zero. For n = 64 the default
// thresholds give 0, 1 and 7 columns (counts 0 at level 3, 1 at level 2,
// 6 at level 1); for n = 4096, 4, 45 and 455.
func Levels(diag []float64, t Thresholds) []uint8 {
	n := len(diag)
	levels := make([]uint8, n)
	if n == 0 {
		return levels
	}
	frac := func(f float64) float64 {
		if !(f > 0) {
			return 0
		}
		return f
	}
	count := func(f float64) int {
		c := math.Floor(f*float64(n) + 0.5)
		if !(c > 0) {
			return 0
		}
		return int(min(c, float64(n)))
	}
	c3 := count(frac(t.L3))
	c2 := count(frac(t.L3) + frac(t.L2))
	c1 := count(frac(t.L3) + frac(t.L2) + frac(t.L1))
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		da, db := diag[a], diag[b]
		switch na, nb := math.IsNaN(da), math.IsNaN(db); {
		case na && nb:
		case na:
			return 1
		case nb:
			return -1
		default:
			if c := cmp.Compare(db, da); c != 0 {
				return c
			}
		}
		return cmp.Compare(a, b)
	})
	for rank, col := range order {
		switch {
		case rank < c3:
			levels[col] = 3
		case rank < c2:
			levels[col] = 2
		case rank < c1:
			levels[col] = 1
		}
	}
	return levels
}
