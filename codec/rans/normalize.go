package rans

import (
	"cmp"
	"math/bits"
	"slices"
	"strconv"
)

// Normalize converts histogram counts into table frequencies summing to
// 1<<precision: counts[i] is the number of occurrences of the i-th in-range
// value and escapeCount the number of values to be escaped.
//
// Every nonzero count gets a frequency of at least 1, zero counts get 0 (such
// values, should they occur, are escaped) and the escape frequency is at least
// 1. Among such assignments Normalize minimizes the coded size
// sum(counts[i] * -log2(freqs[i])), approximating each unit's marginal saving
// c*log2((f+1)/f) by the exact rational 2c/(2f+1) so the search uses integer
// arithmetic only and is deterministic. If more values have nonzero counts
// than 1<<precision slots allow, the rarest are escaped.
//
// The result can be passed to [NewTable].
func Normalize(counts []uint64, escapeCount uint64, precision uint) (freqs []uint32, escape uint32, err error) {
	if precision < MinPrecision || precision > MaxPrecision {
		return nil, 0, tableErr(-1, "precision "+strconv.FormatUint(uint64(precision), 10)+" out of range")
	}
	n := len(counts)
	if n == 0 || n > MaxSymbols {
		return nil, 0, tableErr(-1, "symbol count "+strconv.Itoa(n)+" out of range")
	}
	// c[n] is the escape; a working copy because rare values may be demoted.
	c := make([]uint64, n+1)
	copy(c, counts)
	c[n] = escapeCount
	var total, carry, overflow uint64
	nonzero := 0
	for _, x := range counts {
		total, carry = bits.Add64(total, x, 0)
		overflow |= carry
		if x != 0 {
			nonzero++
		}
	}
	if total == 0 && overflow == 0 {
		return nil, 0, tableErr(-1, "all in-range counts are zero")
	}
	total, carry = bits.Add64(total, escapeCount, 0)
	if overflow|carry != 0 {
		return nil, 0, tableErr(-1, "counts overflow uint64")
	}
	m := uint64(1) << precision
	if uint64(nonzero)+1 > m {
		demoteRarest(c, nonzero+1-int(m))
		nonzero = int(m) - 1
	}

	f := startFreqs(c, total, m, nonzero+1)
	var sum uint64
	for _, x := range f {
		sum += x
	}
	// Greedy completion: with every frequency at or below an optimum, adding
	// the unit with the largest saving until the total is reached is
	// optimal for this separable concave objective.
	h := gainHeap{c: c, f: f}
	for i, x := range c {
		if x != 0 {
			h.idx = append(h.idx, i)
		}
	}
	h.init()
	for ; sum < m; sum++ {
		f[h.idx[0]]++
		h.down(0)
	}

	freqs = make([]uint32, n)
	for i := range freqs {
		freqs[i] = uint32(f[i])
	}
	return freqs, uint32(f[n]), nil
}

// demoteRarest moves the k smallest nonzero in-range counts of c into the
// escape count c[len(c)-1], breaking ties by higher index for determinism.
func demoteRarest(c []uint64, k int) {
	n := len(c) - 1
	idx := make([]int, 0, n)
	for i, x := range c[:n] {
		if x != 0 {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		if r := cmp.Compare(c[a], c[b]); r != 0 {
			return r
		}
		return cmp.Compare(b, a)
	})
	for _, i := range idx[:k] {
		c[n] += c[i] // cannot overflow: the sum of all counts fits
		c[i] = 0
	}
}

// startFreqs returns per-symbol lower bounds of an optimal assignment of m
// units to the k symbols with nonzero count in c (the escape, last, always
// counts) summing to total.
//
// Let λ be the saving of the last unit the optimum takes. A symbol holding
// f > 1 units took its last unit at saving c/(2f-1) >= λ, so f <= (c/λ+1)/2,
// and summing gives m <= k + (total/λ + k)/2, that is λ <= total/(2m-3k).
// Units left out save c/(2f+1) <= λ, so f >= (c/λ-1)/2 >= (c*(2m-3k)/total-1)/2.
// The bounds undershoot the optimum by about 2k units in all.
func startFreqs(c []uint64, total, m uint64, k int) []uint64 {
	f := make([]uint64, len(c))
	n := len(c) - 1
	d := int64(2*m) - 3*int64(k)
	for i, x := range c {
		if x == 0 && i < n {
			continue
		}
		f[i] = 1
		if d <= 0 {
			continue
		}
		hi, lo := bits.Mul64(x, uint64(d))
		q, _ := bits.Div64(hi, lo, total) // hi < total because x <= total and d < 1<<64
		if q >= 3 {
			f[i] = (q - 1) / 2
		}
	}
	return f
}

