package rans

import "slices"

// A Histogram is the distinct values of a sample of symbols with their
// counts: enough to build its tables ([Histogram.BuildCompact]) and to
// estimate its coded size and ideal code length under any table without
// passing over the symbols again. Histograms of parts of a sample merge
// ([MergeHistograms]) into the histogram of the whole, so that encoders
// can count in parallel. A Histogram is immutable.
type Histogram struct {
	vals  []int32 // distinct, increasing
	cnts  []uint64
	total uint64
}

// NewHistogram returns the histogram of sample.
func NewHistogram(sample []int32) *Histogram {
	if len(sample) == 0 {
		return &Histogram{}
	}
	v, c := histogram(sample)
	return &Histogram{vals: v, cnts: c, total: uint64(len(sample))}
}

// Total returns the number of symbols counted.
func (h *Histogram) Total() uint64 { return h.total }

// MergeHistograms returns the histogram of the concatenation of the
// samples hs count (in any order: counts do not depend on it).
func MergeHistograms(hs ...*Histogram) *Histogram {
	var out Histogram
	for _, h := range hs {
		if h.total == 0 {
			continue
		}
		if out.total == 0 {
			out = Histogram{slices.Clone(h.vals), slices.Clone(h.cnts), h.total}
			continue
		}
		vals := make([]int32, 0, len(out.vals)+len(h.vals))
		cnts := make([]uint64, 0, cap(vals))
		i, j := 0, 0
		for i < len(out.vals) || j < len(h.vals) {
			switch {
			case j == len(h.vals) || i < len(out.vals) && out.vals[i] < h.vals[j]:
				vals, cnts = append(vals, out.vals[i]), append(cnts, out.cnts[i])
				i++
			case i == len(out.vals) || h.vals[j] < out.vals[i]:
				vals, cnts = append(vals, h.vals[j]), append(cnts, h.cnts[j])
				j++
			default:
				vals, cnts = append(vals, h.vals[j]), append(cnts, out.cnts[i]+h.cnts[j])
				i++
				j++
			}
		}
		out = Histogram{vals, cnts, out.total + h.total}
	}
	return &out
}

// EstimateSize returns [EstimateSize] of the counted sample coded with t
// alone: exactly the same number, as it sums integers.
func (h *Histogram) EstimateSize(t *Table) int {
	if h.total == 0 {
		return 0
	}
	var fixed uint64 // in 1/costOne bits
	escBytes := 0
	loss := uint64(coderLoss >> (2 * (MaxPrecision - t.precision)))
	for n, v := range h.vals {
		c := h.cnts[n]
		i := t.index(v)
		fixed += c * (uint64(t.cost[i]) + loss)
		if t.enc[i].esc {
			escBytes += int(c) * zigzagLen(v)
		}
	}
	body := int((fixed + 8*costOne - 1) / (8 * costOne))
	lanes := int(min(h.total, 4))
	return uvarintLen(uint64(escBytes)) + escBytes + body + 3*lanes
}

// Bits returns the ideal code length in bits of the counted sample coded
// with t alone: [Bits] up to the rounding of a sum taken in another order.
func (h *Histogram) Bits(t *Table) float64 {
	var sum float64
	for n, v := range h.vals {
		i := t.index(v)
		f := t.freq[i]
		b := 0.0
		if t.enc[i].esc {
			f = t.freq[len(t.freq)-1]
			b = float64(8 * zigzagLen(v))
		}
		sum += float64(h.cnts[n]) * (t.bitsOf(f) + b)
	}
	return sum
}
