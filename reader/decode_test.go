package reader_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/nwcodec/nwc/codec"
	_ "github.com/nwcodec/nwc/codec/neural/nwcenc" // encoders for the test files
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// A tensorSpec is one tensor of the test file.
type tensorSpec struct {
	name  string
	codec string
	dt    format.DType
	shape []uint64
	opts  codec.EncodeOptions
}

// everyCodec has one tensor per codec and several dtypes, most of them in
// many small chunk groups so that row ranges start and end inside groups.
var everyCodec = []tensorSpec{
	{"raw.f32", codec.Raw, format.F32, []uint64{37, 29}, codec.EncodeOptions{GroupBytes: 1000}},
	{"raw.bf16", codec.Raw, format.BF16, []uint64{37, 29}, codec.EncodeOptions{GroupBytes: 640}},
	{"raw.f64", codec.Raw, format.F64, []uint64{5, 7, 3}, codec.EncodeOptions{GroupBytes: 200}},
	{"raw.i32", codec.Raw, format.I32, []uint64{9, 4}, codec.EncodeOptions{GroupBytes: 40}},
	{"raw.empty", codec.Raw, format.F16, []uint64{0, 5}, codec.EncodeOptions{}},
	{"lossless.bf16", codec.Lossless, format.BF16, []uint64{37, 29}, codec.EncodeOptions{GroupBytes: 500}},
	{"lossless.f16", codec.Lossless, format.F16, []uint64{20, 30}, codec.EncodeOptions{GroupBytes: 300}},
	{"ecsq.f32", "ecsq", format.F32, []uint64{48, 24}, codec.EncodeOptions{GroupBytes: 512}},
	{"tcq.bf16", "tcq", format.BF16, []uint64{48, 24}, codec.EncodeOptions{GroupBytes: 512}},
	{"rtn.f16", "rtn", format.F16, []uint64{33, 40}, codec.EncodeOptions{Bits: 3, Group: 16, GroupBytes: 400}},
	{"q4k.f32", "q4k", format.F32, []uint64{20, 64}, codec.EncodeOptions{}},
	{"nwc.bf16", "nwc", format.BF16, []uint64{32, 32}, codec.EncodeOptions{GroupBytes: 512}},
	{"nwc.f32.ragged", "nwc", format.F32, []uint64{37, 29}, codec.EncodeOptions{GroupBytes: 2000}},
	{"nwc.f16.levels", "nwc", format.F16, []uint64{50, 3}, codec.EncodeOptions{GroupBytes: 200, Levels: []uint8{0, 2, 0}}},
}

// weights returns deterministic heavy-tailed values.
func weights(seed uint64, n uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.05 * rng.NormFloat64() * rng.NormFloat64())
	}
	return x
}

