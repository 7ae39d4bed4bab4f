package spec

import (
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// TestFromFloat32 compares the reference conversion of §7.3.8 with package
// dtype's on special values and a million random bit patterns.
func TestFromFloat32(t *testing.T) {
	vals := []uint32{0, 0x80000000, 1, 0x80000001, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
		0x7f7fffff, 0x477fe000, 0x477ff000, 0x477fefff, 0x47800000, 0x43e00000, 0x43f00000, 0x43e80000,
		0x47600000, 0x47700000, 0x33000000, 0x33000001, 0x387fc000, 0x00800000}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		vals = append(vals, rng.Uint32())
	}
	for _, dt := range []string{"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"} {
		for _, bits := range vals {
			v := math.Float32frombits(bits)
			want, err := dtype.FromFloat32(nil, []float32{v}, format.DType(dt))
			if err != nil {
				t.Fatal(err)
			}
			if got := appendFromFloat32(nil, v, dt); string(got) != string(want) {
				t.Fatalf("%s of %#08x: got %x, want %x", dt, bits, got, want)
			}
		}
	}
}

// TestF16ToF32 widens every fp16 value and compares with package dtype.
func TestF16ToF32(t *testing.T) {
	for h := range 1 << 16 {
		want, err := dtype.ToFloat32(nil, []byte{byte(h), byte(h >> 8)}, format.F16)
		if err != nil {
			t.Fatal(err)
		}
		got := f16ToF32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want[0]) && !(got != got && want[0] != want[0]) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want[0])
		}
	}
}

// TestRANSExample decodes the example of Appendix B.7.
func TestRANSExample(t *testing.T) {
	tb, _ := hex.DecodeString("0a0501ac020001d80464")
	tab, n, err := parseRANSTable(tb)
	if err != nil || n != len(tb) {
		t.Fatalf("table: %d of %d bytes, %v", n, len(tb), err)
	}
	stream, _ := hex.DecodeString("030e4f0a3ae90600e88c130404573a0cd807bc92fc27")
	got, err := ransDecode(stream, []*ransTable{tab}, 20)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{2, -1, 2, 3, 7, 2, 2, -1, -40, 3, 3, 3, -1, 2, 3, 3, 5, 3, 3, 3}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("symbols %v, want %v", got, want)
		}
	}
	// Any damage is caught.
	for i := range stream {
		bad := append([]byte(nil), stream...)
		bad[i] ^= 0x10
		if s, err := ransDecode(bad, []*ransTable{tab}, 20); err == nil && string(int32Bytes(s)) == string(int32Bytes(want)) {
			t.Errorf("flipping byte %d went unnoticed", i)
		} else if err != nil && !errors.Is(err, ErrFormat) {
			t.Errorf("byte %d: error %v is not a format error", i, err)
		}
	}
}

func int32Bytes(v []int32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	}
	return b
}

// TestStepConstants derives the step factors from their definitions
// (§7.4.2, §7.7.3).
func TestStepConstants(t *testing.T) {
	for k, m := range []float64{1, 0.6, 0.36, 0.2} {
		if got := math.Float32bits(float32(m)); got != ecsqLevelFactor[k] {
			t.Errorf("ecsq m_%d: %#08x, want %#08x", k, ecsqLevelFactor[k], got)
		}
	}
	c := []float64{3.4, 1.2, 0.1, 0.05}
	for q := range c {
		if got := math.Float32bits(float32(math.Sqrt(c[q] / c[0]))); got != nwcStepFactor[q] {
			t.Errorf("nwc m_%d: %#08x, want %#08x", q, nwcStepFactor[q], got)
		}
	}
}

// TestUvarint checks the shortest-form rule of §7.2.
func TestUvarint(t *testing.T) {
	for _, c := range []struct {
		in   string
		v    uint64
		used int
	}{
		{"00", 0, 1}, {"7f", 127, 1}, {"8001", 128, 2}, {"8000", 0, -1}, {"80", 0, 0}, {"", 0, 0},
		{"ffffffffffffffffff01", math.MaxUint64, 10}, {"ffffffffffffffffff02", 0, -1},
	} {
		b, _ := hex.DecodeString(c.in)
		if v, used := uvarint(b); v != c.v || used != c.used {
			t.Errorf("uvarint(%s) = %d, %d; want %d, %d", c.in, v, used, c.v, c.used)
		}
	}
}

// TestDecodeErrors checks Class directly.
func TestDecodeErrors(t *testing.T) {
	if _, err := Decode([]byte("short"), nil); Class(err) != "format" {
		t.Errorf("short file: %v", err)
	}
	if Class(nil) != "" || Class(errors.New("x")) != "unclassified" || Class(limitErr("x")) != "limit" {
		t.Error("Class of nil, a foreign error or a limit error")
	}
}

// TestDTypeSizes checks the reference decoder's element sizes and lossless
// layouts (written from FORMAT.md §5.5 and §7.2) against the types the
// implementation knows: the same set, the same sizes.
func TestDTypeSizes(t *testing.T) {
	if len(losslessDTypes) != len(format.DTypes) {
		t.Errorf("spec has %d lossless dtypes, format %d", len(losslessDTypes), len(format.DTypes))
	}
	for _, dt := range format.DTypes {
		if got := dtypeSize(string(dt)); got != dt.Size() {
			t.Errorf("%s: spec size %d, format %d", dt, got, dt.Size())
		}
		if lw, ok := losslessDTypes[string(dt)]; !ok || lw[1] != dt.Size() {
			t.Errorf("%s: lossless layout %v, %v; want %d streams", dt, lw, ok, dt.Size())
		}
	}
	for _, name := range []string{"F4", "F6_E2M3", "F6_E3M2", "C128", ""} {
		if dtypeSize(name) != 0 {
			t.Errorf("spec knows %q", name)
		}
	}
}
