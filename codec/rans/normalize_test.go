package rans

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkNormalized verifies the invariants every Normalize result must hold.
func checkNormalized(t *testing.T, counts []uint64, escCount uint64, prec uint, f []uint32, esc uint32) {
	t.Helper()
	sum := uint64(esc)
	for i, x := range f {
		sum += uint64(x)
		if (counts[i] == 0) != (x == 0) && len(counts) < 1<<prec {
			t.Errorf("count %d got frequency %d", counts[i], x)
		}
	}
	if sum != 1<<prec {
		t.Errorf("sum = %d, want %d", sum, 1<<prec)
	}
	if esc == 0 {
		t.Error("escape frequency 0")
	}
	if _, err := NewTable(0, f, esc, prec); err != nil {
		t.Errorf("NewTable rejects result: %v", err)
	}
}

// bestGain returns the index whose next unit saves the most, c/(2f+1).
func bestGain(c, f []uint64) int {
	best := -1
	for i, x := range c {
		if x != 0 && (best < 0 || ratioLess(c[best], 2*f[best]+1, x, 2*f[i]+1)) {
			best = i
		}
	}
	return best
}

// leastLoss returns the index other than skip whose last unit costs the
// least, c/(2f-1), among those with f > 1, or -1 if there is none.
func leastLoss(c, f []uint64, skip int) int {
	best := -1
	for i, x := range c {
		if f[i] > 1 && i != skip && (best < 0 || ratioLess(x, 2*f[i]-1, c[best], 2*f[best]-1)) {
			best = i
		}
	}
	return best
}

// surrogateOptimal reports whether no single-unit move improves the
// objective Normalize optimizes.
func surrogateOptimal(counts []uint64, escCount uint64, f []uint32, esc uint32) bool {
	c := append(slices.Clone(counts), escCount)
	ff := make([]uint64, len(c))
	for i := range f {
		ff[i] = uint64(f[i])
	}
	ff[len(f)] = uint64(esc)
	i := bestGain(c, ff)
	j := leastLoss(c, ff, i)
	return j < 0 || !ratioLess(c[j], 2*ff[j]-1, c[i], 2*ff[i]+1)
}

func TestNormalize(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	geometric := func(n int, q float64) []uint64 {
		c := make([]uint64, n)
		for i := range c {
			c[i] = uint64(1e6 * math.Pow(q, float64(i)))
		}
		return c
	}
	randomCounts := func(n int) []uint64 {
		c := make([]uint64, n)
		for i := range c {
			if r.IntN(3) > 0 {
				c[i] = uint64(r.IntN(1 << uint(r.IntN(20))))
			}
		}
		c[0]++
		return c
	}
	tests := []struct {
		name   string
		counts []uint64
		esc    uint64
		prec   uint
	}{
		{"single", []uint64{5}, 0, 10},
		{"single-with-escapes", []uint64{5}, 5, 10},
		{"uniform", slices.Repeat([]uint64{7}, 16), 0, 14},
		{"skewed", []uint64{1 << 40, 1, 1, 1}, 1, 12},
		{"huge-counts", []uint64{math.MaxUint64 / 4, math.MaxUint64 / 4, 3}, math.MaxUint64 / 4, 16},
		{"geometric", geometric(200, 0.9), 10, 14},
		{"zeros-inside", []uint64{10, 0, 0, 30, 0, 5}, 0, 10},
		{"random-small", randomCounts(50), 3, 12},
		{"random-wide", randomCounts(MaxSymbols), 100, 16},
		{"more-symbols-than-slots", slices.Repeat([]uint64{1}, 2000), 0, 10},
		{"rarest-demoted", append(slices.Repeat([]uint64{1000}, 1000), slices.Repeat([]uint64{1}, 100)...), 0, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, esc, err := Normalize(tt.counts, tt.esc, tt.prec)
			if err != nil {
				t.Fatal(err)
			}
			checkNormalized(t, tt.counts, tt.esc, tt.prec, f, esc)
			if !surrogateOptimal(tt.counts, tt.esc, f, esc) && len(tt.counts) < 1<<tt.prec {
				t.Error("an exchange of one unit would improve the result")
			}
			f2, esc2, _ := Normalize(tt.counts, tt.esc, tt.prec)
			if !slices.Equal(f, f2) || esc != esc2 {
				t.Error("not deterministic")
			}
		})
	}
}

