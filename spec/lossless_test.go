package spec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/klauspost/compress/fse"
	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"

	"github.com/nwcodec/nwc/codec/lossless"
	"github.com/nwcodec/nwc/safetensors"
)

// losslessDTypeNames lists the dtypes of FORMAT.md §7.2 in a fixed order.
func losslessDTypeNames() []string {
	var s []string
	for k := range losslessDTypes {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// splitElements is the encoder's side of the layouts of FORMAT.md §7.2,
// written from the text: element i of data contributes byte i of each of
// the w returned streams.
func splitElements(dtype string, data []byte) [][]byte {
	layout, w := losslessDTypes[dtype][0], losslessDTypes[dtype][1]
	n := len(data) / w
	s := make([][]byte, w)
	for k := range s {
		s[k] = make([]byte, n)
	}
	for i := range n {
		b := data[i*w : (i+1)*w]
		switch layout {
		case losslessBF16:
			v := binary.LittleEndian.Uint16(b)
			s[0][i] = byte(v >> 7)
			s[1][i] = byte(v>>8)&0x80 | byte(v)&0x7F
		case losslessF32:
			v := binary.LittleEndian.Uint32(b)
			s[0][i] = byte(v >> 23)
			s[1][i] = byte(v>>24)&0x80 | byte(v>>16)&0x7F
			s[2][i] = byte(v >> 8)
			s[3][i] = byte(v)
		case losslessF64:
			v := binary.LittleEndian.Uint64(b)
			e := v >> 52 & 0x7FF
			s[0][i] = byte(e)
			s[1][i] = byte(v>>56)&0x80 | byte(e>>8)<<4 | byte(v>>48)&0x0F
			for k := 2; k < 8; k++ {
				s[k][i] = byte(v >> (8 * (7 - k)))
			}
		default:
			for k := range w {
				s[k][i] = b[k]
			}
		}
	}
	return s
}

// A coder codes one block with a given method; ok is false when the method
// cannot code it (a coder's own refusal, or a payload not shorter than the
// block), and the block is then stored.
type coder func(block []byte) (method int, payload []byte, ok bool)

// buildFrame codes data, whole elements of dtype, as a lossless frame
// with every block coded by code.
func buildFrame(t testing.TB, dtype string, data []byte, code coder) []byte {
	t.Helper()
	w := losslessDTypes[dtype][1]
	n := len(data) / w
	frame := []byte{losslessVersion, byte(losslessDTypes[dtype][0]), byte(w)}
	frame = binary.AppendUvarint(frame, uint64(n))
	var payloads []byte
	for c := 0; c < n; c += losslessChunk {
		m := min(losslessChunk, n-c)
		for _, block := range splitElements(dtype, data[c*w:(c+m)*w]) {
			method, p, ok := code(block)
			if !ok || (method != losslessConstant && method != losslessStored && len(p) >= m) {
				method, p = losslessStored, block
			}
			frame = append(frame, byte(method))
			frame = binary.AppendUvarint(frame, uint64(len(p)))
			payloads = append(payloads, p...)
		}
	}
	return append(frame, payloads...)
}

func storedCoder(b []byte) (int, []byte, bool) { return losslessStored, b, true }

func constantCoder(b []byte) (int, []byte, bool) {
	for _, v := range b {
		if v != b[0] {
			return 0, nil, false
		}
	}
	return losslessConstant, b[:1], true
}

// huff0Coder codes with huff0 at the given table log (0: the default).
func huff0Coder(tableLog uint8) coder {
	return func(b []byte) (int, []byte, bool) {
		s := &huff0.Scratch{TableLog: tableLog, Reuse: huff0.ReusePolicyNone}
		out, _, err := huff0.Compress4X(b, s)
		return losslessHuff0, bytes.Clone(out), err == nil
	}
}

// fseCoder codes with fse at the given table log (0: the default).
func fseCoder(tableLog uint8) coder {
	return func(b []byte) (int, []byte, bool) {
		out, err := fse.Compress(b, &fse.Scratch{TableLog: tableLog})
		return losslessFSE, bytes.Clone(out), err == nil
	}
}

// zstdCoder codes as the lossless writer does, and with a frame
// concatenation the writer never makes.
func zstdCoder(level zstd.EncoderLevel, split bool) coder {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(losslessChunk), zstd.WithEncoderCRC(!split), zstd.WithSingleSegment(!split))
	if err != nil {
		panic(err)
	}
	return func(b []byte) (int, []byte, bool) {
		if !split {
			return losslessZstd, enc.EncodeAll(b, nil), true
		}
		h := len(b) / 2
		return losslessZstd, enc.EncodeAll(b[h:], enc.EncodeAll(b[:h], nil)), true
	}
}

// allCoders names every way the tests code blocks.
func allCoders() map[string]coder {
	c := map[string]coder{
		"stored":     storedCoder,
		"constant":   constantCoder,
		"huff0":      huff0Coder(0),
		"fse":        fseCoder(0),
		"zstd":       zstdCoder(zstd.SpeedFastest, false),
		"zstd-split": zstdCoder(zstd.SpeedDefault, true),
	}
	for _, l := range []uint8{5, 6, 8, 9, 11} {
		c[fmt.Sprintf("huff0-log%d", l)] = huff0Coder(l)
	}
	for _, l := range []uint8{5, 7, 10, 12} {
		c[fmt.Sprintf("fse-log%d", l)] = fseCoder(l)
	}
	return c
}

// testData returns named inputs of dtype: random, structured and skewed
// bytes, float-like values and sizes around the chunk boundary.
func testData(dtype string, r *rand.Rand) map[string][]byte {
	w := losslessDTypes[dtype][1]
	random := func(n int) []byte {
		b := make([]byte, n*w)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	// skewed draws each byte from a geometric-like distribution whose
	// sharpness varies, which is what pushes fse to its extreme tables.
	skewed := func(n int, p float64) []byte {
		b := make([]byte, n*w)
		for i := range b {
			v := 0
			for v < 255 && r.Float64() < p {
				v++
			}
			b[i] = byte(v)
		}
		return b
	}
	floats := func(n int, sigma float64) []byte {
		b := make([]byte, n*w)
		for i := range n {
			x := r.NormFloat64() * sigma
			switch w {
			case 2:
				v := math.Float32bits(float32(x))
				binary.LittleEndian.PutUint16(b[2*i:], uint16(v>>16))
			case 4:
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(x)))
			case 8:
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(float64(float32(x))))
			default:
				b[i] = byte(int8(x * 30))
			}
		}
		return b
	}
	in := map[string][]byte{
		"empty":      {},
		"one":        random(1),
		"seven":      random(7),
		"random3000": random(3000),
		"zeros":      make([]byte, 513*w),
		"skew0.05":   skewed(5000, 0.05),
		"skew0.5":    skewed(20000, 0.5),
		"skew0.9":    skewed(20000, 0.9),
		"gauss":      floats(30000, 0.02),
		"gauss-wide": floats(4099, 3),
		"two-values": func() []byte {
			b := make([]byte, 4000*w)
			for i := range b {
				if r.IntN(50) == 0 {
					b[i] = 0x81
				}
			}
			return b
		}(),
	}
	if !testing.Short() {
		in["chunk+3"] = floats(losslessChunk+3, 0.01)
	}
	return in
}

