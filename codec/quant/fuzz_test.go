package quant

import (
	"errors"
	"math"
	"testing"
)

// floatsFromBytes reinterprets fuzz input as little-endian float32s.
func floatsFromBytes(b []byte) []float32 { return bytesToFloats(b[:len(b)/4*4]) }

func allFinite(x []float32) bool {
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func FuzzDequantizeQ4K(f *testing.F) {
	golden := readTestdata(f, goldenQ4K)
	f.Add(golden)
	f.Add(golden[:Q4KBlockBytes+7])
	f.Add(handBlock())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, src []byte) {
		y, err := DequantizeQ4K(nil, src)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if len(y) != len(src)/Q4KBlockBytes*Q4KBlockWeights {
			t.Fatalf("%d bytes decoded to %d weights", len(src), len(y))
		}
		if !allFinite(y) {
			t.Fatal("finite scales decoded to a non-finite weight")
		}
	})
}

func FuzzQ4KRoundTrip(f *testing.F) {
	in := readTestdata(f, goldenInput)
	for i := 0; i < len(in); i += 4 * Q4KBlockWeights {
		f.Add(in[i : i+4*Q4KBlockWeights])
	}
	f.Add(in[:4*300])
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floatsFromBytes(b)
		for _, v := range x {
			// Beyond this the super-block scale d can overflow fp16, which
			// ggml's validator, and DequantizeQ4K, reject.
			if !(math.Abs(float64(v)) <= 1e4) {
				return
			}
		}
		enc := QuantizeQ4K(nil, x)
		if len(enc) != Q4KBytes(len(x)) {
			t.Fatalf("%d weights encoded to %d bytes", len(x), len(enc))
		}
		y, err := DequantizeQ4K(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		checkQ4K(t, "fuzz", x, enc, y)
	})
}

func FuzzRTNDequantize(f *testing.F) {
	in := readTestdata(f, goldenInput)
	for i, r := range rtnConfigs {
		row := floatsFromBytes(in[1024*i : 1024*i+4*(100+37*i)])
		f.Add(uint8(r.Bits), uint8(r.Group), uint16(len(row)), r.Quantize(nil, row))
	}
	f.Add(uint8(4), uint8(0), uint16(3), []byte{0x77, 0x33, 0x03, 0x00})
	f.Fuzz(func(t *testing.T, bits, group uint8, n uint16, src []byte) {
		r := RTN{Bits: int(bits), Group: int(group)}
		y, err := r.Dequantize(nil, src, int(n))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v matches neither ErrCorrupt nor ErrConfig", err)
			}
			return
		}
		if len(y) != int(n) || len(src) != r.RowBytes(int(n)) {
			t.Fatalf("%d bytes decoded to %d weights, want %d", len(src), len(y), n)
		}
		if !allFinite(y) {
			t.Fatal("decoded a non-finite weight")
		}
	})
}

func FuzzRTNRoundTrip(f *testing.F) {
	in := readTestdata(f, goldenInput)
	for i, r := range rtnConfigs {
		f.Add(uint8(r.Bits), uint8(r.Group), in[512*i:512*i+4*(50+61*i)])
	}
	f.Fuzz(func(t *testing.T, bits, group uint8, b []byte) {
		r := RTN{Bits: 2 + int(bits)%7, Group: int(group)}
		row := floatsFromBytes(b)
		enc := r.Quantize(nil, row)
		if len(enc) != r.RowBytes(len(row)) {
			t.Fatalf("%d weights encoded to %d bytes", len(row), len(enc))
		}
		dec, err := r.Dequantize(nil, enc, len(row))
		if err != nil {
			t.Fatal(err)
		}
		if !allFinite(dec) {
			t.Fatal("decoded a non-finite weight")
		}
		if allFinite(row) {
			checkRTN(t, r, row, enc, dec)
		}
	})
}
