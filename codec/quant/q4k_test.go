package quant

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The golden files were produced by a C transcription of ggml's
// quantize_row_q4_K_ref and dequantize_row_q4_K built with gcc -O2 -mf16c
// -ffp-contract=off; see testdata/README.md.
const (
	goldenInput   = "q4k_input.f32"
	goldenQ4K     = "q4k_ggml.bin"
	goldenDequant = "q4k_ggml_dequant.f32"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bytesToFloats(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}

func TestQuantizeQ4KMatchesGGML(t *testing.T) {
	x := bytesToFloats(readTestdata(t, goldenInput))
	want := readTestdata(t, goldenQ4K)
	if len(x)/Q4KBlockWeights*Q4KBlockBytes != len(want) {
		t.Fatalf("golden files disagree: %d weights, %d bytes", len(x), len(want))
	}
	got := QuantizeQ4K(nil, x)
	if len(got) != len(want) {
		t.Fatalf("len = %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d byte %d = %#02x, want %#02x", i/Q4KBlockBytes, i%Q4KBlockBytes, got[i], want[i])
		}
	}
}

func TestDequantizeQ4KMatchesGGML(t *testing.T) {
	want := bytesToFloats(readTestdata(t, goldenDequant))
	got, err := DequantizeQ4K(nil, readTestdata(t, goldenQ4K))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("len = %d, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("weight %d = %g, want %g", i, got[i], want[i])
		}
	}
}

// handBlock is a Q4_K super-block assembled byte by byte, with
// d = 0.5, dmin = 0.25 and these 6-bit scales and mins per sub-block.
var (
	handScales = [8]uint8{1, 2, 3, 63, 16, 33, 47, 5}
	handMins   = [8]uint8{0, 4, 62, 1, 20, 63, 0, 9}
)

func handBlock() []byte {
	b := make([]byte, Q4KBlockBytes)
	b[0], b[1] = 0x00, 0x38 // fp16 0.5
	b[2], b[3] = 0x00, 0x34 // fp16 0.25
	// Bytes 0-3: scale j, top bits = high 2 bits of scale j+4.
	// Bytes 4-7: min j, top bits = high 2 bits of min j+4.
	// Bytes 8-11: low nibble scale j+4, high nibble min j+4.
	copy(b[4:], []byte{
		0x41, 0x82, 0x83, 0x3f,
		0x40, 0xc4, 0x3e, 0x01,
		0x40, 0xf1, 0x0f, 0x95,
	})
	for i := range 128 {
		b[16+i] = byte(i*37 + 11)
	}
	return b
}

func TestDequantizeQ4KHandBuilt(t *testing.T) {
	got, err := DequantizeQ4K(nil, handBlock())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != Q4KBlockWeights {
		t.Fatalf("len = %d, want %d", len(got), Q4KBlockWeights)
	}
	for e := range Q4KBlockWeights {
		half, r := e/64, e%64
		qb := byte((32*half+r%32)*37 + 11)
		sub, q := 2*half, qb&0xf
		if r >= 32 {
			sub, q = 2*half+1, qb>>4
		}
		want := 0.5*float32(handScales[sub])*float32(q) - 0.25*float32(handMins[sub])
		if got[e] != want {
			t.Errorf("weight %d = %g, want %g", e, got[e], want)
		}
	}
	// Values worked out by hand, so a misreading of the layout shared by
	// the loop above and the decoder cannot go unnoticed. qs[i] = 37i+11.
	spot := []struct {
		i    int
		want float32
	}{
		{0, 5.5},      // sub 0, qs[0]=0x0b low: 0.5·1·11 − 0.25·0
		{32, -1},      // sub 1, qs[0]=0x0b high: 0.5·2·0 − 0.25·4
		{64, 1},       // sub 2, qs[32]=0xab low: 0.5·3·11 − 0.25·62
		{100, 94.25},  // sub 3, qs[36]=0x3f high: 0.5·63·3 − 0.25·1
		{130, 35},     // sub 4, qs[66]=0x95 low: 0.5·16·5 − 0.25·20
		{170, 165.75}, // sub 5, qs[74]=0xbd high: 0.5·33·11 − 0.25·63
		{200, 70.5},   // sub 6, qs[104]=0x13 low: 0.5·47·3 − 0.25·0
		{255, 12.75},  // sub 7, qs[127]=0x66 high: 0.5·5·6 − 0.25·9
	}
	for _, s := range spot {
		if got[s.i] != s.want {
			t.Errorf("weight %d = %g, want %g", s.i, got[s.i], s.want)
		}
	}
}