// checkDecode decodes frame with both decoders and checks that they agree
// with each other and with want.
func checkDecode(t *testing.T, dtype string, frame, want []byte) {
	t.Helper()
	w := losslessDTypes[dtype][1]
	n := len(want) / w
	got, err := Lossless(dtype, uint64(n), frame)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("spec decodes %d bytes differing from the input", len(got))
	}
	fast, err := lossless.Decompress(nil, frame, dtype, n)
	if err != nil {
		t.Fatalf("codec/lossless: %v", err)
	}
	if !bytes.Equal(fast, want) {
		t.Fatal("codec/lossless decodes differently")
	}
}

// TestLosslessForcedMethods codes every input of every dtype with every
// method and checks that both decoders give the input back.
func TestLosslessForcedMethods(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	seen := map[string]int{}
	for _, dtype := range losslessDTypeNames() {
		data := testData(dtype, r)
		for name, code := range allCoders() {
			// Count which blocks really used the method, so that a coder
			// that always refuses cannot make the test pass vacuously.
			counting := func(b []byte) (int, []byte, bool) {
				m, p, ok := code(b)
				if ok && (m == losslessConstant || m == losslessStored || len(p) < len(b)) {
					seen[name]++
				}
				return m, p, ok
			}
			for dname, d := range data {
				t.Run(dtype+"/"+name+"/"+dname, func(t *testing.T) {
					checkDecode(t, dtype, buildFrame(t, dtype, d, counting), d)
				})
			}
		}
	}
	for name := range allCoders() {
		if seen[name] < 10 {
			t.Errorf("method %s coded only %d blocks", name, seen[name])
		}
	}
}

