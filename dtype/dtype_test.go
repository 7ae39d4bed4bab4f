package dtype

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/format"
)

func TestBF16Rounding(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1.0 exact
		{0x3f808000, 0x3f80}, // halfway, even stays
		{0x3f818000, 0x3f82}, // halfway, odd rounds up
		{0x3f808001, 0x3f81}, // above halfway
		{0x7f7fffff, 0x7f80}, // max float rounds to +Inf
		{0x7fc00001, 0x7fc0}, // NaN stays NaN
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet, not Inf
		{0x80000000, 0x8000}, // -0
		{0x00000001, 0x0000}, // tiny subnormal rounds to 0
	}
	for _, c := range cases {
		if got := BF16FromFloat32(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("BF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

func TestF16MatchesX448(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 10000)
	for i := range src {
		src[i] = math.Float32frombits(rng.Uint32())
	}
	b, err := FromFloat32(nil, src, format.F16)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range src {
		if got, want := binary.LittleEndian.Uint16(b[2*i:]), float16.Fromfloat32(v).Bits(); got != want {
			t.Fatalf("%g: %#04x, want %#04x", v, got, want)
		}
	}
}

// TestF8RoundTrip: every finite 8-bit code decodes and encodes back to
// itself, and values round to the nearest code.
func TestF8RoundTrip(t *testing.T) {
	for _, dt := range []format.DType{format.F8E4M3, format.F8E5M2} {
		for c := 0; c < 256; c++ {
			vals, _ := ToFloat32(nil, []byte{byte(c)}, dt)
			v := vals[0]
			if v != v || math.IsInf(float64(v), 0) {
				continue
			}
			back, _ := FromFloat32(nil, vals, dt)
			if back[0] != byte(c) && !(v == 0 && back[0]&0x7f == 0) {
				t.Errorf("%s code %#02x (%g) came back as %#02x", dt, c, v, back[0])
			}
		}
	}
	sat, _ := FromFloat32(nil, []float32{1e6, -1e6, 460}, format.F8E4M3)
	if sat[0] != 0x7e || sat[1] != 0xfe || sat[2] != 0x7e {
		t.Errorf("E4M3 saturation: %x", sat)
	}
	inf, _ := FromFloat32(nil, []float32{1e6, 58000}, format.F8E5M2)
	if inf[0] != 0x7c || inf[1] != 0x7b {
		t.Errorf("E5M2 overflow: %x", inf)
	}
}

// TestF8Kept checks the 8-bit types that are kept bit for bit: each code
// decodes to its value (against values worked out by hand from the OCP
// and FNUZ definitions), and nothing converts into them.
func TestF8Kept(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		dt   format.DType
		code byte
		want float64
	}{
		{format.F8E4M3FNUZ, 0x00, 0},
		{format.F8E4M3FNUZ, 0x80, nan}, // the only NaN; there is no -0
		{format.F8E4M3FNUZ, 0x01, math.Ldexp(1, -10)},
		{format.F8E4M3FNUZ, 0x08, math.Ldexp(1, -7)},
		{format.F8E4M3FNUZ, 0x40, 1},
		{format.F8E4M3FNUZ, 0x7f, 240},
		{format.F8E4M3FNUZ, 0xff, -240},
		{format.F8E5M2FNUZ, 0x80, nan},
		{format.F8E5M2FNUZ, 0x01, math.Ldexp(1, -17)},
		{format.F8E5M2FNUZ, 0x40, 1},
		{format.F8E5M2FNUZ, 0x7f, 57344},
		{format.F8E5M2FNUZ, 0xfc, -32768},
		{format.F8E8M0, 0x00, math.Ldexp(1, -127)},
		{format.F8E8M0, 0x7f, 1},
		{format.F8E8M0, 0x80, 2},
		{format.F8E8M0, 0xfe, math.Ldexp(1, 127)},
		{format.F8E8M0, 0xff, nan},
	}
	for _, tt := range tests {
		got, err := ToFloat32(nil, []byte{tt.code}, tt.dt)
		if err != nil {
			t.Fatal(err)
		}
		if g := float64(got[0]); g != tt.want && !(g != g && tt.want != tt.want) {
			t.Errorf("%s %#02x = %g, want %g", tt.dt, tt.code, g, tt.want)
		}
	}
	for _, dt := range []format.DType{format.F8E4M3FNUZ, format.F8E5M2FNUZ, format.F8E8M0, format.C64} {
		if dt.IsFloat() {
			t.Errorf("%s.IsFloat() = true; lossy codecs would code it", dt)
		}
		if _, err := FromFloat32(nil, []float32{1}, dt); !errors.Is(err, format.ErrUnsupported) {
			t.Errorf("FromFloat32 to %s: %v, want ErrUnsupported", dt, err)
		}
		if _, err := Convert(nil, dt, []byte{0, 0, 0x80, 0x3f}, format.F32); !errors.Is(err, format.ErrUnsupported) {
			t.Errorf("Convert to %s: %v, want ErrUnsupported", dt, err)
		}
	}
	if _, err := ToFloat32(nil, make([]byte, 8), format.C64); !errors.Is(err, format.ErrUnsupported) {
		t.Errorf("C64 to float32: %v, want ErrUnsupported", err)
	}
}

func TestIntegersSaturate(t *testing.T) {
	src := []float32{-1e30, -1.5, 2.5, 1e30, float32(math.NaN())}
	for _, c := range []struct {
		dt   format.DType
		want []float32
	}{
		{format.I8, []float32{-128, -2, 2, 127, 0}},
		{format.U8, []float32{0, 0, 2, 255, 0}},
		{format.I16, []float32{-32768, -2, 2, 32767, 0}},
		{format.U32, []float32{0, 0, 2, 4294967295, 0}},
		{format.I64, []float32{-9223372036854775808, -2, 2, 9223372036854775807, 0}},
	} {
		b, err := FromFloat32(nil, src, c.dt)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := ToFloat32(nil, b, c.dt)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %g → %g, want %g", c.dt, src[i], got[i], c.want[i])
			}
		}
	}
}

func TestRoundTripExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range format.DTypes {
		if _, err := FromFloat32(nil, nil, dt); errors.Is(err, format.ErrUnsupported) {
			continue // kept bit for bit, never converted (TestF8Kept)
		}
		b := make([]byte, 64*dt.Size())
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if dt == format.Bool {
			for i := range b {
				b[i] &= 1
			}
		}
		f, err := ToFloat32(nil, b, dt)
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromFloat32(nil, f, dt)
		if err != nil {
			t.Fatal(err)
		}
		// Every value of types of at most 24 significant bits survives
		// float32 (NaN payloads aside).
		if dt.Size() <= 2 || dt == format.F32 {
			for i := 0; i < len(f); i++ {
				if f[i] != f[i] {
					continue
				}
				if string(back[i*dt.Size():(i+1)*dt.Size()]) != string(b[i*dt.Size():(i+1)*dt.Size()]) {
					t.Errorf("%s element %d: %x → %g → %x", dt, i, b[i*dt.Size():(i+1)*dt.Size()], f[i], back[i*dt.Size():(i+1)*dt.Size()])
					break
				}
			}
		}
	}
	if _, err := ToFloat32(nil, []byte{1, 2, 3}, format.F32); err == nil {
		t.Error("partial element accepted")
	}
	if _, err := ToFloat32(nil, nil, "F4"); err == nil {
		t.Error("unknown dtype accepted")
	}
}
