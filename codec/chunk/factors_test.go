package chunk

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/codec"
)

func TestCodingScales(t *testing.T) {
	const rows = 2
	m := []float32{
		// RMS: 2, 1.1, 1.2, 0, saturates, 3
		2, 1.1, 1.2, 0, 1e30, 3,
		-2, -1.1, 1.2, 0, 1e30, -3,
	}
	for _, tc := range []struct {
		name string
		f    []float32
		want []float32
	}{
		// 2 mantissa bits: 1, 1.25, 1.5, 1.75 in each octave.
		{"plain", nil, []float32{2, 1, 1.25, 0, 57344, 3}},
		{"factors", []float32{0.5, 2, 1, 4, 0.5, 1.0 / 3}, []float32{1, 2, 1.25, 0, 32768, 1}},
	} {
		h := CodingScales(m, rows, 6, tc.f)
		got := ScaleValues(h)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: scales %v, want %v", tc.name, got, tc.want)
		}
		for j, b := range h {
			if b&(1<<(10-ScaleMantissaBits)-1) != 0 {
				t.Errorf("%s: scale %d = %#04x keeps more than %d mantissa bits", tc.name, j, b, ScaleMantissaBits)
			}
		}
	}
}

// TestRoundScaleBits checks the rounding of every finite non-negative fp16
// against rounding its value to the nearest representable scale.
func TestRoundScaleBits(t *testing.T) {
	var grid []float64
	for b := uint16(0); b <= maxCodingScaleBits; b += 1 << (10 - ScaleMantissaBits) {
		grid = append(grid, float64(float16.Frombits(b).Float32()))
	}
	for b := uint16(0); b < 0x7c00; b++ {
		v := float64(float16.Frombits(b).Float32())
		got := float64(float16.Frombits(roundScaleBits(b)).Float32())
		i, _ := slices.BinarySearch(grid, v)
		best := grid[min(i, len(grid)-1)]
		if i > 0 && (i == len(grid) || v-grid[i-1] < grid[i]-v) {
			best = grid[i-1]
		}
		if got != best && math.Abs(got-v) != math.Abs(best-v) {
			t.Fatalf("roundScaleBits(%#04x = %v) = %v, want %v", b, v, got, best)
		}
	}
	if got := roundScaleBits(0x7c00); got != maxCodingScaleBits {
		t.Errorf("roundScaleBits(+Inf) = %#04x", got)
	}
}

func TestCheckFactors(t *testing.T) {
	if err := CheckFactors(nil, 3); err != nil {
		t.Errorf("nil: %v", err)
	}
	if err := CheckFactors([]float32{1, 0.5, 4}, 3); err != nil {
		t.Errorf("valid: %v", err)
	}
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, f := range [][]float32{{1, 2}, {1, 0, 1}, {1, -1, 1}, {1, inf, 1}, {nan, 1, 1}} {
		if err := CheckFactors(f, 3); !errors.Is(err, ErrFactors) || !errors.Is(err, codec.ErrOptions) {
			t.Errorf("%v: err = %v, want ErrFactors wrapping codec.ErrOptions", f, err)
		}
	}
}
