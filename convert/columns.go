package convert

import (
	"math"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/ldlq"
)

// MaxColumnShift bounds how far ColumnSteps moves one column's step from
// its matrix's, in bits (a factor 2^MaxColumnShift): the high-rate model
// behind the factors overrates columns that are nearly free and underrates
// those already fine.
const MaxColumnShift = 2.0

// columnFactors returns the scale factor of every column of a matrix with
// input Hessian h and column mean squares colSq: reverse water-filling of
// the output error. Column j's squared error costs about
// a_j = s_j²·w_j per unit of normalized distortion, where w_j is H_jj of
// the regularized Hessian, or with LDLQ its pivot D_jj (the part of the
// error later columns cannot absorb). With entropy-coded uniform
// quantizers a bit anywhere buys the same 6 dB, so the total is smallest
// when every column's weighted error is equal: normalized step ∝
// 1/√a_j. The factors are normalized to a geometric mean of 1 over the
// live columns, so the matrix's rate at a given step hardly moves, and
// clamped to 2^±MaxColumnShift.
func columnFactors(h *calib.Hessian, colSq []float64, useLDL bool) ([]float32, error) {
	n := h.N
	var w []float64
	if useLDL {
		f, err := ldlq.Factorize(h.Data, n, ldlq.DefaultDamp)
		if err != nil {
			return nil, err
		}
		w = f.Pivots()
	} else {
		var mean float64
		for j := range n {
			mean += h.Data[j*n+j]
		}
		mean /= float64(n)
		w = make([]float64, n)
		for j := range n {
			if mean > 0 {
				w[j] = h.Data[j*n+j]/mean + ldlq.DefaultDamp
			}
		}
	}
	a := make([]float64, n)
	for j := range a {
		a[j] = colSq[j] * w[j]
	}
	return stepFactors(a, MaxColumnShift), nil
}

// stepFactors turns distortion weights a_j (a column's mean square times
// how much the output feels its error) into scale factors: the optimal
// step falls as a_j^(-1/2), so the factor is (a_j/geomean(a))^(-1/2),
// clamped to ±maxShift bits. Weights that are zero or not finite keep
// factor 1 and stay out of the mean.
func stepFactors(a []float64, maxShift float64) []float32 {
	logA := make([]float64, len(a))
	var sum float64
	live := 0
	for j, v := range a {
		if v > 0 && !math.IsInf(v, 0) {
			logA[j] = math.Log2(v)
			sum += logA[j]
			live++
		} else {
			logA[j] = math.NaN()
		}
	}
	out := make([]float32, len(a))
	for j := range out {
		out[j] = 1
		if live == 0 || math.IsNaN(logA[j]) {
			continue
		}
		shift := 0.5 * (logA[j] - sum/float64(live))
		shift = min(max(shift, -maxShift), maxShift)
		out[j] = float32(math.Exp2(-shift))
	}
	return out
}