func TestNormalizeDemotion(t *testing.T) {
	// 1100 nonzero counts cannot all fit 1024 slots with the escape: the
	// 77 rarest, which are the trailing ones, must be escaped.
	counts := append(slices.Repeat([]uint64{1000}, 1000), slices.Repeat([]uint64{1}, 100)...)
	f, esc, err := Normalize(counts, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	nz := 0
	for _, x := range f {
		if x != 0 {
			nz++
		}
	}
	if nz != 1023 || esc != 1 {
		t.Errorf("nonzero = %d, escape = %d; want 1023, 1", nz, esc)
	}
	if f[1099] != 0 || f[1022] == 0 {
		t.Errorf("demoted the wrong values: f[1022] = %d, f[1099] = %d", f[1022], f[1099])
	}
}

// exactGreedy returns the frequencies minimizing the true coded size
// sum(c * -log2(f)), by adding one unit at a time where it saves the most
// (optimal for this separable concave objective), in floating point.
func exactGreedy(counts []uint64, prec uint) []float64 {
	g := make([]float64, len(counts))
	used := 1 // the escape
	for i, c := range counts {
		if c > 0 {
			g[i] = 1
			used++
		}
	}
	for ; used < 1<<prec; used++ {
		best, bestGain := -1, 0.0
		for i, c := range counts {
			if c == 0 {
				continue
			}
			if gain := float64(c) * math.Log2((g[i]+1)/g[i]); gain > bestGain {
				best, bestGain = i, gain
			}
		}
		g[best]++
	}
	return g
}

// TestNormalizeCost checks that the integer-only normalization costs the
// same as the true optimum and little more than the entropy of the counts.
func TestNormalizeCost(t *testing.T) {
	const prec = 12
	for _, sigma := range []float64{0.3, 2, 10, 60} {
		counts := make([]uint64, 801)
		var total float64
		for i := range counts {
			x := float64(i-400) / sigma
			counts[i] = uint64(1e9 * math.Exp(-x*x/2))
			total += float64(counts[i])
		}
		f, _, err := Normalize(counts, 0, prec)
		if err != nil {
			t.Fatal(err)
		}
		g := exactGreedy(counts, prec)
		var h, cost, best float64
		for i, c := range counts {
			if c == 0 {
				continue
			}
			p := float64(c) / total
			h -= p * math.Log2(p)
			cost -= p * math.Log2(float64(f[i])/(1<<prec))
			best -= p * math.Log2(g[i]/(1<<prec))
		}
		t.Logf("sigma %v: entropy %.5f, optimum %.5f, Normalize %.5f bits", sigma, h, best, cost)
		if cost > best*(1+1e-5) || cost < h {
			t.Errorf("sigma %v: Normalize costs %.6f bits, optimum %.6f, entropy %.6f", sigma, cost, best, h)
		}
		if sigma <= 2 && cost > h*1.003+0.001 {
			t.Errorf("sigma %v: Normalize costs %.6f bits, entropy %.6f", sigma, cost, h)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	tests := []struct {
		name   string
		counts []uint64
		esc    uint64
		prec   uint
	}{
		{"precision-low", []uint64{1}, 0, 9},
		{"precision-high", []uint64{1}, 0, 17},
		{"empty", nil, 0, 12},
		{"too-many", make([]uint64, MaxSymbols+1), 0, 12},
		{"all-zero", []uint64{0, 0}, 10, 12},
		{"overflow", []uint64{math.MaxUint64, 1}, 0, 12},
		{"overflow-early", []uint64{math.MaxUint64, 1, 1}, 0, 12},
		{"overflow-escape", []uint64{math.MaxUint64}, 1, 12},
	}
	for _, tt := range tests {
		if _, _, err := Normalize(tt.counts, tt.esc, tt.prec); !errors.Is(err, ErrTable) {
			t.Errorf("%s: err = %v, want ErrTable", tt.name, err)
		}
	}
}

func TestNewTableErrors(t *testing.T) {
	tests := []struct {
		name  string
		min   int32
		freqs []uint32
		esc   uint32
		prec  uint
	}{
		{"precision", 0, []uint32{1023}, 1, 9},
		{"empty", 0, nil, 1024, 10},
		{"too-many", 0, make([]uint32, MaxSymbols+1), 1024, 10},
		{"range-overflow", math.MaxInt32, []uint32{1000, 23}, 1, 10},
		{"zero-escape", 0, []uint32{1024}, 0, 10},
		{"sum-low", 0, []uint32{1000}, 1, 10},
		{"sum-high", 0, []uint32{1024}, 1, 10},
		{"only-escape", 0, []uint32{0, 0}, 1024, 10},
		{"wrapping-sum", 0, []uint32{math.MaxUint32, 1025}, 1, 10},
	}
	for _, tt := range tests {
		if _, err := NewTable(tt.min, tt.freqs, tt.esc, tt.prec); !errors.Is(err, ErrTable) {
			t.Errorf("%s: err = %v, want ErrTable", tt.name, err)
		}
	}
	if _, err := NewTable(math.MaxInt32, []uint32{1023}, 1, 10); err != nil {
		t.Errorf("table ending at MaxInt32: %v", err)
	}
}

func TestBuild(t *testing.T) {
	wide := gaussSyms(10000, 3, 8)
	wide[17] = math.MaxInt32 // forces the sorting histogram
	wide[99] = math.MinInt32
	tests := []struct {
		name      string
		sample    []int32
		wantMin   int32
		wantLen   int
		wantNoEsc bool // every sample value is coded directly
	}{
		{"constant", []int32{7, 7, 7}, 7, 1, true},
		{"two-values", []int32{-5, 5, 5}, -5, 11, true},
		{"outliers-trimmed", append(slices.Repeat([]int32{0, 1, 2}, 10000), -1000, 1000), 0, 3, false},
		{"wide-span", wide, slices.Min(wide[100:]), 0, false},
		{"window-limit", []int32{0, 0, 0, 5000, 5000, 5001, 5001}, 5000, 2, false},
		{"extremes", []int32{math.MaxInt32, math.MaxInt32 - 1}, math.MaxInt32 - 1, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Build(tt.sample, 12)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantLen != 0 && (tab.Min() != tt.wantMin || tab.Len() != tt.wantLen) {
				t.Errorf("range [%d, +%d), want [%d, +%d)", tab.Min(), tab.Len(), tt.wantMin, tt.wantLen)
			}
			if tt.wantNoEsc {
				for _, v := range tt.sample {
					if tab.Freq(v) == 0 {
						t.Errorf("value %d escaped", v)
					}
				}
			}
			roundTrip(t, tt.sample, []*Table{tab})
		})
	}
	if _, err := Build(nil, 12); !errors.Is(err, ErrTable) {
		t.Errorf("Build(nil) = %v", err)
	}
	if _, err := Build([]int32{1}, 20); !errors.Is(err, ErrTable) {
		t.Errorf("Build with precision 20 = %v", err)
	}
}
