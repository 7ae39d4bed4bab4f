package convert_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/bench/synth"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// synthNWC converts the tiny synthetic Llama checkpoint with codec id in
// 4 KiB groups, so every matrix spans several groups.
func synthNWC(t *testing.T, id string, bits float64) string {
	t.Helper()
	dir := t.TempDir()
	s, _ := synth.Lookup("tiny")
	if err := synth.Generate(context.Background(), dir, s, &synth.Options{Seed: 9, ShardBytes: 100_000}); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(dir, id+".nwc")
	opts := &convert.Options{Codec: id, Bits: bits}
	opts.Encode.GroupBytes = 4 << 10
	if _, err := convert.ToNWC(context.Background(), src, out, opts); err != nil {
		t.Fatal(err)
	}
	return out
}

// wholeTensors writes the safetensors file the way a non-streaming decoder
// would: every tensor decoded whole with Tensor.Bytes, then converted.
func wholeTensors(t *testing.T, r *reader.Reader, path string, dt format.DType) {
	t.Helper()
	h := &safetensors.Header{Metadata: r.Metadata()}
	for _, x := range r.Tensors() {
		d := x.DType()
		if dt != "" && d.IsFloat() {
			d = dt
		}
		shape := make([]int64, len(x.Shape()))
		for i, v := range x.Shape() {
			shape[i] = int64(v)
		}
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: x.Name(), DType: d, Shape: shape})
	}
	err := safetensors.WriteFile(path, h, func(name string) ([]byte, error) {
		x, _ := r.Tensor(name)
		b, err := x.Bytes()
		if err != nil || dt == "" || !x.DType().IsFloat() {
			return b, err
		}
		v, err := dtype.ToFloat32(nil, b, x.DType())
		if err != nil {
			return nil, err
		}
		return dtype.FromFloat32(nil, v, dt)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStreamingDecode: decoding group by group on any number of goroutines
// gives the same bytes as decoding each tensor whole, and reports progress
// after every group, which is all it holds at a time.
func TestStreamingDecode(t *testing.T) {
	for _, c := range []struct {
		codec string
		bits  float64
	}{{"lossless", 0}, {"ecsq", 4}} {
		in := synthNWC(t, c.codec, c.bits)
		r, err := reader.Open(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		groups, multi := 0, 0
		for _, x := range r.Tensors() {
			groups += x.NumGroups()
			if x.NumGroups() > 1 {
				multi++
			}
		}
		if multi < 10 {
			t.Fatalf("%s: only %d tensors span several groups", c.codec, multi)
		}
		dir := t.TempDir()
		for _, dt := range []string{"orig", "f32"} {
			want := filepath.Join(dir, "want-"+dt+".safetensors")
			target := format.DType("")
			if dt == "f32" {
				target = format.F32
			}
			wholeTensors(t, r.Reader, want, target)
			wb, _ := os.ReadFile(want)
			for _, jobs := range []int{1, 3} {
				got := filepath.Join(dir, "got.safetensors")
				calls := 0
				var last uint64
				err := convert.Decode(context.Background(), r.Reader, got, &convert.DecodeOptions{
					DType: dt, Jobs: jobs,
					Progress: func(_, _ int, done, total uint64) {
						calls++
						if done < last || done > total {
							t.Fatalf("progress %d of %d after %d", done, total, last)
						}
						last = done
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				gb, _ := os.ReadFile(got)
				if !bytes.Equal(gb, wb) {
					t.Errorf("%s %s jobs %d: streaming decode differs from whole-tensor decode", c.codec, dt, jobs)
				}
				if calls != groups+1 {
					t.Errorf("%s: %d progress calls, want one per group (%d) and a last one", c.codec, calls, groups)
				}
			}
		}
	}
}

// TestDecodeCancel: a cancelled decode returns the context's error and
// leaves neither the output nor a temporary file.
func TestDecodeCancel(t *testing.T) {
	in := synthNWC(t, "lossless", 0)
	r, err := reader.Open(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	err = convert.Decode(ctx, r.Reader, out, &convert.DecodeOptions{Progress: func(_, _ int, done, _ uint64) {
		if done > 10000 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Decode: %v, want context.Canceled", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left %s behind", e.Name())
	}
}

// TestDecodeEmptyTensors: tensors without elements, first, between and
// last, have no chunk groups; the decode still writes every tensor in
// order and gives the input back byte for byte.
func TestDecodeEmptyTensors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.safetensors")
	h := &safetensors.Header{Tensors: []safetensors.TensorInfo{
		{Name: "a", DType: format.F32, Shape: []int64{0}},
		{Name: "b", DType: format.F32, Shape: []int64{3, 4}},
		{Name: "c", DType: format.BF16, Shape: []int64{0, 5}},
		{Name: "d", DType: format.F32, Shape: []int64{2}},
		{Name: "e", DType: format.F16, Shape: []int64{4, 0}},
	}}
	err := safetensors.WriteFile(in, h, func(name string) ([]byte, error) {
		for _, ti := range h.Tensors {
			if ti.Name == name {
				n := ti.DType.Size()
				for _, d := range ti.Shape {
					n *= int(d)
				}
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(i*7 + len(name))
				}
				return b, nil
			}
		}
		return nil, os.ErrNotExist
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	nwc := filepath.Join(dir, "m.nwc")
	if _, err := convert.ToNWC(context.Background(), src, nwc, &convert.Options{Codec: "lossless"}); err != nil {
		t.Fatal(err)
	}
	r, err := reader.Open(nwc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	empty := 0
	for _, x := range r.Tensors() {
		if x.NumGroups() == 0 {
			empty++
		}
	}
	if empty != 3 {
		t.Fatalf("%d tensors without groups, want 3: the test no longer covers them", empty)
	}
	for _, jobs := range []int{1, 3} {
		out := filepath.Join(dir, "out.safetensors")
		if err := convert.Decode(context.Background(), r.Reader, out, &convert.DecodeOptions{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(out)
		want, _ := os.ReadFile(in)
		if !bytes.Equal(got, want) {
			t.Errorf("jobs %d: decoded file differs from the input", jobs)
		}
	}
}
