package neural_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/neural/nwcenc"
	"github.com/nwcodec/nwc/codec/neural/train"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
	"github.com/nwcodec/nwc/writer"
)

// gaussTensor returns a rows×cols f32 tensor of Gaussian weights whose
// column scales vary, like a real layer's.
func gaussTensor(name string, rows, cols int, seed uint64) *codec.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	scale := make([]float64, cols)
	for j := range scale {
		scale[j] = math.Exp(r.NormFloat64() * 0.5)
	}
	b := make([]byte, 0, 4*rows*cols)
	for i := range rows * cols {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(r.NormFloat64()*scale[i%cols])))
	}
	return &codec.Tensor{Name: name, DType: format.F32, Shape: []uint64{uint64(rows), uint64(cols)}, Data: b}
}

// roundTrip writes t with the nwc codec to an in-memory file and decodes
// it, returning the decoded bytes and the file size.
func roundTrip(t *testing.T, tt *codec.Tensor, opts *codec.EncodeOptions) ([]byte, int, *reader.Reader) {
	t.Helper()
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor(tt, neural.ID, opts); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := r.Tensor(tt.Name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rt.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return got, buf.Len(), r
}

func sqnr(t *testing.T, orig, dec []byte, dt format.DType) float64 {
	t.Helper()
	var se, ss float64
	for i := 0; i < len(orig); i += dt.Size() {
		x := float64(math.Float32frombits(binary.LittleEndian.Uint32(orig[i:])))
		y := float64(math.Float32frombits(binary.LittleEndian.Uint32(dec[i:])))
		se += (x - y) * (x - y)
		ss += x * x
	}
	return 10 * math.Log10(ss/se)
}

// TestRoundTrip codes tensors of awkward shapes through a real file and
// checks the quality against the uniform quantizer's high-rate theory.
func TestRoundTrip(t *testing.T) {
	levels := make([]uint8, 40)
	for j := range levels {
		levels[j] = uint8(j % 4)
	}
	for _, tc := range []struct {
		name       string
		rows, cols int
		opts       codec.EncodeOptions
		minSQNR    float64
	}{
		{"4bit", 256, 64, codec.EncodeOptions{Step: 0.25}, 19},
		{"2bit", 256, 64, codec.EncodeOptions{Step: 1}, 7},
		{"ragged-rows", 37, 5, codec.EncodeOptions{Step: 0.1}, 25},
		{"fewer-rows-than-a-chunk", 3, 7, codec.EncodeOptions{Step: 0.1}, 25},
		{"groups", 300, 16, codec.EncodeOptions{Step: 0.2, GroupBytes: 2048}, 20},
		{"levels", 64, 40, codec.EncodeOptions{Step: 0.5, Levels: levels}, 13},
		{"transposed", 48, 33, codec.EncodeOptions{Step: 0.2, Transposed: true}, 20},
		{"default-step", 64, 64, codec.EncodeOptions{}, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := gaussTensor(tc.name, tc.rows, tc.cols, 3)
			got, _, r := roundTrip(t, tt, &tc.opts)
			if s := sqnr(t, tt.Data, got, tt.DType); s < tc.minSQNR || math.IsNaN(s) {
				t.Errorf("SQNR %.2f dB, want ≥ %.1f", s, tc.minSQNR)
			}
			if tc.opts.GroupBytes != 0 && len(r.Index().Tensors[0].Groups) < 2 {
				t.Errorf("%d groups, want several", len(r.Index().Tensors[0].Groups))
			}
			again, _, _ := roundTrip(t, tt, &tc.opts)
			if !bytes.Equal(got, again) {
				t.Error("decoding is not deterministic")
			}
		})
	}
}

