package lossless

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

// allDTypes lists every supported dtype in a fixed order.
func allDTypes() []string {
	var s []string
	for k := range dtypes {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// gaussianF32 returns n little-endian F32 values drawn from N(0, sigma²),
// which is how trained weights are distributed to a first approximation.
func gaussianF32(r *rand.Rand, n int, sigma float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * sigma)
	}
	return v
}

// encodeFloats writes the values as little-endian elements of dtype, which
// must be a float dtype of at least 16 bits.
func encodeFloats(dtype string, v []float32) []byte {
	f32 := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(x))
	}
	switch dtype {
	case "BF16":
		return toBF16(f32)
	case "F16":
		return toF16(f32)
	case "F64":
		return toF64(f32)
	}
	return f32
}

// specials holds the float values whose bit patterns sit at the edges of the
// exponent range.
var specials = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
	math.Float32frombits(0x7fc00001), math.Float32frombits(0xffbfffff), // quiet and signalling NaN payloads
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-40, // subnormals
	math.MaxFloat32, -math.MaxFloat32, 6e-8, 65504, // F16 edges
}

// testInputs returns named inputs of the given dtype covering sizes around
// the chunk boundary, special values and each kind of block statistics.
func testInputs(dtype string) map[string][]byte {
	size := dtypes[dtype].size
	r := rand.New(rand.NewPCG(1, uint64(size)))
	random := func(n int) []byte {
		b := make([]byte, n*size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	in := map[string][]byte{
		"empty":       {},
		"one":         random(1),
		"three":       random(3),
		"random1001":  random(1001),
		"zeros":       make([]byte, 777*size),
		"chunk":       random(chunkElems),
		"chunk+1":     random(chunkElems + 1),
		"2chunks+odd": random(2*chunkElems + 13),
	}
	if size >= 2 {
		var sp []float32
		for range 37 {
			sp = append(sp, specials...)
		}
		in["specials"] = encodeFloats(floatOf(dtype), sp)
		in["gaussian"] = encodeFloats(floatOf(dtype), gaussianF32(r, chunkElems+4099, 0.02))
	} else {
		// Skewed bytes, as in a mostly-false BOOL mask or small ints.
		b := make([]byte, 50000)
		for i := range b {
			if r.IntN(10) == 0 {
				b[i] = byte(r.IntN(4))
			}
		}
		in["skewed"] = b
	}
	return in
}

// floatOf maps a dtype to the float dtype of the same width, so integer
// dtypes are also tested with float-like bytes.
func floatOf(dtype string) string {
	switch dtypes[dtype].size {
	case 2:
		if dtype == "BF16" {
			return "BF16"
		}
		return "F16"
	case 4:
		return "F32"
	}
	return "F64"
}

func TestRoundTrip(t *testing.T) {
	for _, dtype := range allDTypes() {
		for name, src := range testInputs(dtype) {
			t.Run(dtype+"/"+name, func(t *testing.T) {
				n := len(src) / dtypes[dtype].size
				z, err := Compress(nil, src, dtype)
				if err != nil {
					t.Fatal(err)
				}
				max, err := MaxEncodedLen(dtype, n)
				if err != nil {
					t.Fatal(err)
				}
				if len(z) > max {
					t.Errorf("compressed %d bytes, MaxEncodedLen %d", len(z), max)
				}
				z2, err := Compress([]byte("prefix"), src, dtype)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(z2[6:], z) || string(z2[:6]) != "prefix" {
					t.Error("second Compress differs or clobbered dst")
				}
				got, err := Decompress([]byte("pre"), z, dtype, n)
				if err != nil {
					t.Fatal(err)
				}
				if string(got[:3]) != "pre" || !bytes.Equal(got[3:], src) {
					t.Fatalf("round trip differs (len %d, want %d)", len(got)-3, len(src))
				}
			})
		}
	}
}

// TestGolden pins the byte format described in FORMAT.md section 7.2.
func TestGolden(t *testing.T) {
	tests := []struct {
		dtype string
		src   []byte
		want  []byte
	}{{
		dtype: "BF16",
		src:   []byte{},
		want:  []byte{1, 1, 2, 0},
	}, {
		// 1.0 = 0x3f80 and -2.0 = 0xc000: exponents 0x7f, 0x80 in stream
		// 0, sign|mantissa 0x00, 0x80 in stream 1, both stored.
		dtype: "BF16",
		src:   []byte{0x80, 0x3f, 0x00, 0xc0},
		want:  []byte{1, 1, 2, 2, 0, 2, 0, 2, 0x7f, 0x80, 0x00, 0x80},
	}, {
		// -1.5 = 0xbfc00000: exponent 0x7f, sign|top mantissa 0xc0, the
		// low mantissa bytes 0 and 0 are constant blocks.
		dtype: "F32",
		src:   []byte{0, 0, 0xc0, 0xbf},
		want:  []byte{1, 2, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1, 0x7f, 0xc0, 0, 0},
	}, {
		// -1.5 = 0xbff8000000000000: exponent 0x3ff, so stream 0 is 0xff
		// and stream 1 is sign 0x80 | 3<<4 | top mantissa 0x8.
		dtype: "F64",
		src:   []byte{0, 0, 0, 0, 0, 0, 0xf8, 0xbf},
		want: []byte{1, 3, 8, 1, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1,
			0xff, 0xb8, 0, 0, 0, 0, 0, 0},
	}, {
		// Plane layout: stream k holds byte k of each element.
		dtype: "I16",
		src:   []byte{1, 2, 3, 2},
		want:  []byte{1, 0, 2, 2, 0, 2, 4, 1, 1, 3, 2},
	}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%x", tt.dtype, tt.src), func(t *testing.T) {
			got, err := Compress(nil, tt.src, tt.dtype)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Compress = % x\nwant       % x", got, tt.want)
			}
		})
	}
}