// TestLosslessWriterOutput decodes what codec/lossless writes.
func TestLosslessWriterOutput(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, dtype := range losslessDTypeNames() {
		for dname, d := range testData(dtype, r) {
			frame, err := lossless.Compress(nil, d, dtype)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(dtype+"/"+dname, func(t *testing.T) { checkDecode(t, dtype, frame, d) })
		}
	}
}

// TestLosslessHuffWeightModes checks that the huff0 inputs of the tests
// reach both kinds of Huffman tree description.
func TestLosslessHuffWeightModes(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var direct, compressed int
	for _, d := range testData("U8", r) {
		for _, l := range []uint8{0, 6, 11} {
			if _, p, ok := huff0Coder(l)(d); ok && len(p) > 0 {
				if p[0] >= huffDirectWeights {
					direct++
				} else {
					compressed++
				}
				got, err := huff0Decode4X(p, len(d))
				if err != nil || !bytes.Equal(got, d) {
					t.Fatalf("huff0 table log %d: %v", l, err)
				}
			}
		}
	}
	if direct == 0 || compressed == 0 {
		t.Fatalf("direct weights %d times, fse weights %d times", direct, compressed)
	}
}

// TestLosslessRealData decodes the writer's coding of every tensor of
// stories260K, as F32 and narrowed to BF16.
func TestLosslessRealData(t *testing.T) {
	ts := realTensors(t)
	if ts == nil {
		t.Skip("stories260K not available under ../shared/data")
	}
	for _, x := range ts {
		frame, err := lossless.Compress(nil, x.data, x.dtype)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(x.name, func(t *testing.T) { checkDecode(t, x.dtype, frame, x.data) })
	}
}

type realTensor struct {
	name, dtype string
	data        []byte
}

// realTensors returns the F32 tensors of stories260K and their BF16
// truncations, or nil when the shared data is not there (fuzz seeding
// falls back to synthetic data then).
func realTensors(tb testing.TB) []realTensor {
	path := filepath.Join("..", "..", "shared", "data", "stories260K", "stories260K.safetensors")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("CI is set but %s is missing", path)
		}
		return nil
	}
	f, err := safetensors.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []realTensor
	for _, ti := range f.Tensors() {
		if ti.DType != safetensors.F32 {
			continue
		}
		b, err := f.ReadTensor(ti.Name)
		if err != nil {
			tb.Fatal(err)
		}
		bf := make([]byte, len(b)/2)
		for i := range len(b) / 4 {
			copy(bf[2*i:], b[4*i+2:4*i+4])
		}
		out = append(out, realTensor{ti.Name, "F32", b}, realTensor{ti.Name + ".bf16", "BF16", bf})
	}
	return out
}

// frameCount returns the element count a frame claims, or false.
func frameCount(frame []byte) (uint64, bool) {
	if len(frame) <= losslessHeaderLen {
		return 0, false
	}
	n, _, err := losslessUvarint(frame[losslessHeaderLen:])
	return n, err == nil
}

// compareDecoders decodes frame with both decoders and reports any
// disagreement: both must fail, or both succeed with the same bytes.
func compareDecoders(t *testing.T, dtype string, n uint64, frame []byte) {
	t.Helper()
	got, err := Lossless(dtype, n, frame)
	if err != nil && !errors.Is(err, ErrFormat) {
		t.Fatalf("spec error %v is not ErrFormat", err)
	}
	fast, ferr := lossless.Decompress(nil, frame, dtype, int(n))
	if ferr != nil && !errors.Is(ferr, lossless.ErrCorrupt) {
		t.Fatalf("codec/lossless error %v is not ErrCorrupt", ferr)
	}
	switch {
	case err == nil && ferr != nil:
		t.Fatalf("spec accepts, codec/lossless rejects: %v", ferr)
	case err != nil && ferr == nil:
		t.Fatalf("codec/lossless accepts, spec rejects: %v", err)
	case err == nil && !bytes.Equal(got, fast):
		t.Fatal("decoders disagree")
	case err == nil && uint64(len(got)) != n*uint64(losslessDTypes[dtype][1]):
		t.Fatalf("decoded %d bytes for %d elements", len(got), n)
	}
}

