package dtype

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/nwcodec/nwc/format"
)

// halfCodes lists the finite non-negative values of a 16-bit float format
// with their codes, in increasing order: the oracle rounds by searching it.
type halfCodes struct {
	vals  []float64
	codes []uint16
	inf   uint16
}

func newHalfCodes(dt format.DType) *halfCodes {
	h := &halfCodes{inf: 0x7c00}
	if dt == format.BF16 {
		h.inf = 0x7f80
	}
	for c := 0; c < h.int(); c++ {
		v, _ := ToFloat32(nil, []byte{byte(c), byte(c >> 8)}, dt)
		h.vals = append(h.vals, float64(v[0]))
		h.codes = append(h.codes, uint16(c))
	}
	return h
}

func (h *halfCodes) int() int { return int(h.inf) }

// round is the reference: the nearest code to x by exact arithmetic, ties
// to the even code, past the largest finite value by half an ulp or more
// to infinity (IEEE 754 roundTiesToEven).
func (h *halfCodes) round(x float64) uint16 {
	var sign uint16
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	n := len(h.vals)
	i := sort.SearchFloat64s(h.vals, x) // vals[i-1] < x <= vals[i]
	if i < n && h.vals[i] == x {
		return sign | h.codes[i]
	}
	lo := i - 1
	var hiV *big.Float
	hiCode := h.inf
	if i < n {
		hiV, hiCode = big.NewFloat(h.vals[i]), h.codes[i]
	} else {
		// The next value up would be max + ulp: the overflow threshold.
		ulp := h.vals[n-1] - h.vals[n-2]
		hiV = new(big.Float).Add(big.NewFloat(h.vals[n-1]), big.NewFloat(ulp))
	}
	bx := big.NewFloat(x)
	dl := new(big.Float).Sub(bx, big.NewFloat(h.vals[lo]))
	dh := new(big.Float).Sub(hiV, bx)
	switch dl.Cmp(dh) {
	case -1:
		return sign | h.codes[lo]
	case 1:
		return sign | hiCode
	}
	if h.codes[lo]%2 == 0 {
		return sign | h.codes[lo]
	}
	return sign | hiCode
}

// TestConvertRoundsOnce converts F32 and F64 values to F16 and BF16 and
// compares with exact rounding, ties to even. The F64 cases include values
// just off a rounding midpoint, which rounding through a nearest float32
// would get wrong.
func TestConvertRoundsOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, to := range []format.DType{format.F16, format.BF16} {
		h := newHalfCodes(to)
		var xs []float64
		for c := 1; c < len(h.vals)-1; c += 7 {
			mid := (h.vals[c] + h.vals[c+1]) / 2 // exact in float64
			xs = append(xs, mid, math.Nextafter(mid, 0), math.Nextafter(mid, 2*mid), h.vals[c])
		}
		for i := 0; i < 20000; i++ {
			xs = append(xs, math.Ldexp(rng.Float64()+0.5, rng.IntN(300)-150))
		}
		maxV := h.vals[len(h.vals)-1]
		xs = append(xs, maxV, maxV+(maxV-h.vals[len(h.vals)-2])/2, math.MaxFloat64, 1e-300, 0, math.Inf(1))
		for _, x := range append(xs, negate(xs)...) {
			want := h.round(x)
			var s64 [8]byte
			binary.LittleEndian.PutUint64(s64[:], math.Float64bits(x))
			got, err := Convert(nil, to, s64[:], format.F64)
			if err != nil {
				t.Fatal(err)
			}
			if g := binary.LittleEndian.Uint16(got); g != want {
				t.Fatalf("F64 %v (%#x) → %s: %#04x, want %#04x", x, math.Float64bits(x), to, g, want)
			}
			f := float32(x)
			if float64(f) != x {
				continue
			}
			var s32 [4]byte
			binary.LittleEndian.PutUint32(s32[:], math.Float32bits(f))
			got, _ = Convert(nil, to, s32[:], format.F32)
			if g := binary.LittleEndian.Uint16(got); g != want {
				t.Fatalf("F32 %v → %s: %#04x, want %#04x", f, to, g, want)
			}
		}
	}
}

func negate(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = -x
	}
	return out
}

// TestConvertExact checks the conversions that must be exact: every BF16,
// F16 and F8 code to F32 and back, and F8 codes to F16 and BF16.
func TestConvertExact(t *testing.T) {
	for _, from := range []format.DType{format.BF16, format.F16, format.F8E4M3, format.F8E5M2} {
		n := 1 << (8 * from.Size())
		src := make([]byte, 0, n*from.Size())
		for c := 0; c < n; c++ {
			src = append(src, byte(c))
			if from.Size() == 2 {
				src = append(src, byte(c>>8))
			}
		}
		f32, err := Convert(nil, format.F32, src, from)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ToFloat32(nil, src, from)
		for i := range want {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(f32[4*i:])); math.Float32bits(got) != math.Float32bits(want[i]) && !(got != got && want[i] != want[i]) {
				t.Fatalf("%s code %#x → F32 %v, want %v", from, i, got, want[i])
			}
		}
		targets := []format.DType{from}
		if from.Size() == 1 {
			targets = append(targets, format.F16, format.BF16)
		}
		for _, mid := range targets {
			m, err := Convert(nil, mid, src, from)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Convert(nil, from, m, mid)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				v := want[i]
				if v != v {
					continue // NaN payloads need not survive
				}
				if !bytes.Equal(back[i*from.Size():(i+1)*from.Size()], src[i*from.Size():(i+1)*from.Size()]) {
					t.Fatalf("%s code %#x → %s → %s changed", from, i, mid, from)
				}
			}
		}
	}
}

func TestConvertErrors(t *testing.T) {
	if _, err := Convert(nil, format.F32, []byte{1, 2, 3}, format.F16); err == nil {
		t.Error("odd byte count accepted")
	}
	if _, err := Convert(nil, "F12", nil, format.F16); err == nil {
		t.Error("unknown dtype accepted")
	}
	// Appends after what dst holds, across several blocks.
	src := make([]byte, 2*(convertBlock*2+3))
	got, err := Convert([]byte{9}, format.F32, src, format.BF16)
	if err != nil || len(got) != 1+4*(convertBlock*2+3) || got[0] != 9 {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}
