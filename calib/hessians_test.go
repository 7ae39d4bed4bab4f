package calib

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

var update = flag.Bool("update", false, "rewrite testdata/small.safetensors")

// smallSet is a Set with a stored 3×3 Hessian aliased by a second weight,
// a 2×2 one with its own token count and a dead input, and metadata.
func smallSet() *Set {
	s := NewSet()
	s.Tokens = 10
	s.Metadata = map[string]string{"model": "test"}
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(s.Add("a.weight", &Hessian{N: 3, Data: []float64{4, 1, -2, 1, 2, 0.5, -2, 0.5, 3}, Tokens: 10}))
	must(s.Add("b.weight", &Hessian{N: 2, Data: []float64{0, 0, 0, 0.25}, Tokens: 7}))
	must(s.Alias("c.weight", "a.weight"))
	return s
}

func TestWriteReadRoundTrip(t *testing.T) {
	for _, f64 := range []bool{false, true} {
		s := smallSet()
		s.F64 = f64
		path := filepath.Join(t.TempDir(), "h.safetensors")
		if err := WriteHessians(path, s); err != nil {
			t.Fatal(err)
		}
		got, err := ReadHessians(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.F64 != f64 || got.Tokens != 10 || got.Metadata["model"] != "test" || len(got.Metadata) != 1 {
			t.Errorf("F64 %v tokens %d metadata %v", got.F64, got.Tokens, got.Metadata)
		}
		if w := got.Weights(); !slices.Equal(w, []string{"a.weight", "b.weight", "c.weight"}) {
			t.Errorf("Weights() = %v", w)
		}
		if st := got.Stored(); !slices.Equal(st, []string{"a.weight", "b.weight"}) {
			t.Errorf("Stored() = %v", st)
		}
		a, _ := got.Hessian("a.weight")
		c, _ := got.Hessian("c.weight")
		b, _ := got.Hessian("b.weight")
		if a != c || !slices.Equal(a.Data, s.stored["a.weight"].Data) || a.Tokens != 10 || b.Tokens != 7 {
			t.Errorf("a %+v, c %+v, b %+v", a, c, b)
		}
		if _, ok := got.Hessian("d.weight"); ok {
			t.Error("Hessian of an unknown weight")
		}
		if d := b.Diag(); !slices.Equal(d, []float64{0, 0.25}) {
			t.Errorf("Diag() = %v", d)
		}
	}
	if *update {
		if err := WriteHessians(filepath.Join("testdata", "small.safetensors"), smallSet()); err != nil {
			t.Fatal(err)
		}
	}
}

// rawFile builds a safetensors file from tensors of float32 values and
// metadata, bypassing the Set checks so that invalid files can be made.
func rawFile(t testing.TB, md map[string]string, dt safetensors.DType, tensors map[string][]float64, shapes map[string][]int64) []byte {
	t.Helper()
	h := &safetensors.Header{Metadata: md}
	for _, name := range slices.Sorted(mapsKeys(tensors)) {
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: name, DType: dt, Shape: shapes[name]})
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range h.Tensors {
		var b []byte
		for _, v := range tensors[ti.Name] {
			switch dt {
			case safetensors.F64:
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			case safetensors.F16:
				b = append(b, 0, 0)
			default:
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
			}
		}
		if err := w.WriteTensor(ti.Name, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestReadInvalid(t *testing.T) {
	good := map[string][]float64{"w.hessian": {2, 1, 1, 2}}
	sq := map[string][]int64{"w.hessian": {2, 2}}
	tok := map[string]string{"tokens": "5"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"tokens": "5"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		md      map[string]string
		dt      safetensors.DType
		tensors map[string][]float64
		shapes  map[string][]int64
	}{
		{"no tokens", map[string]string{}, safetensors.F32, good, sq},
		{"zero tokens", with("tokens", "0"), safetensors.F32, good, sq},
		{"text tokens", with("tokens", "many"), safetensors.F32, good, sq},
		{"bad version", with("hessians_version", "2"), safetensors.F32, good, sq},
		{"no tensors", tok, safetensors.F32, map[string][]float64{}, sq},
		{"bad name", tok, safetensors.F32, map[string][]float64{"w": {1}}, map[string][]int64{"w": {1, 1}}},
		{"empty weight name", tok, safetensors.F32, map[string][]float64{".hessian": {1}}, map[string][]int64{".hessian": {1, 1}}},
		{"F16", tok, safetensors.F16, good, sq},
		{"not square", tok, safetensors.F32, map[string][]float64{"w.hessian": {1, 0}}, map[string][]int64{"w.hessian": {1, 2}}},
		{"1-D", tok, safetensors.F32, map[string][]float64{"w.hessian": {1}}, map[string][]int64{"w.hessian": {1}}},
		{"NaN", tok, safetensors.F32, map[string][]float64{"w.hessian": {2, math.NaN(), math.NaN(), 2}}, sq},
		{"Inf", tok, safetensors.F64, map[string][]float64{"w.hessian": {math.Inf(1), 0, 0, 2}}, sq},
		{"negative diagonal", tok, safetensors.F32, map[string][]float64{"w.hessian": {-1, 0, 0, 2}}, sq},
		{"zero trace", tok, safetensors.F32, map[string][]float64{"w.hessian": {0, 0, 0, 0}}, sq},
		{"asymmetric", tok, safetensors.F32, map[string][]float64{"w.hessian": {2, 1, 0.5, 2}}, sq},
		{"Cauchy-Schwarz", tok, safetensors.F32, map[string][]float64{"w.hessian": {1, 3, 3, 1}}, sq},
		{"dead row not zero", tok, safetensors.F32, map[string][]float64{"w.hessian": {0, 1, 1, 2}}, sq},
		{"alias to nothing", with("alias.v", "x"), safetensors.F32, good, sq},
		{"alias of stored", with("alias.w", "w"), safetensors.F32, good, sq},
		{"tokens of nothing", with("tokens.x", "3"), safetensors.F32, good, sq},
		{"bad tokens override", with("tokens.w", "-3"), safetensors.F32, good, sq},
	} {
		b := rawFile(t, tc.md, tc.dt, tc.tensors, tc.shapes)
		s, err := Read(bytes.NewReader(b), int64(len(b)))
		if !errors.Is(err, ErrFormat) || s != nil {
			t.Errorf("%s: Read = %v, %v; want ErrFormat", tc.name, s, err)
		}
	}
	// A container error is a format error too, and keeps its cause.
	b := rawFile(t, tok, safetensors.F32, good, sq)
	_, err := Read(bytes.NewReader(b[:len(b)-1]), int64(len(b)-1))
	if !errors.Is(err, ErrFormat) || !errors.Is(err, safetensors.ErrFormat) {
		t.Errorf("truncated file: %v", err)
	}
	if _, err := ReadHessians(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// Float32 rounding of a symmetric product stays acceptable.
	ok := rawFile(t, tok, safetensors.F32, map[string][]float64{"w.hessian": {1, 0.3, 0.3 + 1e-6, 1}}, sq)
	if _, err := Read(bytes.NewReader(ok), int64(len(ok))); err != nil {
		t.Errorf("nearly symmetric: %v", err)
	}
}

func TestSetErrors(t *testing.T) {
	s := smallSet()
	if err := s.Add("a.weight", &Hessian{N: 1, Data: []float64{1}}); !errors.Is(err, ErrFormat) {
		t.Errorf("duplicate Add: %v", err)
	}
	if err := s.Add("x", &Hessian{N: 2, Data: []float64{1}}); !errors.Is(err, ErrFormat) {
		t.Errorf("non-square Add: %v", err)
	}
	if err := s.Alias("c.weight", "a.weight"); !errors.Is(err, ErrFormat) {
		t.Errorf("duplicate Alias: %v", err)
	}
	if err := s.Alias("x", "c.weight"); !errors.Is(err, ErrNotFound) {
		t.Errorf("alias of an alias: %v", err)
	}
	dir := t.TempDir()
	if err := WriteHessians(filepath.Join(dir, "e"), NewSet()); !errors.Is(err, ErrFormat) {
		t.Errorf("empty set: %v", err)
	}
	s.Metadata["alias.z"] = "a.weight"
	if err := WriteHessians(filepath.Join(dir, "r"), s); !errors.Is(err, ErrFormat) {
		t.Errorf("reserved metadata: %v", err)
	}
	n := NewSet()
	if err := n.Add("w", &Hessian{N: 1, Data: []float64{1}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteHessians(filepath.Join(dir, "t"), n); !errors.Is(err, ErrFormat) {
		t.Errorf("no token count: %v", err)
	}
}

func TestFromLlama(t *testing.T) {
	m, err := llama.LoadBin(filepath.Join("..", "llama", "testdata", "tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := llama.Calibrate(context.Background(), m, [][]int{{1, 4, 9, 2, 7, 7, 3}}, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromLlama(m, hs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tokens != 7 || len(s.Stored()) != 9 || len(s.Weights()) != 15 {
		t.Errorf("tokens %d, stored %v, weights %v", s.Tokens, s.Stored(), s.Weights())
	}
	for _, w := range s.Weights() {
		under, _ := s.StoredUnder(w)
		key, _ := m.HessianKey(w)
		h, _ := s.Hessian(w)
		raw, _ := hs.Get(key)
		if under != key || !slices.Equal(h.Data, raw.Mean()) {
			t.Errorf("%s: stored under %s, want %s", w, under, key)
		}
		if strings.HasSuffix(w, "wk.weight") && under == w {
			t.Errorf("%s is stored, want an alias", w)
		}
	}
	// A model calibrated on nothing has no Hessians to give.
	if _, err := FromLlama(m, llama.NewHessians()); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty calibration: %v", err)
	}
}
