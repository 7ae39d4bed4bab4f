package rans

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestHistogram checks that a histogram, whole or merged from parts,
// gives the table, size estimate and code length the symbols themselves
// give.
func TestHistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() int32
	}{
		{"laplace", func() int32 { return int32(math.Round(r.ExpFloat64() * 3 * float64(1-2*r.IntN(2)))) }},
		{"wide", func() int32 { return int32(r.NormFloat64() * 3000) }},
		{"outliers", func() int32 {
			if r.IntN(500) == 0 {
				return int32(r.Uint32())
			}
			return int32(r.IntN(7) - 3)
		}},
		{"constant", func() int32 { return 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := make([]int32, 20000)
			for i := range s {
				s[i] = tc.gen()
			}
			whole := NewHistogram(s)
			merged := MergeHistograms(NewHistogram(s[:7000]), NewHistogram(nil), NewHistogram(s[7000:7001]), NewHistogram(s[7001:]))
			if merged.Total() != uint64(len(s)) {
				t.Fatalf("merged total %d, want %d", merged.Total(), len(s))
			}
			want, err := BuildCompact(s, MinPrecision, 14)
			if err != nil {
				t.Fatal(err)
			}
			for name, h := range map[string]*Histogram{"whole": whole, "merged": merged} {
				got, err := h.BuildCompact(MinPrecision, 14)
				if err != nil {
					t.Fatal(err)
				}
				if !got.Equal(want) {
					t.Errorf("%s: BuildCompact differs from the sample's", name)
				}
				es, err := EstimateSize(s, []*Table{want})
				if err != nil {
					t.Fatal(err)
				}
				if g := h.EstimateSize(want); g != es {
					t.Errorf("%s: EstimateSize %d, sample's %d", name, g, es)
				}
				b, err := Bits(s, []*Table{want})
				if err != nil {
					t.Fatal(err)
				}
				if g := h.Bits(want); math.Abs(g-b) > 1e-9*b {
					t.Errorf("%s: Bits %v, sample's %v", name, g, b)
				}
			}
		})
	}
}
