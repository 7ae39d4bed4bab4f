package rans

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// gaussSyms returns n samples of a rounded Gaussian with the given sigma,
// whose entropy is about log2(sigma*sqrt(2*pi*e)) bits for sigma >= 1.
func gaussSyms(n int, sigma float64, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(math.Round(r.NormFloat64() * sigma))
	}
	return s
}

// sigmaFor returns the Gaussian sigma giving about h bits of entropy.
func sigmaFor(h float64) float64 { return math.Exp2(h) / math.Sqrt(2*math.Pi*math.E) }

// empiricalBits returns the order-0 empirical entropy of s in bits.
func empiricalBits(s []int32) float64 {
	counts := map[int32]int{}
	for _, v := range s {
		counts[v]++
	}
	var h float64
	for _, c := range counts {
		h -= float64(c) * math.Log2(float64(c)/float64(len(s)))
	}
	return h
}

// randomTable returns a valid table with random frequencies, some zero.
func randomTable(t testing.TB, r *rand.Rand, min int32, n int, prec uint) *Table {
	t.Helper()
	counts := make([]uint64, n)
	for i := range counts {
		if r.IntN(4) != 0 {
			counts[i] = uint64(r.IntN(1000))
		}
	}
	counts[r.IntN(n)] = 1 + uint64(r.IntN(1000))
	f, esc, err := Normalize(counts, uint64(r.IntN(50)), prec)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTable(min, f, esc, prec)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func roundTrip(t *testing.T, syms []int32, tables []*Table) []byte {
	t.Helper()
	enc, err := Encode(nil, syms, tables)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	enc2, err := Encode([]byte("prefix"), syms, tables)
	if err != nil || string(enc2[:6]) != "prefix" || !slices.Equal(enc2[6:], enc) {
		t.Fatalf("Encode with prefix differs (err %v)", err)
	}
	got := make([]int32, len(syms))
	if err := Decode(enc, tables, got); err != nil {
		t.Fatalf("Decode of %d symbols (%d bytes): %v", len(syms), len(enc), err)
	}
	if !slices.Equal(got, syms) {
		for i := range got {
			if got[i] != syms[i] {
				t.Fatalf("symbol %d: got %d, want %d", i, got[i], syms[i])
			}
		}
	}
	return enc
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 100, 1001, 20000}
	type gen func(n int) []int32
	inRange := func(tabs []*Table) gen {
		return func(n int) []int32 {
			s := make([]int32, n)
			for i := range s {
				tab := tabs[i%len(tabs)]
				for {
					v := tab.Min() + int32(r.IntN(tab.Len()))
					if tab.Freq(v) != 0 {
						s[i] = v
						break
					}
				}
			}
			return s
		}
	}
	mixed := func(tabs []*Table, escapeRate int) gen {
		return func(n int) []int32 {
			s := inRange(tabs)(n)
			for i := range s {
				if r.IntN(escapeRate) == 0 {
					s[i] = int32(r.Uint32())
				}
			}
			return s
		}
	}
	t10 := randomTable(t, r, -20, 41, 10)
	t14 := randomTable(t, r, 0, 300, 14)
	t16 := randomTable(t, r, -1000, 4096, 16)
	top := randomTable(t, r, math.MaxInt32-9, 10, 12)
	bottom := randomTable(t, r, math.MinInt32, 10, 12)
	var sixteen []*Table
	for c := range 16 {
		sixteen = append(sixteen, randomTable(t, r, int32(c*10-50), 5+c*7, uint(10+c%7)))
	}
	extremes := func(n int) []int32 {
		vals := []int32{math.MinInt32, math.MaxInt32, math.MinInt32 + 1, math.MaxInt32 - 1, 0, -1, 1}
		s := make([]int32, n)
		for i := range s {
			s[i] = vals[r.IntN(len(vals))]
		}
		return s
	}
	tests := []struct {
		name   string
		tables []*Table
		gen    gen
	}{
		{"p10", []*Table{t10}, inRange([]*Table{t10})},
		{"p14", []*Table{t14}, inRange([]*Table{t14})},
		{"p16-wide", []*Table{t16}, inRange([]*Table{t16})},
		{"escapes-rare", []*Table{t14}, mixed([]*Table{t14}, 50)},
		{"escapes-heavy", []*Table{t10}, mixed([]*Table{t10}, 2)},
		{"escapes-only", []*Table{t14}, mixed([]*Table{t14}, 1)},
		{"int32-extremes", []*Table{t14}, extremes},
		{"range-at-max", []*Table{top}, mixed([]*Table{top}, 3)},
		{"range-at-min", []*Table{bottom}, mixed([]*Table{bottom}, 3)},
		{"extremes-at-max", []*Table{top}, extremes},
		{"two-tables", []*Table{t10, t14}, mixed([]*Table{t10, t14}, 20)},
		{"three-tables", []*Table{t16, t10, top}, mixed([]*Table{t16, t10, top}, 20)},
		{"sixteen-tables", sixteen, mixed(sixteen, 30)},
		{"repeated-table", []*Table{t14, t14, t14, t14, t14}, inRange([]*Table{t14})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range sizes {
				enc := roundTrip(t, tt.gen(n), tt.tables)
				if n == 0 && len(enc) != 0 {
					t.Errorf("0 symbols encoded to %d bytes", len(enc))
				}
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	syms := gaussSyms(5000, 3, 7)
	tab, err := Build(syms, 12)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Encode(nil, syms, []*Table{tab})
	// A table rebuilt from its serialization must code identically.
	raw, _ := tab.MarshalBinary()
	tab2, _, err := ParseTable(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Encode(make([]byte, 0, 1), syms, []*Table{tab2})
	if !slices.Equal(a, b) {
		t.Fatal("encodings differ")
	}
}

func TestArgumentErrors(t *testing.T) {
	tab := randomTable(t, rand.New(rand.NewPCG(3, 3)), 0, 4, 10)
	if _, err := Encode(nil, []int32{1}, nil); !errors.Is(err, ErrNoTables) {
		t.Errorf("Encode without tables: %v", err)
	}
	if _, err := Encode(nil, []int32{1}, []*Table{tab, nil}); err == nil {
		t.Error("Encode with nil table succeeded")
	}
	if err := Decode([]byte{0, 1, 2, 3, 4}, nil, make([]int32, 1)); !errors.Is(err, ErrNoTables) {
		t.Errorf("Decode without tables: %v", err)
	}
	if _, err := Bits([]int32{1}, nil); !errors.Is(err, ErrNoTables) {
		t.Errorf("Bits without tables: %v", err)
	}
	if _, err := EstimateSize([]int32{1}, nil); !errors.Is(err, ErrNoTables) {
		t.Errorf("EstimateSize without tables: %v", err)
	}
	// Zero symbols need no table.
	if out, err := Encode(nil, nil, nil); err != nil || len(out) != 0 {
		t.Errorf("Encode(nil) = %v, %v", out, err)
	}
	if err := Decode(nil, nil, nil); err != nil {
		t.Errorf("Decode(nil) = %v", err)
	}
}

// TestCompressionEfficiency checks the coded size against the order-0
// empirical entropy for a table fitted to the data.
func TestCompressionEfficiency(t *testing.T) {
	n := 1 << 20
	if testing.Short() {
		n = 1 << 17
	}
	for _, tc := range []struct {
		h    float64
		prec uint
		tol  float64
	}{
		{4, 14, 0.005},
		{4, 12, 0.005},
		{2, 14, 0.005},
		{6, 14, 0.005},
	} {
		syms := gaussSyms(n, sigmaFor(tc.h), uint64(tc.h*10))
		tab, err := Build(syms, tc.prec)
		if err != nil {
			t.Fatal(err)
		}
		enc := roundTrip(t, syms, []*Table{tab})
		h := empiricalBits(syms) / 8
		ratio := float64(len(enc)) / h
		t.Logf("H=%.3f bits P=%d: %d bytes, entropy %.0f bytes, ratio %.5f", empiricalBits(syms)/float64(n), tc.prec, len(enc), h, ratio)
		if ratio > 1+tc.tol || ratio < 1 {
			t.Errorf("H≈%v P=%d: size/entropy = %.5f, want within [1, %v]", tc.h, tc.prec, ratio, 1+tc.tol)
		}
	}
}

func TestCostAndEstimate(t *testing.T) {
	syms := gaussSyms(200000, 5, 11)
	tab, err := Build(syms[:1000], 14) // fitted to a prefix, so some escapes
	if err != nil {
		t.Fatal(err)
	}
	tabs := []*Table{tab}
	enc := roundTrip(t, syms, tabs)
	bits, err := Bits(syms, tabs)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range syms {
		sum += tab.Cost(v)
	}
	if math.Abs(sum-bits) > 1e-6*bits {
		t.Errorf("Bits = %v, sum of Cost = %v", bits, sum)
	}
	// The coded size exceeds the ideal length only by the flushed states,
	// the escape length prefix
	// and the coder's small loss (see EstimateSize).
	if got, ideal := float64(len(enc)), bits/8; got < ideal || got > ideal*1.0005+20 {
		t.Errorf("encoded %v bytes, ideal %.1f", got, ideal)
	}
	for _, p := range []uint{10, 14, 16} {
		tab, err := Build(syms, p)
		if err != nil {
			t.Fatal(err)
		}
		tabs := []*Table{tab}
		enc, _ := Encode(nil, syms, tabs)
		est, err := EstimateSize(syms, tabs)
		if err != nil {
			t.Fatal(err)
		}
		if d := est - len(enc); d < -8-len(enc)/5000 || d > 8+len(enc)/5000 {
			t.Errorf("P=%d: EstimateSize = %d, actual %d", p, est, len(enc))
		}
	}

	// Escape cost: escape symbol plus side bytes.
	esc := float64(tab.Precision()) - math.Log2(float64(tab.EscapeFreq()))
	for _, v := range []int32{math.MaxInt32, math.MinInt32, 1000, -64, 63} {
		if tab.Freq(v) != 0 {
			continue
		}
		want := esc + float64(8*len(appendZigzag(nil, v)))
		if got := tab.Cost(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("Cost(%d) = %v, want %v", v, got, want)
		}
	}
	if got, want := tab.Cost(0), 14-math.Log2(float64(tab.Freq(0))); got != want {
		t.Errorf("Cost(0) = %v, want %v", got, want)
	}
}

func TestLog2Fixed(t *testing.T) {
	for f := uint32(1); f <= 1<<16; f++ {
		got := float64(log2Fixed(f)) / costOne
		want := math.Log2(float64(f))
		if d := want - got; d < 0 || d > 2.0/costOne {
			t.Fatalf("log2Fixed(%d) = %v, want %v", f, got, want)
		}
	}
}

func TestConcurrentDecode(t *testing.T) {
	syms := gaussSyms(50000, 4, 5)
	tab, err := Build(syms, 14)
	if err != nil {
		t.Fatal(err)
	}
	// Marshal round trip gives a table whose decode table is not built yet,
	// so the goroutines race to build it.
	raw, _ := tab.MarshalBinary()
	fresh, _, err := ParseTable(raw)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(nil, syms, []*Table{fresh})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got := make([]int32, len(syms))
			if err := Decode(enc, []*Table{fresh}, got); err != nil {
				t.Error(err)
			} else if !slices.Equal(got, syms) {
				t.Error("concurrent decode mismatch")
			}
		})
	}
	wg.Wait()
}