// fuzzSeeds returns frames to start fuzzing from: the writer's coding of
// real tensors (cut to 400 elements to keep executions fast) or
// of synthetic data, and every forced method on small inputs.
func fuzzSeeds(tb testing.TB) (frames [][]byte, dtypes []string) {
	add := func(f []byte, dt string) {
		frames = append(frames, f)
		dtypes = append(dtypes, dt)
	}
	ts := realTensors(tb)
	if ts == nil {
		r := rand.New(rand.NewPCG(3, 4))
		for _, dt := range []string{"F32", "BF16"} {
			ts = append(ts, realTensor{"gauss", dt, testData(dt, r)["gauss"]})
		}
	}
	for _, x := range ts {
		w := losslessDTypes[x.dtype][1]
		d := x.data[:min(len(x.data), 400*w)]
		f, err := lossless.Compress(nil, d, x.dtype)
		if err != nil {
			tb.Fatal(err)
		}
		add(f, x.dtype)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, dt := range []string{"U8", "BF16", "F64"} {
		data := testData(dt, r)
		for _, name := range []string{"skew0.5", "skew0.9", "gauss-wide"} {
			d := data[name][:min(len(data[name]), 1000*losslessDTypes[dt][1])]
			for _, code := range []coder{huff0Coder(0), huff0Coder(6), fseCoder(0), fseCoder(5), zstdCoder(zstd.SpeedFastest, false)} {
				add(buildFrame(tb, dt, d, code), dt)
			}
		}
	}
	return frames, dtypes
}

// FuzzLosslessDifferential feeds mutated frames to both decoders, which
// must agree on whether a frame is valid and on what it decodes to.
func FuzzLosslessDifferential(f *testing.F) {
	frames, dts := fuzzSeeds(f)
	names := losslessDTypeNames()
	for i, fr := range frames {
		f.Add(fr, uint8(sort.SearchStrings(names, dts[i])))
	}
	f.Fuzz(func(t *testing.T, frame []byte, dt uint8) {
		dtype := names[int(dt)%len(names)]
		n, ok := frameCount(frame)
		// Larger counts are refused before any work that depends on them
		// (TestLosslessHugeCount); skipping them keeps executions fast.
		if !ok || n > 1<<18 {
			return
		}
		compareDecoders(t, dtype, n, frame)
	})
}

// TestLosslessTruncatedAndFlipped cuts valid frames at many lengths and
// flips bits of their headers, tables and payloads; the decoders must
// agree on each.
func TestLosslessTruncatedAndFlipped(t *testing.T) {
	frames, dts := fuzzSeeds(t)
	r := rand.New(rand.NewPCG(13, 14))
	for i, fr := range frames {
		if testing.Short() && i%4 != 0 {
			continue
		}
		n, _ := frameCount(fr)
		for range 40 {
			compareDecoders(t, dts[i], n, fr[:r.IntN(len(fr))])
		}
		// Every bit of the first 32 bytes (header, descriptors, the first
		// block's table), then random bits.
		for bit := range 8 * len(fr) {
			if bit >= 8*32 && r.IntN(8*len(fr)) >= 200 {
				continue
			}
			g := bytes.Clone(fr)
			g[bit/8] ^= 1 << (bit % 8)
			compareDecoders(t, dts[i], n, g)
		}
	}
}

// TestLosslessHostile checks that frames breaking each rule of the header
// and descriptors are rejected as ErrFormat.
func TestLosslessHostile(t *testing.T) {
	good := buildFrame(t, "F32", make([]byte, 40), constantCoder) // 10 zeros: 4 constant blocks
	tests := []struct {
		name  string
		dtype string
		n     uint64
		frame []byte
	}{
		{"empty", "F32", 10, nil},
		{"header only", "F32", 10, good[:3]},
		{"version 0", "F32", 10, append([]byte{0}, good[1:]...)},
		{"version 2", "F32", 10, append([]byte{2}, good[1:]...)},
		{"layout of BF16", "F32", 10, append([]byte{1, 1}, good[2:]...)},
		{"streams 8", "F32", 10, append([]byte{1, 2, 8}, good[3:]...)},
		{"count differs", "F32", 11, good},
		{"count not shortest", "F32", 10, append([]byte{1, 2, 4, 0x8a, 0x00}, good[4:]...)},
		{"count overflows", "F32", 10, []byte{1, 2, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"count truncated", "F32", 10, []byte{1, 2, 4, 0x80}},
		{"method 5", "F32", 10, append(append([]byte{}, good[:4]...), append([]byte{5}, good[5:]...)...)},
		{"trailing byte", "F32", 10, append(bytes.Clone(good), 0)},
		{"payload missing", "F32", 10, good[:len(good)-1]},
		{"constant of 2", "U8", 10, []byte{1, 0, 1, 10, 4, 2, 7, 7}},
		{"stored too short", "U8", 10, []byte{1, 0, 1, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"coded as long as block", "U8", 10, []byte{1, 0, 1, 10, 3, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"coded empty", "U8", 10, []byte{1, 0, 1, 10, 3, 0}},
		{"length not shortest", "U8", 2, []byte{1, 0, 1, 2, 4, 0x81, 0x00, 7}},
		{"length huge", "U8", 2, []byte{1, 0, 1, 2, 4, 0xff, 0xff, 0xff, 0xff, 0x0f, 7}},
		{"zstd garbage", "U8", 10, []byte{1, 0, 1, 10, 3, 4, 1, 2, 3, 4}},
		{"huff0 garbage", "U8", 20, append([]byte{1, 0, 1, 20, 1, 12}, bytes.Repeat([]byte{0x81}, 12)...)},
		{"fse garbage", "U8", 10, []byte{1, 0, 1, 10, 2, 4, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Lossless(tt.dtype, tt.n, tt.frame)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
			compareDecoders(t, tt.dtype, tt.n, tt.frame)
		})
	}
	if _, err := Lossless("F4", 0, []byte{1, 0, 1, 0}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown dtype: %v", err)
	}
}

// TestLosslessHugeCount checks that huge element counts that the frame's
// bytes cannot back are refused, by both decoders, without allocating for
// them.
func TestLosslessHugeCount(t *testing.T) {
	for _, n := range []uint64{1 << 30, 1 << 40, math.MaxUint64, losslessChunk * 3} {
		frame := binary.AppendUvarint([]byte{1, 3, 8}, n)
		frame = append(frame, 4, 1, 4, 1, 4, 1, 0, 0, 0) // three constant blocks, far too few
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Lossless("F64", n, frame)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("n=%d: got %v, want ErrFormat", n, err)
		}
		if a := after.TotalAlloc - before.TotalAlloc; a > 1<<16 {
			t.Fatalf("n=%d: allocated %d bytes for a %d-byte frame", n, a, len(frame))
		}
		if n > 1<<40 {
			continue
		}
		runtime.ReadMemStats(&before)
		_, err = lossless.Decompress(nil, frame, "F64", int(n))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, lossless.ErrCorrupt) {
			t.Fatalf("codec/lossless, n=%d: got %v, want ErrCorrupt", n, err)
		}
		if a := after.TotalAlloc - before.TotalAlloc; a > 1<<16 {
			t.Fatalf("codec/lossless, n=%d: allocated %d bytes for a %d-byte frame", n, a, len(frame))
		}
	}
}

// FuzzBlockDifferential is FuzzLosslessDifferential aimed at the block
// decoders: the input is one block's payload, placed in a one-block U8
// frame of m = len(payload) + 1 + extra bytes, so that mutations reach the
// fse and Huffman tables instead of breaking the frame around them.
func FuzzBlockDifferential(f *testing.F) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, name := range []string{"skew0.05", "skew0.5", "skew0.9", "two-values", "random3000"} {
		d := testData("U8", r)[name]
		for _, n := range []int{16, 200, 3000} {
			b := d[:min(n, len(d))]
			for _, code := range []coder{huff0Coder(0), huff0Coder(5), fseCoder(0), fseCoder(5), fseCoder(12)} {
				if m, p, ok := code(b); ok && len(p) < len(b) {
					f.Add(p, uint8(m), uint16(len(b)-len(p)-1))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, method uint8, extra uint16) {
		m := len(payload) + 1 + int(extra)
		if m > losslessChunk {
			return
		}
		frame := binary.AppendUvarint([]byte{losslessVersion, losslessPlanes, 1}, uint64(m))
		frame = append(frame, method%5)
		frame = binary.AppendUvarint(frame, uint64(len(payload)))
		compareDecoders(t, "U8", uint64(m), append(frame, payload...))
	})
}