func buildFile(t testing.TB, specs []tensorSpec, wopts *writer.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := writer.New(&buf, wopts)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		n := uint64(1)
		for _, d := range s.shape {
			n *= d
		}
		data, err := dtype.FromFloat32(nil, weights(uint64(i), n), s.dt)
		if err != nil {
			t.Fatal(err)
		}
		if s.dt == format.I32 {
			data = data[:0]
			for j := uint64(0); j < n; j++ {
				data = binary.LittleEndian.AppendUint32(data, uint32(int32(j*1000003)))
			}
		}
		tt := &codec.Tensor{Name: s.name, DType: s.dt, Shape: s.shape, Data: data}
		if err := w.WriteTensor(tt, s.codec, &s.opts); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBytes(t testing.TB, b []byte, opts *reader.Options) *reader.Reader {
	t.Helper()
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var outputTypes = []format.DType{format.F32, format.F16, format.BF16}

// TestDecodeInto decodes every tensor, whole and by row ranges, into
// buffers of every output dtype, and compares with the full decode
// converted by package dtype.
func TestDecodeInto(t *testing.T) {
	b := buildFile(t, everyCodec, nil)
	ctx := context.Background()
	for _, conc := range []int{1, 3} {
		r := openBytes(t, b, &reader.Options{Concurrency: conc})
		for _, tt := range r.Tensors() {
			full, err := tt.Bytes()
			if err != nil {
				t.Fatalf("%s: %v", tt.Name(), err)
			}
			for _, dt := range append(outputTypes, tt.DType()) {
				want, err := dtype.Convert(nil, dt, full, tt.DType())
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(want))
				if err := tt.DecodeInto(ctx, got, dt); err != nil {
					t.Fatalf("%s as %s: %v", tt.Name(), dt, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s as %s: DecodeInto differs from Bytes + dtype.Convert", tt.Name(), dt)
				}
				named := map[format.DType]func(context.Context, []byte) error{format.BF16: tt.BF16Into, format.F16: tt.F16Into}
				if into := named[dt]; into != nil {
					clear(got)
					if err := into(ctx, got); err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%s: %sInto differs from DecodeInto (%v)", tt.Name(), dt, err)
					}
				}
				rowBytes := tt.Cols() * uint64(dt.Size())
				for r0 := uint64(0); r0 <= tt.Rows(); r0 += 4 {
					for r1 := r0; r1 <= tt.Rows(); r1 += 7 {
						part := make([]byte, (r1-r0)*rowBytes)
						if err := tt.DecodeRowsInto(ctx, r0, r1, part, dt); err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(part, want[r0*rowBytes:r1*rowBytes]) {
							t.Fatalf("%s as %s: rows [%d, %d) differ", tt.Name(), dt, r0, r1)
						}
					}
				}
			}
			wantF, _ := dtype.ToFloat32(nil, full, tt.DType())
			gotF := make([]float32, len(wantF))
			if err := tt.Float32Into(ctx, gotF); err != nil {
				t.Fatal(err)
			}
			if !sameFloats(gotF, wantF) {
				t.Fatalf("%s: Float32Into differs", tt.Name())
			}
			if tt.Rows() >= 3 {
				part := make([]float32, 2*tt.Cols())
				if err := tt.RowsFloat32Into(ctx, 1, 3, part); err != nil {
					t.Fatal(err)
				}
				if !sameFloats(part, wantF[tt.Cols():3*tt.Cols()]) {
					t.Fatalf("%s: RowsFloat32Into differs", tt.Name())
				}
			}
		}
	}
}

// sameFloats compares bit patterns (NaN included).
func sameFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestDecodeConversions pins what the conversions are, element by element:
// BF16 widens to F32 exactly; F32 narrows to BF16 and F16 rounding to
// nearest even; F64 narrows to BF16 in one rounding.
func TestDecodeConversions(t *testing.T) {
	b := buildFile(t, everyCodec, nil)
	r := openBytes(t, b, nil)
	ctx := context.Background()
	le := binary.LittleEndian

	bf, _ := r.Tensor("lossless.bf16")
	src, _ := bf.Bytes()
	f32 := make([]byte, 2*len(src))
	if err := bf.DecodeInto(ctx, f32, format.F32); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(src)/2; i++ {
		if got, want := le.Uint32(f32[4*i:]), uint32(le.Uint16(src[2*i:]))<<16; got != want {
			t.Fatalf("BF16 %#04x → F32 %#08x, want %#08x", le.Uint16(src[2*i:]), got, want)
		}
	}

	ft, _ := r.Tensor("ecsq.f32")
	vals, _ := ft.Float32()
	half := make([]byte, 2*len(vals))
	if err := ft.DecodeInto(ctx, half, format.BF16); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if got, want := le.Uint16(half[2*i:]), dtype.BF16FromFloat32(v); got != want {
			t.Fatalf("F32 %g → BF16 %#04x, want %#04x", v, got, want)
		}
	}
	if err := ft.DecodeInto(ctx, half, format.F16); err != nil {
		t.Fatal(err)
	}
	want16, _ := dtype.FromFloat32(nil, vals, format.F16)
	if !bytes.Equal(half, want16) {
		t.Fatal("F32 → F16 differs from dtype.FromFloat32")
	}

	dt, _ := r.Tensor("raw.f64")
	src, _ = dt.Bytes()
	out := make([]byte, len(src)/4)
	if err := dt.DecodeInto(ctx, out, format.BF16); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(src)/8; i++ {
		x := math.Float64frombits(le.Uint64(src[8*i:]))
		if got, want := le.Uint16(out[2*i:]), dtype.BF16FromFloat32(dtype.RoundToOddFloat32(x)); got != want {
			t.Fatalf("F64 %g → BF16 %#04x, want %#04x", x, got, want)
		}
	}
}

