// Package conformance holds the .nwc conformance suite: golden files for
// every codec and edge case with the SHA-256 of every decoded tensor,
// invalid files with the class of error a reader must report, and the
// generators that produce them. Another implementation of FORMAT.md can be
// checked against testdata/ alone: it must decode each golden to the listed
// hashes and reject each invalid file with the listed class.
package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural/nwcenc"
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc" // the encoders of the scalar goldens
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// A Golden is a valid file the suite pins: its bytes and the SHA-256 of the
// decoded bytes (original dtype) of each of its tensors.
type Golden struct {
	Name  string // file name under testdata/golden
	Build func() ([]byte, error)
}

// tensorSpec describes one tensor of a generated file.
type tensorSpec struct {
	name  string
	dtype format.DType
	shape []uint64
	codec string
	seed  uint64
	// weights makes the data finite weight-like values (lossy codecs
	// refuse NaN and infinities); opts are extra encode options.
	weights bool
	opts    codec.EncodeOptions
	// encoder, if set, encodes instead of the registered codec (which
	// still decodes): a way to pin a path the encoder would not choose.
	encoder interface {
		Encode(*codec.Tensor, *codec.EncodeOptions) (*codec.Encoded, error)
	}
}

type fileSpec struct {
	metadata   map[string]string
	align      uint8
	packed     bool // alignment 1
	groupBytes int
	tensors    []tensorSpec
}

