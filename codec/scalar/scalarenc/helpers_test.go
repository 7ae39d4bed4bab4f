package scalarenc

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// memEnv serves a tensor's aux sections from memory.
type memEnv map[string][]byte

func (e memEnv) Aux(name string) ([]byte, error) {
	b, ok := e[name]
	if !ok {
		return nil, format.Errorf(-1, "no aux %q", name)
	}
	return b, nil
}

func (memEnv) Blob(func([]byte) (any, error)) (any, error) {
	return nil, format.Errorf(-1, "no blob")
}

// entry builds the index entry the writer would record for enc, with each
// group's length set and offsets left zero.
func entry(id string, t *codec.Tensor, enc *codec.Encoded) (*format.Tensor, memEnv) {
	e := &format.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Codec: id, Params: enc.Params, Blob: -1, View: enc.View}
	for _, g := range enc.Groups {
		e.Groups = append(e.Groups, format.Group{End: g.End, Section: format.Section{Length: uint64(len(g.Data))}})
	}
	env := memEnv{}
	for _, a := range enc.Aux {
		env[a.Name] = a.Data
	}
	for _, name := range []string{"levels", "scales", "table"} {
		if b, ok := env[name]; ok {
			e.Aux = append(e.Aux, format.NamedSection{Name: name, Section: format.Section{Length: uint64(len(b))}})
		}
	}
	return e, env
}

// decodeAll decodes every group of enc into the tensor's dtype.
func decodeAll(t testing.TB, id string, tn *codec.Tensor, enc *codec.Encoded) ([]byte, error) {
	t.Helper()
	c, err := codec.LookupDecoder(id)
	if err != nil {
		t.Fatal(err)
	}
	e, env := entry(id, tn, enc)
	if err := format.ValidateTensor(e, 0, format.Limits{}); err != nil {
		t.Fatalf("encoder output is not a valid entry: %v", err)
	}
	dec, err := c.NewDecoder(e, env)
	if err != nil {
		return nil, err
	}
	size := uint64(tn.DType.Size())
	out := make([]byte, tn.NumElements()*size)
	for i, g := range enc.Groups {
		if err := dec.DecodeGroup(i, g.Data, out[e.GroupStart(i)*size:g.End*size]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// encodedBytes counts everything an encoding stores for its tensor:
// params, groups and aux sections.
func encodedBytes(enc *codec.Encoded) int {
	n := len(enc.Params)
	for _, g := range enc.Groups {
		n += len(g.Data)
	}
	for _, a := range enc.Aux {
		n += len(a.Data)
	}
	return n
}

// gaussian returns a rows×cols F32 tensor of N(0, sigma²) values, column j
// scaled by colScale(j) when it is not nil.
func gaussian(name string, seed uint64, shape []uint64, sigma float64, dt format.DType) *codec.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * sigma)
	}
	data, err := dtype.FromFloat32(nil, x, dt)
	if err != nil {
		panic(err)
	}
	return &codec.Tensor{Name: name, DType: dt, Shape: shape, Data: data}
}

// floats converts a tensor's bytes to float32.
func floats(t testing.TB, b []byte, dt format.DType) []float32 {
	t.Helper()
	x, err := dtype.ToFloat32(nil, b, dt)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// sqnr returns 10·log10(Σx² / Σ(x−y)²) in dB.
func sqnr(x, y []float32) float64 {
	var s, e float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		s += float64(x[i]) * float64(x[i])
		e += d * d
	}
	return 10 * math.Log10(s/e)
}

// f32Tensor wraps float32 values as an F32 tensor.
func f32Tensor(name string, shape []uint64, x []float32) *codec.Tensor {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &codec.Tensor{Name: name, DType: format.F32, Shape: shape, Data: b}
}