// TestDecodeIntoErrors: a buffer of the wrong length, rows out of range or
// an output dtype the reader does not produce give an error, not a panic,
// and leave the buffer alone.
func TestDecodeIntoErrors(t *testing.T) {
	b := buildFile(t, everyCodec[:1], nil)
	r := openBytes(t, b, nil)
	tt, _ := r.Tensor("raw.f32")
	ctx := context.Background()
	n := int(tt.NumElements())
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"short bytes", func() error { return tt.DecodeInto(ctx, make([]byte, 4*n-1), format.F32) }},
		{"long bytes", func() error { return tt.DecodeInto(ctx, make([]byte, 2*n+2), format.BF16) }},
		{"nil bytes", func() error { return tt.DecodeInto(ctx, nil, format.F32) }},
		{"short float32", func() error { return tt.Float32Into(ctx, make([]float32, n-1)) }},
		{"rows length", func() error { return tt.DecodeRowsInto(ctx, 0, 2, make([]byte, 4*n), format.F32) }},
		{"rows float32 length", func() error { return tt.RowsFloat32Into(ctx, 0, 1, make([]float32, n)) }},
		{"rows backwards", func() error { return tt.DecodeRowsInto(ctx, 3, 2, nil, format.F32) }},
		{"rows past the end", func() error { return tt.RowsFloat32Into(ctx, 0, tt.Rows()+1, nil) }},
	} {
		if err := c.call(); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	dst := make([]byte, n)
	if err := tt.DecodeInto(ctx, dst, format.I8); !errors.Is(err, format.ErrUnsupported) {
		t.Errorf("I8 output: %v", err)
	}
	if !bytes.Equal(dst, make([]byte, n)) {
		t.Error("a refused call wrote to dst")
	}
	if _, err := tt.Open(ctx, format.U8); !errors.Is(err, format.ErrUnsupported) {
		t.Errorf("U8 stream: %v", err)
	}
}