// TestNeverWorseThanScalar checks the per-tensor fallback: whenever the
// default codec keeps its learned transform, it must beat the scalar
// quantizer (the untrained codec) at equal rate by the scalar quantizer's
// own local slope; otherwise it must produce the scalar quantizer's bytes.
func TestNeverWorseThanScalar(t *testing.T) {
	m, err := train.NewModel(neural.DefaultConfig, 1)
	if err != nil {
		t.Fatal(err)
	}
	plainCodec, err := train.NewCodec(m, "untrained")
	if err != nil {
		t.Fatal(err)
	}
	plain := nwcenc.New(plainCodec)
	def, err := nwcenc.Default()
	if err != nil {
		t.Fatal(err)
	}
	measure := func(c *nwcenc.Encoder, tt *codec.Tensor, step float64) (bits, dist float64, enc *codec.Encoded) {
		enc, err := c.Encode(tt, &codec.EncodeOptions{Step: step})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range enc.Groups {
			bits += 8 * float64(len(g.Data))
		}
		for _, a := range enc.Aux {
			bits += 8 * float64(len(a.Data))
		}
		dec := decodeEncoded(t, tt, enc)
		for i := 0; i < len(dec); i += 4 {
			x := math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[i:]))
			y := math.Float32frombits(binary.LittleEndian.Uint32(dec[i:]))
			dist += float64(x-y) * float64(x-y)
		}
		return bits, dist, enc
	}
	learned := 0
	for seed := range uint64(4) {
		tt := gaussTensor("w", 256, 64, seed)
		for _, step := range []float64{1.5, 1, 0.5, 0.25, 0.1, 0.05} {
			rb, rd, enc := measure(def, tt, step)
			pb, pd, penc := measure(plain, tt, step)
			if enc.Blob == nil {
				if !bytes.Equal(enc.Groups[0].Data, penc.Groups[0].Data) {
					t.Errorf("seed %d step %g: the fallback differs from the scalar quantizer", seed, step)
				}
				continue
			}
			learned++
			cb, cd, _ := measure(plain, tt, step*1.1)
			slope := 10 * math.Log10(cd/pd) / (pb - cb)
			if gain := 10*math.Log10(pd/rd) - slope*(rb-pb); gain < -0.01 {
				t.Errorf("seed %d step %g: learned transform loses %.3f dB at equal rate", seed, step, -gain)
			}
		}
	}
	t.Logf("learned transform kept for %d of 24 tensors", learned)
}

// memEnv serves an encoded tensor's sections to a decoder.
type memEnv struct{ e *codec.Encoded }

func (v memEnv) Aux(name string) ([]byte, error) {
	for _, a := range v.e.Aux {
		if a.Name == name {
			return a.Data, nil
		}
	}
	return nil, format.Errorf(-1, "no aux %q", name)
}

func (v memEnv) Blob(parse func([]byte) (any, error)) (any, error) {
	if v.e.Blob == nil {
		return nil, format.Errorf(-1, "no blob")
	}
	return parse(v.e.Blob.Data)
}

// entry builds the index entry the writer would record for enc.
func entry(tt *codec.Tensor, enc *codec.Encoded) *format.Tensor {
	ft := &format.Tensor{Name: tt.Name, DType: tt.DType, Shape: tt.Shape, Codec: neural.ID, Params: enc.Params, View: enc.View, Blob: -1}
	if enc.Blob != nil {
		ft.Blob = 0
	}
	for _, g := range enc.Groups {
		ft.Groups = append(ft.Groups, format.Group{End: g.End})
	}
	for _, a := range enc.Aux {
		ft.Aux = append(ft.Aux, format.NamedSection{Name: a.Name})
	}
	return ft
}

