package rans

import (
	"fmt"
	"testing"
)

// benchInput returns a 1M-symbol stream of about h bits per symbol with a
// fitted table of the given precision, and its encoding.
func benchInput(b *testing.B, h float64, prec uint) ([]int32, *Table, []byte) {
	b.Helper()
	syms := gaussSyms(1<<20, sigmaFor(h), 99)
	tab, err := Build(syms, prec)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := Encode(nil, syms, []*Table{tab})
	if err != nil {
		b.Fatal(err)
	}
	return syms, tab, enc
}

// The benchmarks set bytes to the number of symbols, so MB/s reads as
// millions of symbols per second.

func BenchmarkDecode(b *testing.B) {
	for _, prec := range []uint{12, 14, 16} {
		for _, h := range []float64{2, 4, 6} {
			b.Run(fmt.Sprintf("P%d/H%v", prec, h), func(b *testing.B) {
				syms, tab, enc := benchInput(b, h, prec)
				tabs := []*Table{tab}
				dst := make([]int32, len(syms))
				if err := Decode(enc, tabs, dst); err != nil { // builds the lookup table
					b.Fatal(err)
				}
				b.SetBytes(int64(len(syms)))
				b.ResetTimer()
				for b.Loop() {
					if err := Decode(enc, tabs, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecodeMultiTable(b *testing.B) {
	syms := gaussSyms(1<<20, sigmaFor(4), 98)
	tabs := make([]*Table, 16)
	for c := range tabs {
		var err error
		if tabs[c], err = Build(syms[c*1000:(c+1)*1000], 14); err != nil {
			b.Fatal(err)
		}
	}
	enc, err := Encode(nil, syms, tabs)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]int32, len(syms))
	b.SetBytes(int64(len(syms)))
	for b.Loop() {
		if err := Decode(enc, tabs, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, h := range []float64{2, 4, 6} {
		b.Run(fmt.Sprintf("P14/H%v", h), func(b *testing.B) {
			syms, tab, enc := benchInput(b, h, 14)
			tabs := []*Table{tab}
			buf := make([]byte, 0, 2*len(enc))
			b.SetBytes(int64(len(syms)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := Encode(buf[:0], syms, tabs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	syms := gaussSyms(1<<16, sigmaFor(6), 97)
	for b.Loop() {
		if _, err := Build(syms, 14); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	counts := make([]uint64, MaxSymbols)
	for i := range counts {
		counts[i] = uint64(1 + (i*7919)%1000)
	}
	for b.Loop() {
		if _, _, err := Normalize(counts, 10, 16); err != nil {
			b.Fatal(err)
		}
	}
}