// TestStream reads every tensor as a stream in every output dtype, in
// small reads, and checks the bytes and the io.Reader contract.
func TestStream(t *testing.T) {
	b := buildFile(t, everyCodec, nil)
	r := openBytes(t, b, &reader.Options{Concurrency: 2})
	ctx := context.Background()
	for _, tt := range r.Tensors() {
		full, _ := tt.Bytes()
		for _, dt := range append(outputTypes, tt.DType()) {
			want, _ := dtype.Convert(nil, dt, full, tt.DType())
			rc, err := tt.Open(ctx, dt)
			if err != nil {
				t.Fatal(err)
			}
			if err := iotest.TestReader(rc, want); err != nil {
				t.Fatalf("%s as %s: %v", tt.Name(), dt, err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			rc, _ = tt.Open(ctx, dt)
			got, err := io.ReadAll(iotest.OneByteReader(rc))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s as %s: one byte at a time: %d bytes, %v", tt.Name(), dt, len(got), err)
			}
			rc.Close()
			if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("read after Close: %v", err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		}
	}
}

// TestStreamMemory: a stream reads no further ahead than its bound, and
// Close stops it.
func TestStreamMemory(t *testing.T) {
	spec := tensorSpec{"big", codec.Raw, format.F32, []uint64{64, 64}, codec.EncodeOptions{GroupBytes: 1024}}
	b := buildFile(t, []tensorSpec{spec}, nil)
	cr := &countingReaderAt{r: bytes.NewReader(b)}
	r, err := reader.NewReader(cr, int64(len(b)), &reader.Options{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	tt, _ := r.Tensor("big")
	if n := len(tt.Entry().Groups); n != 16 {
		t.Fatalf("%d groups, want 16", n)
	}
	before := cr.bytes.Load()
	rc, _ := tt.Open(context.Background(), format.F32)
	if _, err := rc.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	// Concurrency 2: the group being read and one ahead.
	if got := cr.bytes.Load() - before; got > 2*1024 {
		t.Fatalf("stream read %d bytes ahead, want at most 2 groups (2048)", got)
	}
}

// cancelAfter cancels a context after a number of reads, which may come
// from several goroutines at once.
type cancelAfter struct {
	r      io.ReaderAt
	n      int64
	cancel context.CancelFunc
	reads  atomic.Int64
}

func (c *cancelAfter) ReadAt(p []byte, off int64) (int, error) {
	if c.reads.Add(1) == c.n {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}

// TestContext: a done context stops decoding, streaming and Verify between
// chunk groups, and its error is returned.
func TestContext(t *testing.T) {
	spec := tensorSpec{"big", codec.Lossless, format.BF16, []uint64{64, 64}, codec.EncodeOptions{GroupBytes: 512}}
	b := buildFile(t, []tensorSpec{spec}, nil)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	r := openBytes(t, b, nil)
	tt, _ := r.Tensor("big")
	n := tt.NumElements()
	if err := tt.DecodeInto(done, make([]byte, 2*n), format.BF16); !errors.Is(err, context.Canceled) {
		t.Errorf("DecodeInto: %v", err)
	}
	if err := tt.Float32Into(done, make([]float32, n)); !errors.Is(err, context.Canceled) {
		t.Errorf("Float32Into: %v", err)
	}
	if _, err := tt.RawBytes(done); !errors.Is(err, context.Canceled) {
		t.Errorf("RawBytes: %v", err)
	}
	if err := r.Verify(done, &reader.VerifyOptions{Deep: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify: %v", err)
	}
	rc, err := tt.Open(done, format.F32)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Errorf("stream: %v", err)
	}
	rc.Close()

	// Cancelled while decoding: the reads stop soon after.
	for _, conc := range []int{1, 4} {
		ctx, cancel := context.WithCancel(context.Background())
		ca := &cancelAfter{r: bytes.NewReader(b), n: 5, cancel: cancel}
		r, err := reader.NewReader(ca, int64(len(b)), &reader.Options{Concurrency: conc})
		if err != nil {
			t.Fatal(err)
		}
		tt, _ := r.Tensor("big")
		groups := len(tt.Entry().Groups)
		opened := ca.reads.Load()
		if err := tt.DecodeInto(ctx, make([]byte, 2*n), format.BF16); !errors.Is(err, context.Canceled) {
			t.Errorf("concurrency %d: %v", conc, err)
		}
		if got := ca.reads.Load() - opened; got >= int64(groups) {
			t.Errorf("concurrency %d: read %d of %d groups after cancelling", conc, got, groups)
		}
	}
}

// TestDamagedGroup: a damaged byte in a group is a checksum error from
// every way of decoding it.
func TestDamagedGroup(t *testing.T) {
	b := buildFile(t, everyCodec[:1], nil)
	r := openBytes(t, b, nil)
	tt, _ := r.Tensor("raw.f32")
	g := tt.Entry().Groups[1]
	bad := bytes.Clone(b)
	bad[g.Offset+3] ^= 1
	r = openBytes(t, bad, nil)
	tt, _ = r.Tensor("raw.f32")
	ctx := context.Background()
	n := tt.NumElements()
	if err := tt.DecodeInto(ctx, make([]byte, 4*n), format.F32); !errors.Is(err, format.ErrChecksum) {
		t.Errorf("DecodeInto: %v", err)
	}
	if err := tt.DecodeInto(ctx, make([]byte, 2*n), format.BF16); !errors.Is(err, format.ErrChecksum) {
		t.Errorf("DecodeInto BF16: %v", err)
	}
	rc, _ := tt.Open(ctx, format.F32)
	if _, err := io.ReadAll(rc); !errors.Is(err, format.ErrChecksum) {
		t.Errorf("stream: %v", err)
	}
	rc.Close()
	if err := tt.DecodeRowsInto(ctx, 0, 1, make([]byte, 4*tt.Cols()), format.F32); err != nil {
		t.Errorf("row 0 lies in the intact group 0: %v", err)
	}
}

// TestReturnedValuesAreCopies changes everything the accessors return and
// checks that the Reader did not change.
func TestReturnedValuesAreCopies(t *testing.T) {
	var buf bytes.Buffer
	w, _ := writer.New(&buf, nil)
	w.SetMetadata(map[string]string{"format": "pt"})
	data := make([]byte, 4*6)
	data[4] = 1
	w.WriteTensor(&codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{2, 3}, Data: data}, codec.Raw, nil)
	lossy, _ := dtype.FromFloat32(nil, weights(1, 16*8), format.F32)
	if err := w.WriteTensor(&codec.Tensor{Name: "lossy", DType: format.F32, Shape: []uint64{16, 8}, Data: lossy}, "ecsq", nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := openBytes(t, buf.Bytes(), nil)
	tt, _ := r.Tensor("w")
	lt, _ := r.Tensor("lossy")
	wantIndex, wantEntry, wantMD := r.Index(), tt.Entry(), r.Metadata()
	wantLossy := lt.Entry()
	if len(wantLossy.Aux) == 0 || wantLossy.Aux[0].Inline == nil || wantLossy.Params == nil {
		t.Fatalf("want a tensor with params and inline aux data, have %+v", wantLossy)
	}
	wantBytes, _ := tt.Bytes()

	ts := r.Tensors()
	ts[0] = nil
	x := r.Index()
	x.Tensors[0].Groups[0].Offset = 1
	x.Tensors[0].Shape[0] = 9
	x.Tensors[0].Name = "changed"
	x.Metadata["format"] = "changed"
	x.Tensors = nil
	e := tt.Entry()
	e.Shape[0] = 9
	e.Groups[0].Length = 1
	e.View[0] = 9
	le := lt.Entry()
	le.Aux[0].Inline[0] ^= 1
	le.Params[0] ^= 1
	md := r.Metadata()
	md["format"] = "changed"
	md["new"] = "x"
	sh := tt.Shape()
	sh[0] = 9

	if r.Tensors()[0] == nil {
		t.Error("Tensors returned the Reader's own slice")
	}
	if diff := cmp.Diff(wantIndex, r.Index()); diff != "" {
		t.Errorf("Index changed:\n%s", diff)
	}
	if diff := cmp.Diff(wantEntry, tt.Entry()); diff != "" {
		t.Errorf("Entry changed:\n%s", diff)
	}
	if diff := cmp.Diff(wantLossy, lt.Entry()); diff != "" {
		t.Errorf("Entry changed through its aux data or params:\n%s", diff)
	}
	if diff := cmp.Diff(wantMD, r.Metadata()); diff != "" {
		t.Errorf("Metadata changed:\n%s", diff)
	}
	if tt.Shape()[0] != 2 {
		t.Error("Shape changed")
	}
	if got, err := tt.Bytes(); err != nil || !bytes.Equal(got, wantBytes) {
		t.Errorf("decoding after the changes: %v", err)
	}
}

// TestDecodeIntoAllocations: decoding into the caller's buffer allocates
// per chunk group, never a copy of the whole tensor, whether it converts
// or not.
func TestDecodeIntoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	specs := []tensorSpec{
		{"raw", codec.Raw, format.F32, []uint64{256, 256}, codec.EncodeOptions{GroupBytes: 16 << 10}},
		{"lossless", codec.Lossless, format.BF16, []uint64{256, 256}, codec.EncodeOptions{GroupBytes: 16 << 10}},
	}
	r := openBytes(t, buildFile(t, specs, nil), &reader.Options{Concurrency: 1})
	ctx := context.Background()
	for _, tt := range r.Tensors() {
		for _, dt := range []format.DType{tt.DType(), format.F32, format.BF16} {
			dst := make([]byte, tt.NumElements()*uint64(dt.Size()))
			if err := tt.DecodeInto(ctx, dst, dt); err != nil { // warms the decoder and the pools
				t.Fatal(err)
			}
			// The least of a few runs: a collection during one empties
			// the buffer pools, and other goroutines count too.
			got := uint64(math.MaxUint64)
			for range 5 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if err := tt.DecodeInto(ctx, dst, dt); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&after)
				got = min(got, after.TotalAlloc-before.TotalAlloc)
			}
			t.Logf("%s as %s: %d bytes allocated for %d decoded", tt.Name(), dt, got, len(dst))
			if got > uint64(len(dst))/4 {
				t.Errorf("%s as %s: allocated %d bytes decoding %d", tt.Name(), dt, got, len(dst))
			}
		}
	}
}