// blockMethods returns the method of every block of z.
func blockMethods(t *testing.T, z []byte, dtype string, n int) []method {
	t.Helper()
	f := dtypes[dtype]
	off, _, err := parseHeader(z, f, n)
	if err != nil {
		t.Fatal(err)
	}
	var ms []method
	for range numChunks(n) * f.size {
		ms = append(ms, method(z[off]))
		_, w := uvarint(z[off+1:])
		off += 1 + w
	}
	return ms
}

// TestMethods checks that each method is chosen for the data it suits, so
// that every decoder path is exercised by the round trip.
func TestMethods(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	fill := func(n int, f func(i int) byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = f(i)
		}
		return b
	}
	tests := []struct {
		name string
		src  []byte
		want method
	}{
		{"constant", fill(5000, func(int) byte { return 9 }), methodConstant},
		{"uniform", fill(5000, func(int) byte { return byte(r.Uint32()) }), methodStored},
		// 16 equally likely symbols: Huffman codes them in exactly 4 bits.
		{"16 symbols", fill(20000, func(int) byte { return byte(r.IntN(16)) }), methodHuff0},
		// One symbol at 97 %: Huffman cannot go below 1 bit, fse can.
		{"skewed", fill(20000, func(int) byte {
			if r.IntN(100) < 97 {
				return 0
			}
			return byte(1 + r.IntN(3))
		}), methodFSE},
		// A random 1 KiB pattern repeated: only zstd finds the repeats.
		{"periodic", func() []byte {
			p := fill(1024, func(int) byte { return byte(r.Uint32()) })
			return bytes.Repeat(p, 20)
		}(), methodZstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := Compress(nil, tt.src, "U8")
			if err != nil {
				t.Fatal(err)
			}
			if ms := blockMethods(t, z, "U8", len(tt.src)); len(ms) != 1 || ms[0] != tt.want {
				t.Errorf("methods %v, want [%d]", ms, tt.want)
			}
			got, err := Decompress(nil, z, "U8", len(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.src) {
				t.Error("round trip differs")
			}
		})
	}
}