// gainHeap is a binary heap of symbol indices ordered by the saving of
// their next unit, c/(2f+1), largest first and lowest index first among
// equals. Only the top's frequency ever changes, so sifting down suffices.
type gainHeap struct {
	c, f []uint64
	idx  []int
}

// before reports whether symbol a's next unit is taken before symbol b's.
func (h *gainHeap) before(a, b int) bool {
	ga, gb := 2*h.f[a]+1, 2*h.f[b]+1
	if ratioLess(h.c[b], gb, h.c[a], ga) {
		return true
	}
	return a < b && !ratioLess(h.c[a], ga, h.c[b], gb)
}

func (h *gainHeap) init() {
	for i := len(h.idx)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *gainHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h.idx) {
			return
		}
		best := l
		if r := l + 1; r < len(h.idx) && h.before(h.idx[r], h.idx[l]) {
			best = r
		}
		if !h.before(h.idx[best], h.idx[i]) {
			return
		}
		h.idx[i], h.idx[best] = h.idx[best], h.idx[i]
		i = best
	}
}

// ratioLess reports whether a/b < c/d for b, d > 0, exactly.
func ratioLess(a, b, c, d uint64) bool {
	h1, l1 := bits.Mul64(a, d)
	h2, l2 := bits.Mul64(c, b)
	return h1 < h2 || h1 == h2 && l1 < l2
}

// maxBuildSpan bounds the dense histogram Build allocates; wider samples are
// histogrammed by sorting a copy instead.
const maxBuildSpan = 1 << 18

// Build returns a table at the given precision fitted to sample. It chooses
// the range [Min, Min+Len) of at most MaxSymbols values that covers the most
// samples, then trims from its ends values rarer than 1 in 1<<precision,
// which are cheaper to escape than to reserve a frequency for. Build is
// deterministic.
func Build(sample []int32, precision uint) (*Table, error) {
	if precision < MinPrecision || precision > MaxPrecision {
		return nil, tableErr(-1, "precision "+strconv.FormatUint(uint64(precision), 10)+" out of range")
	}
	if len(sample) == 0 {
		return nil, tableErr(-1, "empty sample")
	}
	return buildHist(NewHistogram(sample), precision)
}

// buildHist is Build from the sample's histogram.
func buildHist(h *Histogram, precision uint) (*Table, error) {
	if precision < MinPrecision || precision > MaxPrecision {
		return nil, tableErr(-1, "precision "+strconv.FormatUint(uint64(precision), 10)+" out of range")
	}
	if h.total == 0 {
		return nil, tableErr(-1, "empty sample")
	}
	vals, cnts, total := h.vals, h.cnts, h.total

	// Widest-coverage window of at most MaxSymbols consecutive values, by
	// two pointers over the distinct values; the first maximum wins.
	var bestA, bestB int // window is vals[bestA:bestB]
	var bestSum, sum uint64
	b := 0
	for a := range vals {
		for b < len(vals) && int64(vals[b])-int64(vals[a]) < MaxSymbols {
			sum += cnts[b]
			b++
		}
		if sum > bestSum {
			bestA, bestB, bestSum = a, b, sum
		}
		sum -= cnts[a]
	}
	m := uint64(1) << precision
	rare := func(c uint64) bool {
		hi, lo := bits.Mul64(c, m)
		return hi == 0 && lo < total
	}
	for bestB-bestA > 1 && rare(cnts[bestA]) {
		bestSum -= cnts[bestA]
		bestA++
	}
	for bestB-bestA > 1 && rare(cnts[bestB-1]) {
		bestSum -= cnts[bestB-1]
		bestB--
	}

	lo := vals[bestA]
	counts := make([]uint64, int(vals[bestB-1]-lo)+1)
	for i := bestA; i < bestB; i++ {
		counts[vals[i]-lo] = cnts[i]
	}
	freqs, esc, err := Normalize(counts, total-bestSum, precision)
	if err != nil {
		return nil, err
	}
	return newTable(lo, freqs, esc, precision), nil
}

// histogram returns the distinct values of sample in increasing order with
// their counts.
func histogram(sample []int32) ([]int32, []uint64) {
	lo, hi := slices.Min(sample), slices.Max(sample)
	var vals []int32
	var cnts []uint64
	if int64(hi)-int64(lo) < maxBuildSpan {
		dense := make([]uint64, int(hi-lo)+1)
		for _, v := range sample {
			dense[v-lo]++
		}
		for i, c := range dense {
			if c != 0 {
				vals = append(vals, lo+int32(i))
				cnts = append(cnts, c)
			}
		}
		return vals, cnts
	}
	s := slices.Clone(sample)
	slices.Sort(s)
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[i] {
			j++
		}
		vals = append(vals, s[i])
		cnts = append(cnts, uint64(j-i))
		i = j
	}
	return vals, cnts
}
