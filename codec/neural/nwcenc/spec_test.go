package nwcenc

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/spec"
)

// TestMatchesSpec decodes tensors with the fast decoder and with the plain
// reference of package spec and requires the same bits, for learned and
// plain tensors, with levels and a ragged last chunk.
func TestMatchesSpec(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	rows, cols := 45, 12
	data := make([]byte, 0, 4*rows*cols)
	for range rows * cols {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(r.NormFloat64()*0.02)))
	}
	tt := &codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
	levels := make([]uint8, cols)
	for j := range levels {
		levels[j] = uint8(r.IntN(4))
	}
	sawPlain, sawLearned, sawTrellis, sawRound := false, false, false, false
	for _, step := range []float64{2, 1, 0.5, 0.1, 0.01} {
		for _, force := range []int{forceAuto, forceLearned, forcePlain} {
			c := forced(t, force)
			// The forced-plain run rounds, so both scalar paths are covered.
			c.roundPlain = force == forcePlain
			enc, err := c.Encode(tt, &codec.EncodeOptions{Step: step, Levels: levels, GroupBytes: 16 * cols * 4})
			if err != nil {
				t.Fatal(err)
			}
			p, err := neural.ParseParams(enc.Params)
			if err != nil {
				t.Fatal(err)
			}
			sawPlain, sawLearned = sawPlain || p.Plain, sawLearned || !p.Plain
			sawTrellis, sawRound = sawTrellis || p.Trellis, sawRound || p.Plain && !p.Trellis
			aux := map[string][]byte{}
			for _, a := range enc.Aux {
				aux[a.Name] = a.Data
			}
			scales, err := chunk.ParseScales(aux[chunk.AuxScales], cols)
			if err != nil {
				t.Fatal(err)
			}
			tabs, err := neural.ParseTables(aux[neural.AuxTables], neural.LevelsPresent(levels, cols))
			if err != nil {
				t.Fatal(err)
			}
			ref := &spec.NWCTensor{Rows: rows, Cols: cols, Steps: p.Steps, Features: p.Features, Plain: p.Plain, Trellis: p.Trellis, Offset: float32(p.Offset) / 256, Scales: scales, Levels: levels}
			for _, g := range enc.Groups[:len(enc.Groups)-1] {
				ref.GroupStarts = append(ref.GroupStarts, int(g.End)/cols)
			}
			var colsOf [neural.NumLevels]int
			for _, q := range levels {
				colsOf[q]++
			}
			r0 := 0
			for _, g := range enc.Groups {
				r1 := int(g.End) / cols
				b0, b1 := r0/chunk.Rows, chunk.Chunks(r1)
				y := make([]int32, (b1-b0)*cols*chunk.Rows)
				if _, err := neural.DecodeLatents(y, g.Data, levels, &colsOf, b0, b1, rows, cols, &tabs, nil); err != nil {
					t.Fatal(err)
				}
				ref.Latents = append(ref.Latents, y...)
				r0 = r1
			}
			_, dec := c.c.Nets()
			for _, l := range dec.Layers {
				ref.Decoder = append(ref.Decoder, spec.MLPLayer{In: l.In, Out: l.Out, W: l.W, B: l.B, ReLU: l.ReLU, Residual: l.Residual})
			}
			ref.Embed = dec.Embed
			want := spec.NWCReconstruct(ref)
			got := decodeForSpec(t, tt, enc)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s, step %g: element %d: fast decoder %v (%#x), spec %v (%#x)", forceNames[force], step, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
	}
	if !sawPlain || !sawLearned || !sawTrellis || !sawRound {
		t.Errorf("covered plain %v (trellis %v, rounded %v), learned %v: want all", sawPlain, sawTrellis, sawRound, sawLearned)
	}
}

type specEnv struct{ e *codec.Encoded }

func (v specEnv) Aux(name string) ([]byte, error) {
	for _, a := range v.e.Aux {
		if a.Name == name {
			return a.Data, nil
		}
	}
	return nil, format.Errorf(-1, "no aux %q", name)
}

func (v specEnv) Blob(parse func([]byte) (any, error)) (any, error) { return parse(v.e.Blob.Data) }

// specEntry is the index entry of an encoded tensor, with its data served
// from memory by specEnv.
func specEntry(tt *codec.Tensor, enc *codec.Encoded) *format.Tensor {
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

func decodeForSpec(t *testing.T, tt *codec.Tensor, enc *codec.Encoded) []float32 {
	ft := specEntry(tt, enc)
	d, err := codec.LookupDecoder(neural.ID)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := d.NewDecoder(ft, specEnv{enc})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(tt.Data))
	var start uint64
	for i, g := range enc.Groups {
		if err := dec.DecodeGroup(i, g.Data, out[start*4:g.End*4]); err != nil {
			t.Fatal(err)
		}
		start = g.End
	}
	f := make([]float32, len(out)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return f
}