func TestCompressErrors(t *testing.T) {
	tests := []struct {
		dtype string
		n     int
		want  error
	}{
		{"F4", 4, ErrDType},
		{"f32", 4, ErrDType},
		{"", 0, ErrDType},
		{"F32", 6, ErrLength},
		{"BF16", 3, ErrLength},
		{"I64", 12, ErrLength},
	}
	for _, tt := range tests {
		_, err := Compress(nil, make([]byte, tt.n), tt.dtype)
		if !errors.Is(err, tt.want) {
			t.Errorf("Compress(%d bytes, %q) = %v, want %v", tt.n, tt.dtype, err, tt.want)
		}
	}
	if _, err := MaxEncodedLen("F32", -1); !errors.Is(err, ErrLength) {
		t.Errorf("MaxEncodedLen(-1) = %v, want ErrLength", err)
	}
	if _, err := MaxEncodedLen("F32", math.MaxInt/4); !errors.Is(err, ErrLength) {
		t.Errorf("MaxEncodedLen(huge) = %v, want ErrLength", err)
	}
	if _, err := MaxEncodedLen("X", 1); !errors.Is(err, ErrDType) {
		t.Errorf("MaxEncodedLen(X) = %v, want ErrDType", err)
	}
}

func TestDecompressErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	src := encodeFloats("BF16", gaussianF32(r, 3000, 0.05))
	good, err := Compress(nil, src, "BF16")
	if err != nil {
		t.Fatal(err)
	}
	// good is: 01 01 02 | b8 17 (3000) | desc0 | desc1 | payloads.
	edit := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(good))
	}
	tests := []struct {
		name    string
		src     []byte
		dtype   string
		n       int
		want    error
		wantOff int // checked when want is ErrCorrupt
	}{
		{"ok", good, "BF16", 3000, nil, 0},
		{"unknown dtype", good, "Q8", 3000, ErrDType, 0},
		{"negative n", good, "BF16", -1, ErrLength, 0},
		{"huge n", good, "BF16", math.MaxInt/2 + 1, ErrLength, 0},
		{"empty", nil, "BF16", 0, ErrCorrupt, 0},
		{"version", edit(func(b []byte) []byte { b[0] = 2; return b }), "BF16", 3000, ErrCorrupt, 0},
		{"dtype F16", good, "F16", 3000, ErrCorrupt, 1},
		{"dtype I32", good, "I32", 1500, ErrCorrupt, 1},
		{"stream count", edit(func(b []byte) []byte { b[2] = 3; return b }), "BF16", 3000, ErrCorrupt, 2},
		{"n mismatch", good, "BF16", 2999, ErrCorrupt, 3},
		{"n beyond input", append(binary.AppendUvarint([]byte{1, 1, 2}, 1<<40), good[5:15]...), "BF16", 1 << 40, ErrCorrupt, 9},
		{"count varint", edit(func(b []byte) []byte { return append(b[:3], 0x80) }), "BF16", 3000, ErrCorrupt, 3},
		{"non-minimal count", append([]byte{1, 1, 2, 0x80, 0x00}, good[5:]...), "BF16", 0, ErrCorrupt, 3},
		{"bad method", edit(func(b []byte) []byte { b[5] = 9; return b }), "BF16", 3000, ErrCorrupt, 5},
		{"stored length", edit(func(b []byte) []byte { b[5] = byte(methodStored); return b }), "BF16", 3000, ErrCorrupt, 6},
		{"trailing byte", append(bytes.Clone(good), 0), "BF16", 3000, ErrCorrupt, -1},
		{"truncated", good[:len(good)-1], "BF16", 3000, ErrCorrupt, -1},
		{"descriptors truncated", good[:7], "BF16", 3000, ErrCorrupt, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := Decompress(dst, tt.src, tt.dtype, tt.n)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				if string(got) != "keep" {
					t.Errorf("dst changed to %q on error", got)
				}
				var ce *CorruptError
				if tt.want == ErrCorrupt && tt.wantOff >= 0 && (!errors.As(err, &ce) || ce.Offset != tt.wantOff) {
					t.Errorf("err = %v, want offset %d", err, tt.wantOff)
				}
				return
			}
			if !bytes.Equal(got[4:], src) {
				t.Error("round trip differs")
			}
		})
	}
}

