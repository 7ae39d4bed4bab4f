package convert

import (
	"math"
	"regexp"
	"sort"
)

// A Sensitivity says how much one matrix's quantization error costs: the
// expected output error per weight per unit of normalized distortion. For
// a linear layer with input Hessian H and per-column RMS s_j it is
// Σ_j s_j²·H_jj / cols — E‖ΔW X‖² grows by that much per weight when
// every column's error variance is s_j² times the normalized distortion.
type Sensitivity struct {
	Name     string
	Elements uint64
	Value    float64
}

// Allocation bounds: no matrix moves further than this from the mean rate,
// and none goes below MinAllocatedBits.
const (
	MaxBitsShift     = 2.0
	MinAllocatedBits = 1.5
)

// AllocateBits spreads a mean of bits per weight over matrices to minimize
// the total output error Σ n_i·a_i·2^(−2·b_i) (the high-rate model of a
// quantizer whose distortion falls 6 dB per bit) subject to Σ n_i·b_i =
// bits·Σ n_i: b_i = bits + ½·log2(a_i / ā), with ā the element-weighted
// geometric mean, clamped to ±MaxBitsShift and re-centred until the mean
// holds. The result is one override per matrix, for Options.TensorBits.
func AllocateBits(bits float64, sens []Sensitivity) []TensorBits {
	type entry struct {
		s     Sensitivity
		b     float64
		fixed bool
	}
	var es []*entry
	for _, s := range sens {
		if s.Elements > 0 && s.Value > 0 && !math.IsInf(s.Value, 0) {
			es = append(es, &entry{s: s})
		}
	}
	if len(es) == 0 {
		return nil
	}
	sort.Slice(es, func(i, j int) bool { return es[i].s.Name < es[j].s.Name })
	lo, hi := max(bits-MaxBitsShift, MinAllocatedBits), bits+MaxBitsShift
	// Water-filling with bounds: entries that hit a bound are fixed there
	// and the rest share what is left, until none moves out of bounds.
	for iter := 0; iter < len(es)+1; iter++ {
		var n, logSum, fixedBits float64
		for _, e := range es {
			if e.fixed {
				fixedBits += e.b * float64(e.s.Elements)
				continue
			}
			n += float64(e.s.Elements)
			logSum += float64(e.s.Elements) * math.Log2(e.s.Value)
		}
		if n == 0 {
			break
		}
		var total float64
		for _, e := range es {
			total += float64(e.s.Elements)
		}
		mean := (bits*total - fixedBits) / n // bits the free entries share
		geo := logSum / n
		moved := false
		for _, e := range es {
			if e.fixed {
				continue
			}
			e.b = mean + 0.5*(math.Log2(e.s.Value)-geo)
			if e.b < lo || e.b > hi {
				e.b = min(max(e.b, lo), hi)
				e.fixed = true
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	// If every entry hit a bound the mean may be off: shift all alike, so
	// the file's target rate is kept whatever the bounds.
	var total, sum float64
	for _, e := range es {
		total += float64(e.s.Elements)
		sum += e.b * float64(e.s.Elements)
	}
	for _, e := range es {
		e.b += bits - sum/total
	}
	out := make([]TensorBits, len(es))
	for i, e := range es {
		out[i] = TensorBits{Pattern: regexp.MustCompile("^" + regexp.QuoteMeta(e.s.Name) + "$"), Bits: e.b}
	}
	return out
}