func decodeEncoded(t testing.TB, tt *codec.Tensor, enc *codec.Encoded) []byte {
	t.Helper()
	out, err := decodeAll(tt, enc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeAll(tt *codec.Tensor, enc *codec.Encoded) ([]byte, error) {
	c, err := codec.LookupDecoder(neural.ID)
	if err != nil {
		return nil, err
	}
	dec, err := c.NewDecoder(entry(tt, enc), memEnv{enc})
	if err != nil {
		return nil, err
	}
	es := uint64(tt.DType.Size())
	out := make([]byte, tt.NumElements()*es)
	var start uint64
	for i, g := range enc.Groups {
		if g.End < start || g.End*es > uint64(len(out)) {
			return nil, format.Errorf(-1, "bad group end")
		}
		if err := dec.DecodeGroup(i, g.Data, out[start*es:g.End*es]); err != nil {
			return nil, err
		}
		start = g.End
	}
	return out, nil
}

// learnedTensor returns a Gaussian tensor and step for which the default
// codec keeps its learned transform, so that the tensor needs the blob.
func learnedTensor(t *testing.T) (*codec.Tensor, float64) {
	c, err := nwcenc.Default()
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(8) {
		tt := gaussTensor("w", 256, 64, seed)
		for _, step := range []float64{0.6, 0.3, 0.1, 0.05, 1} {
			enc, err := c.Encode(tt, &codec.EncodeOptions{Step: step})
			if err != nil {
				t.Fatal(err)
			}
			if enc.Blob != nil {
				return tt, step
			}
		}
	}
	t.Fatal("the default codec never keeps its learned transform on Gaussian tensors")
	return nil, 0
}

// TestBlobRef checks that a file referencing the built-in decoder by
// SHA-256 decodes to the same bytes as one storing it, and is smaller by
// about the blob.
func TestBlobRef(t *testing.T) {
	c, err := neural.Default()
	if err != nil {
		t.Fatal(err)
	}
	tt, step := learnedTensor(t)
	opts := codec.EncodeOptions{Step: step}
	full, fullSize, _ := roundTrip(t, tt, &opts)
	opts.BlobRef = true
	ref, refSize, r := roundTrip(t, tt, &opts)
	if !bytes.Equal(full, ref) {
		t.Error("the referenced decoder decodes differently")
	}
	if b := r.Index().Blobs; len(b) != 1 || b[0].Section != nil || b[0].SHA256 != c.BlobSHA256() {
		t.Errorf("blobs %+v, want one reference to the built-in blob", b)
	}
	if saved := fullSize - refSize; saved < len(c.Blob()) {
		t.Errorf("the reference saved %d bytes, want at least the blob's %d", saved, len(c.Blob()))
	}
}

// TestDecodeErrors corrupts each part of an encoded tensor and checks that
// decoding fails with format.ErrFormat rather than panicking or succeeding.
func TestDecodeErrors(t *testing.T) {
	tt, step := learnedTensor(t)
	levels := make([]uint8, 64)
	for j := range levels {
		levels[j] = uint8(j % 4)
	}
	good, err := codec.LookupEncoder(neural.ID)
	if err != nil {
		t.Fatal(err)
	}
	encode := func() *codec.Encoded {
		e, err := good.Encode(tt, &codec.EncodeOptions{Step: step, Levels: levels})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	aux := func(e *codec.Encoded, name string) *codec.NamedBytes {
		for i := range e.Aux {
			if e.Aux[i].Name == name {
				return &e.Aux[i]
			}
		}
		t.Fatalf("no aux %q", name)
		return nil
	}
	for _, tc := range []struct {
		name    string
		corrupt func(e *codec.Encoded)
	}{
		{"nil-params", func(e *codec.Encoded) { e.Params = nil }},
		{"params-extra-key", func(e *codec.Encoded) {
			e.Params = append([]byte{e.Params[0] + 1}, append(e.Params[1:], 0xa1, 'x', 0x01)...)
		}},
		{"params-truncated", func(e *codec.Encoded) { e.Params = e.Params[:len(e.Params)-3] }},
		{"payload-truncated", func(e *codec.Encoded) { e.Groups[0].Data = e.Groups[0].Data[:len(e.Groups[0].Data)-1] }},
		{"payload-extended", func(e *codec.Encoded) { e.Groups[0].Data = append(e.Groups[0].Data, 0) }},
		{"stream-length-not-minimal", func(e *codec.Encoded) {
			// The same length with one more, zero, byte: uvarints are
			// shortest-form only (FORMAT.md §7.2).
			d := e.Groups[0].Data
			_, w := binary.Uvarint(d)
			long := append(append(append([]byte{}, d[:w-1]...), d[w-1]|0x80, 0), d[w:]...)
			e.Groups[0].Data = long
		}},
		{"tables-truncated", func(e *codec.Encoded) { a := aux(e, neural.AuxTables); a.Data = a.Data[:len(a.Data)-1] }},
		{"tables-trailing", func(e *codec.Encoded) { a := aux(e, neural.AuxTables); a.Data = append(a.Data, 0) }},
		{"scales-short", func(e *codec.Encoded) { a := aux(e, "scales"); a.Data = a.Data[:1] }},
		{"levels-all-zero", func(e *codec.Encoded) { a := aux(e, "levels"); a.Data = make([]byte, len(a.Data)) }},
		{"unknown-aux", func(e *codec.Encoded) { e.Aux = append(e.Aux, codec.NamedBytes{Name: "zz", Data: []byte{1}}) }},
		{"blob-garbage", func(e *codec.Encoded) {
			if e.Blob != nil {
				e.Blob.Data = []byte{0x80}
			} else {
				e.Blob = &codec.BlobData{Codec: neural.ID, Data: []byte{0x80}}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := encode()
			tc.corrupt(e)
			_, err := decodeAll(tt, e)
			if !errors.Is(err, format.ErrFormat) {
				t.Errorf("got %v, want an error wrapping format.ErrFormat", err)
			}
		})
	}
}

// TestEncodeErrors checks the typed errors of bad encoder input.
func TestEncodeErrors(t *testing.T) {
	c, err := nwcenc.Default()
	if err != nil {
		t.Fatal(err)
	}
	tt := gaussTensor("w", 32, 4, 1)
	for _, step := range []float64{-1, math.NaN(), math.Inf(1), 1e-300} {
		if _, err := c.Encode(tt, &codec.EncodeOptions{Step: step}); !errors.Is(err, codec.ErrOptions) {
			t.Errorf("step %v: got %v, want ErrOptions", step, err)
		}
	}
	if _, err := c.Encode(tt, &codec.EncodeOptions{Levels: []uint8{0, 1}}); !errors.Is(err, chunk.ErrLevels) || !errors.Is(err, codec.ErrOptions) {
		t.Errorf("levels for the wrong column count: got %v, want chunk.ErrLevels wrapping codec.ErrOptions", err)
	}
	if _, err := c.Encode(tt, &codec.EncodeOptions{Hessian: make([]float64, 3)}); !errors.Is(err, codec.ErrOptions) {
		t.Errorf("Hessian of the wrong size: got %v, want ErrOptions", err)
	}
	for _, f := range [][]float32{{1, 1}, {1, 0, 1, 1}, {1, float32(math.Inf(1)), 1, 1}} {
		if _, err := c.Encode(tt, &codec.EncodeOptions{ScaleFactors: f}); !errors.Is(err, codec.ErrOptions) || !errors.Is(err, chunk.ErrFactors) {
			t.Errorf("scale factors %v: got %v, want ErrOptions wrapping chunk.ErrFactors", f, err)
		}
	}
}

// dataDir locates the shared model files, skipping (or failing under CI)
// when they are absent.
func dataDir(t testing.TB) string {
	d := filepath.Join("..", "..", "..", "shared", "data")
	if _, err := os.Stat(d); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("shared data missing: %v", err)
		}
		t.Skipf("shared data not found at %s (set up ../shared/data to run)", d)
	}
	return d
}

// TestRealWeights codes every matrix of stories260K at 2 and 5 bits and
// checks the quality and that the learned transform is kept for some.
func TestRealWeights(t *testing.T) {
	src, err := safetensors.Open(filepath.Join(dataDir(t), "stories260K", "stories260K.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	learned, total := 0, 0
	for _, ti := range src.Tensors() {
		if len(ti.Shape) < 2 {
			continue
		}
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		shape := []uint64{uint64(ti.Shape[0]), uint64(ti.Shape[1])}
		tt := &codec.Tensor{Name: ti.Name, DType: format.DType(ti.DType), Shape: shape, Data: b}
		c, _ := codec.LookupEncoder(neural.ID)
		for _, st := range []struct{ step, minSQNR float64 }{{1.2, 8}, {0.12, 27}} {
			enc, err := c.Encode(tt, &codec.EncodeOptions{Step: st.step})
			if err != nil {
				t.Fatal(err)
			}
			total++
			if enc.Blob != nil {
				learned++
			}
			if s := sqnr(t, b, decodeEncoded(t, tt, enc), tt.DType); s < st.minSQNR {
				t.Errorf("%s: SQNR %.2f dB at step %g, want ≥ %g", ti.Name, s, st.step, st.minSQNR)
			}
		}
	}
	if learned == 0 {
		t.Errorf("learned transform kept for none of %d tensors", total)
	}
}

func isFormat(err error) bool { return errors.Is(err, format.ErrFormat) }

func f32(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }

// TestBlobRefUnknown checks that the writer refuses to reference a blob
// that is not built in, which no reader could resolve.
func TestBlobRefUnknown(t *testing.T) {
	tt, step := learnedTensor(t)
	c, err := nwcenc.Default()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encode(tt, &codec.EncodeOptions{Step: step})
	if err != nil {
		t.Fatal(err)
	}
	enc.Blob = &codec.BlobData{Codec: neural.ID, Data: append([]byte{0}, enc.Blob.Data...), Ref: true}
	w, err := writer.New(&bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteEncoded(tt.Name, tt.DType, tt.Shape, neural.ID, enc); err == nil {
		t.Error("a reference to an unknown blob was written")
	}
}

// TestNaNCanonical decodes a tensor whose step is so large that x̂
// overflows to ±Inf in columns whose scale is 0: w = ±Inf·0 is NaN, and it
// must be the canonical NaN on every platform (FORMAT.md §7.7.5), not the
// hardware's (x86 makes 0xFFC00000).
func TestNaNCanonical(t *testing.T) {
	tt := gaussTensor("w", 32, 8, 5)
	c, err := codec.LookupEncoder(neural.ID)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Encode(tt, &codec.EncodeOptions{Step: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := msgpack.Unmarshal(e.Params, &p); err != nil {
		t.Fatal(err)
	}
	p["step"] = float64(float32(3e38))
	if e.Params, err = msgpack.Marshal(p); err != nil {
		t.Fatal(err)
	}
	for i := range e.Aux {
		if e.Aux[i].Name == "scales" {
			if e.Aux[i].Data, err = chunk.AppendScales(nil, make([]uint16, 8)); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err := decodeAll(tt, e)
	if err != nil {
		t.Fatal(err)
	}
	nans := 0
	for i := 0; i < len(out); i += 4 {
		v := binary.LittleEndian.Uint32(out[i:])
		if math.IsNaN(float64(math.Float32frombits(v))) {
			nans++
			if v != 0x7fc00000 {
				t.Fatalf("element %d is NaN %#08x, want 0x7fc00000", i/4, v)
			}
		}
	}
	if nans == 0 {
		t.Fatal("no element overflowed: the test does not exercise ±Inf·0")
	}
}