// TestCorruption flips bits in and truncates valid data of every method:
// decoding must return an error or exactly n elements, never panic. Every
// bit of the header, descriptors and payload starts is flipped, where the
// entropy coders keep their tables; deeper payload bits are sampled.
func TestCorruption(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	periodic := bytes.Repeat([]byte("0123456789abcdefghij"), 100)
	inputs := []struct {
		dtype string
		src   []byte
	}{
		{"BF16", encodeFloats("BF16", gaussianF32(r, 1000, 0.03))},
		{"F32", encodeFloats("F32", gaussianF32(r, 1000, 0.03))},
		{"BF16", append(periodic, periodic...)},
		{"U8", bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 3, 0}, 100)},
	}
	var errs, oks int
	for _, in := range inputs {
		z, err := Compress(nil, in.src, in.dtype)
		if err != nil {
			t.Fatal(err)
		}
		n := len(in.src) / dtypes[in.dtype].size
		check := func(c []byte) {
			got, err := Decompress(nil, c, in.dtype, n)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not match ErrCorrupt", err)
				}
				errs++
				return
			}
			oks++
			if len(got) != len(in.src) {
				t.Fatalf("decoded %d bytes, want %d", len(got), len(in.src))
			}
		}
		for l := range len(z) {
			check(z[:l])
		}
		c := bytes.Clone(z)
		for bit := 0; bit < 8*len(z); bit++ {
			if bit >= 8*96 {
				bit += r.IntN(64)
				if bit >= 8*len(z) {
					break
				}
			}
			c[bit/8] ^= 1 << (bit % 8)
			check(c)
			c[bit/8] ^= 1 << (bit % 8)
		}
	}
	t.Logf("%d corrupt inputs rejected, %d decoded to the right length", errs, oks)
	if errs == 0 {
		t.Error("no corruption was detected")
	}
}

// uvarintInt reads the element count from a compressed header.
func uvarintInt(b []byte) (int, int) {
	v, w := uvarint(b)
	return int(v), w
}

func TestConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	src := encodeFloats("F32", gaussianF32(r, chunkElems+100, 0.1))
	want, err := Compress(nil, src, "F32")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				z, err := Compress(nil, src, "F32")
				if err != nil || !bytes.Equal(z, want) {
					t.Errorf("concurrent Compress differs (err %v)", err)
					return
				}
				got, err := Decompress(nil, z, "F32", len(src)/4)
				if err != nil || !bytes.Equal(got, src) {
					t.Errorf("concurrent Decompress differs (err %v)", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestEntropyBound(t *testing.T) {
	logs := []struct {
		x    uint64
		want uint64
	}{
		{1, 0},
		{2, 1 << log2FracBits},
		{3, 103872},    // log2(3) = 1.5849625 -> floor(1.5849625 * 65536)
		{1000, 653117}, // floor(log2(1000) * 65536)
		{chunkElems, 17 << log2FracBits},
		{1<<63 + 1, 63 << log2FracBits},
	}
	for _, tt := range logs {
		if got := log2Fixed(tt.x); got != tt.want {
			t.Errorf("log2Fixed(%d) = %d, want %d", tt.x, got, tt.want)
		}
	}
	uniform := make([]byte, 1024)
	for i := range uniform {
		uniform[i] = byte(i)
	}
	quarter := bytes.Repeat([]byte{0, 0, 1, 2}, 200) // 1.5 bits per symbol
	tests := []struct {
		name string
		p    []byte
		want int
	}{
		{"constant", make([]byte, 100), 0},
		{"uniform", uniform, 1024},
		{"two symbols", bytes.Repeat([]byte{7, 9}, 400), 100},
		{"quarter", quarter, 150},
	}
	for _, tt := range tests {
		if got := entropyBound(tt.p); got != tt.want {
			t.Errorf("entropyBound(%s) = %d, want %d", tt.name, got, tt.want)
		}
	}
}
