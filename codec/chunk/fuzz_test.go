package chunk

import (
	"errors"
	"slices"
	"testing"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/format"
)

// FuzzParseColumns feeds arbitrary aux sections to ParseScales and
// ParseLevels: they must reject bad data with format errors, and whatever
// they accept must re-encode to the same column values.
func FuzzParseColumns(f *testing.F) {
	m := []float32{1, 0, 3e-6, 2e5, -1, 0, 1e-3, 7}
	s, err := AppendScales(nil, Scales(m, 2, 4))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s, AppendLevels(nil, []uint8{0, 1, 2, 3}), uint16(4))
	f.Add([]byte{}, []byte{}, uint16(0))
	f.Add([]byte{1, 2, 3}, []byte{0x40}, uint16(3))
	f.Fuzz(func(t *testing.T, scales, levels []byte, cols uint16) {
		n := int(cols)
		if s, err := ParseScales(scales, n); err != nil {
			if !errors.Is(err, format.ErrFormat) {
				t.Fatalf("ParseScales: %v is not a format error", err)
			}
		} else {
			h := make([]uint16, n)
			for j, v := range s {
				if v < 0 || v > MaxScale {
					t.Fatalf("scale %d = %v accepted", j, v)
				}
				h[j] = float16.Fromfloat32(v).Bits() // exact: v came from fp16
			}
			b, err := AppendScales(nil, h)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := ParseScales(b, n); err != nil || !slices.Equal(back, s) {
				t.Fatalf("re-encoded scales differ: %v", err)
			}
		}
		if lv, err := ParseLevels(levels, n); err != nil {
			if !errors.Is(err, format.ErrFormat) {
				t.Fatalf("ParseLevels: %v is not a format error", err)
			}
		} else if b := AppendLevels(nil, lv); !slices.Equal(b, levels) {
			t.Fatalf("levels re-encode to % x, parsed from % x", b, levels)
		}
	})
}