// Goldens lists the golden files.
func Goldens() []Golden {
	var gs []Golden
	// The dtypes of the first edition of the format, then the four added
	// later (FORMAT.md §5.5) in files of their own, so that the first
	// files stay as they were.
	n := slices.Index(format.DTypes, format.F8E8M0)
	first, added := format.DTypes[:n], format.DTypes[n:]
	for _, c := range []string{codec.Raw, codec.Lossless} {
		for _, set := range []struct {
			suffix string
			dts    []format.DType
		}{{"_dtypes.nwc", first}, {"_dtypes_added.nwc", added}} {
			spec := fileSpec{metadata: map[string]string{"format": "pt", "codec": c}}
			for i, dt := range set.dts {
				spec.tensors = append(spec.tensors, tensorSpec{
					name: "dtype." + string(dt), dtype: dt, shape: []uint64{7, 33}, codec: c, seed: uint64(i + 1),
				})
			}
			gs = append(gs, Golden{Name: c + set.suffix, Build: spec.build})
		}
	}
	edge := fileSpec{
		metadata:   map[string]string{"ünïcödé": "値 ✓", "empty": ""},
		groupBytes: 4096, // several groups per tensor, so partial decoding is exercised
		tensors: []tensorSpec{
			{name: "scalar", dtype: format.F32, shape: []uint64{}, codec: codec.Raw, seed: 1},
			{name: "empty", dtype: format.F32, shape: []uint64{0, 5}, codec: codec.Lossless, seed: 2},
			{name: "empty_raw", dtype: format.BF16, shape: []uint64{3, 0}, codec: codec.Raw, seed: 3},
			{name: "vector", dtype: format.F16, shape: []uint64{1000}, codec: codec.Lossless, seed: 4},
			{name: "long_row", dtype: format.BF16, shape: []uint64{1, 70000}, codec: codec.Lossless, seed: 5},
			{name: "conv", dtype: format.F32, shape: []uint64{8, 3, 3, 3}, codec: codec.Lossless, seed: 6},
			{name: "名前/ümlaut.weight 🙂", dtype: format.F32, shape: []uint64{4, 4}, codec: codec.Raw, seed: 7},
		},
	}
	gs = append(gs, Golden{Name: "edge_cases.nwc", Build: edge.build})
	gs = append(gs, Golden{Name: "no_metadata.nwc", Build: fileSpec{tensors: []tensorSpec{
		{name: "w", dtype: format.F32, shape: []uint64{16, 16}, codec: codec.Lossless, seed: 8},
	}}.build})
	gs = append(gs, Golden{Name: "empty_metadata_align4k.nwc", Build: fileSpec{metadata: map[string]string{}, align: 12, tensors: []tensorSpec{
		{name: "a", dtype: format.BF16, shape: []uint64{3, 5}, codec: codec.Raw, seed: 9},
		{name: "b", dtype: format.I64, shape: []uint64{2}, codec: codec.Lossless, seed: 10},
	}}.build})
	gs = append(gs, Golden{Name: "no_tensors.nwc", Build: fileSpec{}.build})
	levels := make([]uint8, 48)
	levels[3], levels[7], levels[40] = 1, 2, 3
	lossy := fileSpec{groupBytes: 2048, tensors: []tensorSpec{
		{name: "ecsq", dtype: format.F32, shape: []uint64{70, 48}, codec: "ecsq", seed: 21, weights: true},
		{name: "ecsq_levels_bf16", dtype: format.BF16, shape: []uint64{64, 48}, codec: "ecsq", seed: 22, weights: true,
			opts: codec.EncodeOptions{Levels: levels, Step: 0.4}},
		{name: "ecsq_transposed", dtype: format.F16, shape: []uint64{48, 33}, codec: "ecsq", seed: 23, weights: true,
			opts: codec.EncodeOptions{Transposed: true}},
		{name: "rtn3_g32", dtype: format.F32, shape: []uint64{20, 100}, codec: "rtn", seed: 24, weights: true,
			opts: codec.EncodeOptions{Bits: 3, Group: 32}},
		{name: "q4k", dtype: format.F32, shape: []uint64{8, 512}, codec: "q4k", seed: 25, weights: true},
		{name: "conv_ecsq", dtype: format.F32, shape: []uint64{16, 4, 3, 3}, codec: "ecsq", seed: 26, weights: true},
	}}
	gs = append(gs, Golden{Name: "lossy_scalar.nwc", Build: lossy.build})
	// tcq: the trellis state restarts in every group, so several groups
	// and a level set that skips columns are what a decoder must get right.
	// The file is packed (alignment 1), as lossy conversions are.
	trellis := fileSpec{groupBytes: 2048, packed: true, tensors: []tensorSpec{
		{name: "tcq_levels", dtype: format.F32, shape: []uint64{70, 48}, codec: "tcq", seed: 27, weights: true,
			opts: codec.EncodeOptions{Levels: levels, Step: 0.3}},
		{name: "tcq_transposed_bf16", dtype: format.BF16, shape: []uint64{48, 33}, codec: "tcq", seed: 28, weights: true,
			opts: codec.EncodeOptions{Transposed: true}},
	}}
	gs = append(gs, Golden{Name: "lossy_tcq.nwc", Build: trellis.build})
	for _, ref := range []bool{false, true} {
		name := "nwc_blob.nwc"
		if ref {
			name = "nwc_builtin_ref.nwc"
		}
		gs = append(gs, Golden{Name: name, Build: func() ([]byte, error) {
			s, err := neuralSpec(levels, ref)
			if err != nil {
				return nil, err
			}
			return s.build()
		}})
	}
	return gs
}

// neuralSpec describes a file of nwc tensors of which the first keeps the
// learned transform (so the decoder MLP is exercised and the file needs
// the blob) and the second falls back to the scalar path. The encoder keeps
// the learned path only where it wins, so the first tensor's seed and step
// are the first, in a fixed order, for which it does.
func neuralSpec(levels []uint8, ref bool) (fileSpec, error) {
	s := fileSpec{groupBytes: 4096, tensors: []tensorSpec{
		{name: "nwc_levels", dtype: format.BF16, shape: []uint64{50, 48}, codec: "nwc", seed: 32, weights: true,
			opts: codec.EncodeOptions{Levels: levels, Step: 0.2, BlobRef: ref}},
	}}
	def, err := nwcenc.Default()
	if err != nil {
		return s, err
	}
	// The encoder would code this tensor on its scalar path, as it does
	// almost everywhere with the default model; forcing the learned
	// transform makes the file exercise the decoder network.
	learned := tensorSpec{name: "nwc_learned", dtype: format.F32, shape: []uint64{256, 64}, codec: "nwc", seed: 40,
		weights: true, opts: codec.EncodeOptions{Step: 0.6, BlobRef: ref}, encoder: def.Learned()}
	s.tensors = append([]tensorSpec{learned}, s.tensors...)
	return s, nil
}