func gaussian(n int, seed uint64, sigma float64) []float32 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * sigma)
	}
	return x
}

// sqnr is the signal-to-quantization-noise ratio of y against x in dB.
func sqnr(x, y []float32) float64 {
	var sig, noise float64
	for i := range x {
		sig += float64(x[i]) * float64(x[i])
		d := float64(x[i]) - float64(y[i])
		noise += d * d
	}
	return 10 * math.Log10(sig/noise)
}

func TestQ4KBytes(t *testing.T) {
	tests := []struct{ n, want int }{
		{-1, -1}, {0, 0}, {1, 144}, {255, 144}, {256, 144}, {257, 288}, {512, 288}, {1 << 20, 4096 * 144},
	}
	for _, tt := range tests {
		if got := Q4KBytes(tt.n); got != tt.want {
			t.Errorf("Q4KBytes(%d) = %d, want %d", tt.n, got, tt.want)
		}
		if tt.n < 0 {
			continue
		}
		if got := len(QuantizeQ4K(nil, make([]float32, tt.n))); got != tt.want {
			t.Errorf("len(QuantizeQ4K(%d weights)) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestQuantizeQ4KPadsAndAppends(t *testing.T) {
	x := gaussian(600, 1, 0.1)
	padded := make([]float32, 768)
	copy(padded, x)
	prefix := []byte("hdr")
	got := QuantizeQ4K(slices.Clone(prefix), x)
	if !slices.Equal(got[:3], prefix) {
		t.Fatalf("prefix clobbered: %q", got[:3])
	}
	if want := QuantizeQ4K(nil, padded); !slices.Equal(got[3:], want) {
		t.Error("partial super-block not encoded as zero-padded")
	}
	// Reusing a dirty buffer must not leak its contents into the output.
	dirty := make([]byte, 0, len(got))
	dirty = append(dirty, slices.Repeat([]byte{0xff}, cap(dirty))...)[:3]
	copy(dirty, prefix)
	if again := QuantizeQ4K(dirty, x); !slices.Equal(again, got) {
		t.Error("encoding into a dirty buffer differs")
	}
}

// TestQ4KErrorBound checks the final requantization step: every weight
// decodes to the level of its sub-block's stored grid nearest to it, so
// the error is at most half a step unless the weight lies beyond the grid,
// in which case it decodes to the grid's end.
func TestQ4KErrorBound(t *testing.T) {
	inputs := map[string][]float32{
		"golden":   bytesToFloats(readTestdata(t, goldenInput)),
		"gaussian": gaussian(64*Q4KBlockWeights, 2, 0.02),
		"shifted":  func() []float32 { x := gaussian(16*Q4KBlockWeights, 3, 1); return addConst(x, 2) }(),
	}
	for name, x := range inputs {
		enc := QuantizeQ4K(nil, x)
		y, err := DequantizeQ4K(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		checkQ4K(t, name, x, enc, y)
	}
}

// checkQ4K verifies that y, the decoding of enc, holds for each weight of
// x the nearest level of its sub-block's stored grid.
func checkQ4K(t testing.TB, name string, x []float32, enc []byte, y []float32) {
	t.Helper()
	for b := range len(enc) / Q4KBlockBytes {
		blk := (*[Q4KBlockBytes]byte)(enc[b*Q4KBlockBytes:])
		d := fp32(binary.LittleEndian.Uint16(blk[0:]))
		dmin := fp32(binary.LittleEndian.Uint16(blk[2:]))
		for j := range 8 {
			sc, m := scaleMinK4(j, (*[12]byte)(blk[4:]))
			step, off := d*float32(sc), dmin*float32(m)
			if step == 0 {
				continue
			}
			lo, hi := float64(-off), float64(15*step-off)
			tol := 1e-6 * max(math.Abs(lo), math.Abs(hi))
			for i := range 32 {
				k := b*Q4KBlockWeights + 32*j + i
				xv, yv := 0.0, float64(y[k])
				if k < len(x) {
					xv = float64(x[k])
				}
				var ok bool
				switch {
				case xv < lo:
					ok = math.Abs(yv-lo) <= tol
				case xv > hi:
					ok = math.Abs(yv-hi) <= tol
				default:
					ok = math.Abs(xv-yv) <= float64(step)/2+tol
				}
				if !ok {
					t.Fatalf("%s: weight %d = %g decodes to %g; sub-block grid %g..%g step %g",
						name, k, xv, yv, lo, hi, step)
				}
			}
		}
	}
}

func addConst(x []float32, c float32) []float32 {
	for i := range x {
		x[i] += c
	}
	return x
}

// TestQ4KStable checks that requantizing decoded weights reproduces the
// encoding for zero-centred data, the case of real weight matrices: the
// reference quantizer's fit lands back on the grid it chose. It is not a
// general property; blocks far from zero or below fp16's range can move.
func TestQ4KStable(t *testing.T) {
	for i, sigma := range []float64{1e-3, 0.02, 1, 30} {
		x := gaussian(32*Q4KBlockWeights, uint64(10+i), sigma)
		enc := QuantizeQ4K(nil, x)
		y, err := DequantizeQ4K(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		enc2 := QuantizeQ4K(nil, y)
		for b := range len(enc) / Q4KBlockBytes {
			s := enc[b*Q4KBlockBytes : (b+1)*Q4KBlockBytes]
			s2 := enc2[b*Q4KBlockBytes : (b+1)*Q4KBlockBytes]
			if !slices.Equal(s, s2) {
				t.Errorf("sigma %g: block %d changes when requantized:\n%x\n%x", sigma, b, s, s2)
			}
		}
	}
}

func TestQ4KSQNR(t *testing.T) {
	x := gaussian(256*Q4KBlockWeights, 5, 1)
	y, err := DequantizeQ4K(nil, QuantizeQ4K(nil, x))
	if err != nil {
		t.Fatal(err)
	}
	got := sqnr(x, y)
	t.Logf("Q4_K SQNR on N(0,1): %.2f dB at 4.5 bpw", got)
	// Plain 4-bit min/max rounding gets about 20 dB on Gaussian data;
	// ggml's weighted search is worth a few dB more.
	if got < 22 || got > 25 {
		t.Errorf("SQNR = %.2f dB, want 22-25", got)
	}
}

func TestQuantizeQ4KDeterministic(t *testing.T) {
	x := gaussian(8*Q4KBlockWeights, 6, 0.3)
	a := QuantizeQ4K(nil, x)
	b := QuantizeQ4K(make([]byte, 0, len(a)), slices.Clone(x))
	if !slices.Equal(a, b) {
		t.Error("two encodings of the same input differ")
	}
}

func TestDequantizeQ4KErrors(t *testing.T) {
	good := QuantizeQ4K(nil, gaussian(2*Q4KBlockWeights, 7, 1))
	set16 := func(off int, v uint16) []byte {
		b := slices.Clone(good)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	tests := []struct {
		name   string
		src    []byte
		offset int64
	}{
		{"one byte", good[:1], 0},
		{"short block", good[:143], 0},
		{"short second block", good[:200], 144},
		{"long", append(slices.Clone(good), 0), 288},
		{"NaN d", set16(144, 0x7e00), 144},
		{"Inf d", set16(0, 0x7c00), 0},
		{"-Inf dmin", set16(146, 0xfc00), 146},
	}
	for _, tt := range tests {
		prefix := []float32{42}
		got, err := DequantizeQ4K(prefix, tt.src)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", tt.name, err)
			continue
		}
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Offset != tt.offset {
			t.Errorf("%s: err = %v, want offset %d", tt.name, err, tt.offset)
		}
		if !slices.Equal(got, prefix) {
			t.Errorf("%s: dst modified on error: %v", tt.name, got[:min(len(got), 4)])
		}
	}
	if got, err := DequantizeQ4K(nil, nil); err != nil || len(got) != 0 {
		t.Errorf("empty input: %v, %v", got, err)
	}
}

// The benchmarks report throughput in float32 input bytes (4 per weight)
// for both directions, so encode and decode numbers compare directly.

const benchWeights = 1 << 16

func BenchmarkQuantizeQ4K(b *testing.B) {
	x := gaussian(benchWeights, 1, 0.02)
	dst := make([]byte, 0, Q4KBytes(len(x)))
	b.SetBytes(4 * benchWeights)
	for b.Loop() {
		dst = QuantizeQ4K(dst[:0], x)
	}
}

func BenchmarkDequantizeQ4K(b *testing.B) {
	enc := QuantizeQ4K(nil, gaussian(benchWeights, 1, 0.02))
	dst := make([]float32, 0, benchWeights)
	b.SetBytes(4 * benchWeights)
	for b.Loop() {
		var err error
		if dst, err = DequantizeQ4K(dst[:0], enc); err != nil {
			b.Fatal(err)
		}
	}
}
