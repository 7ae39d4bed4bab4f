package scalar_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/codec"
	_ "github.com/nwcodec/nwc/codec/scalar"
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

var update = flag.Bool("update", false, "rewrite testdata/scalar.nwc from the current encoders")

// goldenPath holds a small file with one tensor per codec and layout. It
// pins the encoders' output byte for byte and seeds the fuzz targets.
var goldenPath = filepath.Join("testdata", "scalar.nwc")

// A spec is one tensor to encode.
type spec struct {
	name  string
	id    string
	dt    format.DType
	shape []uint64
	opts  codec.EncodeOptions
}

func goldenSpecs() []spec {
	levels := make([]uint8, 24)
	for j := range levels {
		levels[j] = uint8(j*7) % 4
	}
	return []spec{
		{"ecsq.f32", "ecsq", format.F32, []uint64{40, 24}, codec.EncodeOptions{}},
		{"ecsq.levels", "ecsq", format.F32, []uint64{40, 24}, codec.EncodeOptions{Levels: levels, Step: 0.4}},
		{"ecsq.bf16.transposed", "ecsq", format.BF16, []uint64{24, 20}, codec.EncodeOptions{Transposed: true}},
		{"ecsq.groups", "ecsq", format.F16, []uint64{50, 16}, codec.EncodeOptions{GroupBytes: 512}},
		{"tcq.levels.groups", "tcq", format.F32, []uint64{50, 24}, codec.EncodeOptions{Levels: levels, GroupBytes: 1024}},
		{"rtn.f16", "rtn", format.F16, []uint64{33, 40}, codec.EncodeOptions{Bits: 3, Group: 16}},
		{"rtn.transposed", "rtn", format.F32, []uint64{20, 36}, codec.EncodeOptions{Transposed: true}},
		{"q4k.f32", "q4k", format.F32, []uint64{20, 64}, codec.EncodeOptions{}},
		{"q4k.bf16.wide", "q4k", format.BF16, []uint64{3, 300}, codec.EncodeOptions{}},
	}
}

// weights returns deterministic heavy-tailed values for a spec.
func weights(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 11))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.05 * rng.NormFloat64() * rng.NormFloat64())
	}
	return x
}

func tensorOf(s spec, seed uint64) *codec.Tensor {
	n := 1
	for _, d := range s.shape {
		n *= int(d)
	}
	data, err := dtype.FromFloat32(nil, weights(seed, n), s.dt)
	if err != nil {
		panic(err)
	}
	return &codec.Tensor{Name: s.name, DType: s.dt, Shape: s.shape, Data: data}
}

// writeFile encodes the specs into a .nwc file in memory.
func writeFile(t testing.TB, specs []spec) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		if err := w.WriteTensor(tensorOf(s, uint64(i)), s.id, &s.opts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	got := writeFile(t, goldenSpecs())
	if *update {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoders no longer reproduce %s (%d bytes, golden %d); if the format change is intended, run go test -update", goldenPath, len(got), len(want))
	}
	rd, err := reader.NewReader(bytes.NewReader(want), int64(len(want)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
		t.Fatal(err)
	}
	for i, s := range goldenSpecs() {
		tn, err := rd.Tensor(s.name)
		if err != nil {
			t.Fatal(err)
		}
		y, err := tn.Float32()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		x, _ := dtype.ToFloat32(nil, tensorOf(s, uint64(i)).Data, s.dt)
		if q := sqnr(x, y); q < 10 {
			t.Errorf("%s: SQNR %.2f dB", s.name, q)
		}
	}
}

func sqnr(x, y []float32) float64 {
	var s, e float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		s += float64(x[i]) * float64(x[i])
		e += d * d
	}
	return 10 * math.Log10(s/e)
}

// TestRowRanges checks through the container that decoding a row range
// reads only its groups and gives exactly the rows of the full decode.
func TestRowRanges(t *testing.T) {
	var specs []spec
	for _, id := range []string{"ecsq", "rtn", "q4k"} {
		for _, dt := range []format.DType{format.F32, format.BF16} {
			specs = append(specs,
				spec{fmt.Sprintf("%s.%s.ragged", id, dt), id, dt, []uint64{101, 40}, codec.EncodeOptions{GroupBytes: 1000}},
				spec{fmt.Sprintf("%s.%s.conv", id, dt), id, dt, []uint64{70, 4, 3, 3}, codec.EncodeOptions{GroupBytes: 1}},
				spec{fmt.Sprintf("%s.%s.transposed", id, dt), id, dt, []uint64{30, 50}, codec.EncodeOptions{Transposed: true, GroupBytes: 1}},
				spec{fmt.Sprintf("%s.%s.row", id, dt), id, dt, []uint64{1, 513}, codec.EncodeOptions{}},
				spec{fmt.Sprintf("%s.%s.col", id, dt), id, dt, []uint64{513, 1}, codec.EncodeOptions{GroupBytes: 64}},
			)
		}
	}
	file := writeFile(t, specs)
	rd, err := reader.NewReader(bytes.NewReader(file), int64(len(file)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		tn, err := rd.Tensor(s.name)
		if err != nil {
			t.Fatal(err)
		}
		full, err := tn.Bytes()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		rows, cols := tn.Rows(), tn.Cols()
		if !s.opts.Transposed && s.opts.GroupBytes < 1000 && len(tn.Entry().Groups) < 2 && rows > 16 {
			t.Errorf("%s: %d groups, want several", s.name, len(tn.Entry().Groups))
		}
		size := uint64(s.dt.Size())
		for _, r := range [][2]uint64{{0, 1}, {15, 17}, {16, 32}, {rows - 1, rows}, {0, rows}, {rows / 2, rows / 2}} {
			if r[1] > rows {
				continue
			}
			got, err := tn.RowBytes(r[0], r[1])
			if err != nil {
				t.Fatalf("%s rows %v: %v", s.name, r, err)
			}
			if !bytes.Equal(got, full[r[0]*cols*size:r[1]*cols*size]) {
				t.Errorf("%s rows %v differ from the full decode", s.name, r)
			}
		}
	}
}
