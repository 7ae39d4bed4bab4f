package llama

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
	"github.com/nwcodec/nwc/writer"
)

// writeSafetensors stores m's tensors as dt with md as metadata.
func writeSafetensors(t *testing.T, m *Model, path string, dt safetensors.DType, md map[string]string) {
	t.Helper()
	h := &safetensors.Header{Metadata: md}
	for _, name := range m.Names() {
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: name, DType: dt, Shape: m.shapes[name]})
	}
	err := safetensors.WriteFile(path, h, func(name string) ([]byte, error) {
		w := m.weights[name]
		if dt == safetensors.F64 {
			b := make([]byte, 8*len(w))
			for i, v := range w {
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(float64(v)))
			}
			return b, nil
		}
		b := make([]byte, 4*len(w))
		for i, v := range w {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sameWeights(t *testing.T, what string, got, want *Model) {
	t.Helper()
	if got.Config() != want.Config() {
		t.Fatalf("%s: config %+v, want %+v", what, got.Config(), want.Config())
	}
	for _, name := range want.Names() {
		if !slices.Equal(got.weights[name], want.weights[name]) {
			t.Errorf("%s: tensor %s differs", what, name)
		}
	}
}

func TestLoadFormats(t *testing.T) {
	want, err := LoadBin(filepath.Join("testdata", "tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := filepath.Join(dir, "tiny.safetensors")
	writeSafetensors(t, want, st, safetensors.F32, want.cfg.Metadata())
	st64 := filepath.Join(dir, "tiny64.safetensors")
	writeSafetensors(t, want, st64, safetensors.F64, want.cfg.Metadata())
	src, err := safetensors.OpenPath(st)
	if err != nil {
		t.Fatal(err)
	}
	nwcPath := filepath.Join(dir, "tiny.nwc")
	toNWC(t, src, nwcPath)
	src.Close()
	for _, p := range []string{filepath.Join("testdata", "tiny.bin"), st, st64, nwcPath} {
		got, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%s): %v", p, err)
		}
		sameWeights(t, filepath.Base(p), got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	m, err := LoadBin(filepath.Join("testdata", "tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	noMeta := filepath.Join(dir, "nometa.safetensors")
	writeSafetensors(t, m, noMeta, safetensors.F32, nil)
	if _, err := Load(noMeta); !errors.Is(err, ErrConfig) {
		t.Errorf("safetensors without metadata: %v, want ErrConfig", err)
	}
	// A config promising a classifier the file lacks.
	md := m.cfg.Metadata()
	md["tied_embeddings"] = "false"
	untied := filepath.Join(dir, "untied.safetensors")
	writeSafetensors(t, m, untied, safetensors.F32, md)
	if _, err := Load(untied); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing classifier: %v, want ErrNotFound", err)
	}
	for _, p := range []string{"missing.bin", "missing.nwc", "missing.safetensors"} {
		if _, err := Load(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%s) = %v, want fs.ErrNotExist", p, err)
		}
	}
}

func TestNWCSourceNotFound(t *testing.T) {
	m, err := LoadBin(filepath.Join("testdata", "tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := filepath.Join(dir, "tiny.safetensors")
	writeSafetensors(t, m, st, safetensors.F32, m.cfg.Metadata())
	src, err := safetensors.OpenPath(st)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, _, err := (SafetensorsSource{Src: src}).Tensor("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SafetensorsSource missing tensor: %v", err)
	}
	p := filepath.Join(dir, "tiny.nwc")
	toNWC(t, src, p)
	m2, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, "nwc", m2, m)
	rc, err := reader.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, _, err := (NWCSource{R: rc.Reader}).Tensor("nope"); !errors.Is(err, ErrNotFound) || !errors.Is(err, format.ErrNotFound) {
		t.Errorf("NWCSource missing tensor: %v", err)
	}
}

// toNWC writes src losslessly to a .nwc file with the writer alone
// (package convert imports calib, which imports this package).
func toNWC(t *testing.T, src safetensors.Source, path string) {
	t.Helper()
	f, err := writer.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if err := f.SetMetadata(src.Metadata()); err != nil {
		t.Fatal(err)
	}
	for _, ti := range src.Tensors() {
		data, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		shape := make([]uint64, len(ti.Shape))
		for i, d := range ti.Shape {
			shape[i] = uint64(d)
		}
		if err := f.WriteTensor(&codec.Tensor{Name: ti.Name, DType: ti.DType, Shape: shape, Data: data}, codec.Lossless, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