func (s fileSpec) build() ([]byte, error) {
	var buf bytes.Buffer
	w, err := writer.New(&buf, &writer.Options{AlignLog2: s.align, Packed: s.packed})
	if err != nil {
		return nil, err
	}
	if err := w.SetMetadata(s.metadata); err != nil {
		return nil, err
	}
	for _, ts := range s.tensors {
		data := Data(ts.dtype, ts.shape, ts.seed)
		if ts.weights {
			data = Weights(ts.dtype, ts.shape, ts.seed)
		}
		t := &codec.Tensor{Name: ts.name, DType: ts.dtype, Shape: ts.shape, Data: data}
		opts := ts.opts
		opts.GroupBytes = s.groupBytes
		if ts.encoder != nil {
			enc, err := ts.encoder.Encode(t, &opts)
			if err == nil {
				err = w.WriteEncoded(t.Name, t.DType, t.Shape, ts.codec, enc)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ts.name, err)
			}
			continue
		}
		if err := w.WriteTensor(t, ts.codec, &opts); err != nil {
			return nil, fmt.Errorf("%s: %w", ts.name, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Data returns deterministic test data for a tensor: weight-like Gaussian
// values for float types (with NaN, ±Inf, ±0 and subnormals mixed into
// floats of at least 16 bits), and uniform bytes for the other types.
func Data(dt format.DType, shape []uint64, seed uint64) []byte {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	rng := rand.New(rand.NewPCG(seed, 0x6e7763))
	b := make([]byte, n*uint64(dt.Size()))
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 1e-40, -3e-8}
	for i := uint64(0); i < n; i++ {
		v := rng.NormFloat64() * 0.02
		if i < uint64(len(specials)) && n > 16 {
			v = specials[i]
		}
		o := b[i*uint64(dt.Size()):]
		switch dt {
		case format.F64:
			binary.LittleEndian.PutUint64(o, math.Float64bits(v))
		case format.F32:
			binary.LittleEndian.PutUint32(o, math.Float32bits(float32(v)))
		case format.BF16:
			binary.LittleEndian.PutUint16(o, uint16(math.Float32bits(float32(v))>>16))
		case format.F16:
			binary.LittleEndian.PutUint16(o, f16bits(float32(v)))
		default:
			for k := 0; k < dt.Size(); k++ {
				o[k] = byte(rng.Uint32())
			}
			if dt == format.Bool {
				o[0] &= 1
			}
		}
	}
	return b
}

// Weights returns deterministic finite weight-like data: Laplacian values
// whose scale varies by column, as in trained layers.
func Weights(dt format.DType, shape []uint64, seed uint64) []byte {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	cols := uint64(1)
	if len(shape) > 1 {
		cols = n / shape[0]
	}
	rng := rand.New(rand.NewPCG(seed, 0x77656967))
	colScale := make([]float64, cols)
	for j := range colScale {
		colScale[j] = 0.01 + 0.05*rng.Float64()
	}
	vals := make([]float32, n)
	for i := range vals {
		v := rng.ExpFloat64()
		if rng.Uint32()&1 == 1 {
			v = -v
		}
		vals[i] = float32(v * colScale[uint64(i)%cols])
	}
	b, _ := dtype.FromFloat32(nil, vals, dt) // dt is a float type of the specs above
	return b
}

// f16bits truncates to half precision; the exact rounding does not matter
// for test data, only that it is deterministic.
func f16bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	man := uint16(b>>13) & 0x3ff
	switch {
	case b&0x7fffffff > 0x7f800000:
		return sign | 0x7e00
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		return sign
	}
	return sign | uint16(exp)<<10 | man
}

// TensorHashes opens a file and returns the hex SHA-256 of every tensor's
// decoded bytes, by name.
func TensorHashes(file []byte) (map[string]string, error) {
	r, err := reader.NewReader(bytes.NewReader(file), int64(len(file)), nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, t := range r.Tensors() {
		b, err := t.Bytes()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name(), err)
		}
		sum := sha256.Sum256(b)
		out[t.Name()] = hex.EncodeToString(sum[:])
	}
	return out, nil
}
