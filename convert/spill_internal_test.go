package convert

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// TestSpillSameFile converts stories260K with sequential guidance (the
// model held in memory and read a layer at a time) or layer Hessians, and
// measured allocation, once holding the targets and Hessians in memory and once through
// the spill: the files must be byte for byte the same. While the final
// pass runs the spill must sit next to the output holding at least every
// layer's Hessians, and once the conversion is over only the output may
// be left.
func TestSpillSameFile(t *testing.T) {
	in, docs := stories260K(t)
	docs = docs[:3]
	modes := []struct{ lazy, layerHessians bool }{{false, false}, {true, false}, {true, true}}
	if raceEnabled {
		// Six calibrated conversions take twenty minutes under the race
		// detector; the lazy sequential one runs the concurrent paths
		// the others share.
		modes = modes[1:2]
	}
	for _, mode := range modes {
		lazy := mode.lazy
		var files [][]byte
		for _, spill := range []bool{false, true} {
			cal := &Calibration{Docs: docs}
			var cfg llama.Config
			var err error
			if lazy {
				var src safetensors.Source
				if cal.Lazy, src, err = llama.OpenLazy(in); err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				cfg = cal.Lazy.Config()
			} else {
				if cal.Model, err = llama.Load(in); err != nil {
					t.Fatal(err)
				}
				cfg = cal.Model.Config()
			}
			// Every layer's groups: query/key/value, output, gate/up
			// (dim wide) and down (hidden wide), float64.
			hessianBytes := int64(cfg.NLayers) * int64(3*cfg.Dim*cfg.Dim+cfg.HiddenDim*cfg.HiddenDim) * 8
			dir := t.TempDir()
			out := filepath.Join(dir, "m.nwc")
			var largest int64
			opts := &Options{Codec: "nwc", Bits: 4, Guidance: &Guidance{
				ColumnSteps: true, LDLQ: true, Sequential: !mode.layerHessians, LayerHessians: mode.layerHessians,
				Allocate: true, Probe: &Probe{MaxTokens: 300, Local: true}, Calib: cal,
			}, Progress: func(p Progress) {
				if p.Phase != PhaseEncode || p.Tensors != 1 {
					return
				}
				for _, n := range temporaries(t, dir) {
					fi, err := os.Stat(filepath.Join(dir, n))
					if err != nil {
						t.Error(err)
						continue
					}
					largest = max(largest, fi.Size())
				}
			}}
			src, err := safetensors.OpenPath(in)
			if err != nil {
				t.Fatal(err)
			}
			_, err = toNWC(context.Background(), src, out, opts, spill)
			src.Close()
			if err != nil {
				t.Fatal(err)
			}
			if spill && largest < hessianBytes {
				t.Errorf("%+v: largest temporary file next to the output %d bytes during the final pass, want a spill of at least the Hessians' %d", mode, largest, hessianBytes)
			}
			if !spill && largest >= hessianBytes {
				t.Errorf("%+v: a temporary file of %d bytes next to the output without spilling", mode, largest)
			}
			if left := temporaries(t, dir); len(left) != 0 {
				t.Errorf("%+v, spill %v: %q left next to the output", mode, spill, left)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, b)
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Errorf("%+v: the spilled conversion wrote another file (%d bytes) than the one in memory (%d)", mode, len(files[1]), len(files[0]))
		}
	}
}

// TestSpillRemovedOnCancel cancels a spilled conversion during its final
// pass: neither the output nor the spill may remain.
func TestSpillRemovedOnCancel(t *testing.T) {
	in, docs := stories260K(t)
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var during []string
	_, err = toNWC(ctx, src, filepath.Join(dir, "m.nwc"), &Options{Codec: "ecsq", Bits: 4, Guidance: &Guidance{
		ColumnSteps: true, LDLQ: true, Sequential: true, Calib: &Calibration{Model: m, Docs: docs[:2]},
	}, Progress: func(p Progress) {
		if p.Phase == PhaseEncode && during == nil {
			during = temporaries(t, dir)
			cancel()
		}
	}}, true)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled conversion: error %v, want context.Canceled", err)
	}
	if len(during) != 2 {
		t.Errorf("temporary files during the final pass: %q, want the output's and the spill", during)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left after cancelling, want none", len(ents))
	}
}

// temporaries lists the hidden temporary files (atomicfile's) in dir.
func temporaries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".m.nwc.tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestSpillHessianRoundTrip writes Hessians with values float32 cannot
// hold and reads them back out of order: every bit must come back, and a
// Hessian read twice in a row is the cached one.
func TestSpillHessianRoundTrip(t *testing.T) {
	s, err := newSpill(context.Background(), filepath.Join(t.TempDir(), "m.nwc"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.remove()
	var hs []*calib.Hessian
	var rs []*spilledHessian
	for _, n := range []int{1, 3, 400} { // 400: more than one chunk
		h := &calib.Hessian{N: n, Data: make([]float64, n*n), Tokens: int64(7 * n)}
		for i := range h.Data {
			h.Data[i] = 1/float64(i+3) + float64(n)*1e-300
		}
		b, err := s.put([]byte{byte(n), 2, 3}) // targets interleave
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.get(b); err != nil || !bytes.Equal(got, []byte{byte(n), 2, 3}) {
			t.Fatalf("bytes read back: %v, %v", got, err)
		}
		r, err := s.putHessian(h)
		if err != nil {
			t.Fatal(err)
		}
		hs, rs = append(hs, h), append(rs, r)
	}
	for _, k := range []int{2, 0, 1, 1, 2} {
		got, err := s.hessian(rs[k])
		if err != nil {
			t.Fatal(err)
		}
		if got.N != hs[k].N || got.Tokens != hs[k].Tokens || len(got.Data) != len(hs[k].Data) {
			t.Fatalf("Hessian %d read back as N %d, %d tokens, %d values", k, got.N, got.Tokens, len(got.Data))
		}
		for i, v := range hs[k].Data {
			if got.Data[i] != v {
				t.Fatalf("Hessian %d value %d read back as %v, want %v", k, i, got.Data[i], v)
			}
		}
	}
	a, _ := s.hessian(rs[0])
	if b, _ := s.hessian(rs[0]); a != b {
		t.Error("a Hessian read twice in a row was read again, not kept")
	}
	if err := s.remove(); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

// TestLayerHessians checks the Hessians streamHessians derives a layer at
// a time from the lazily read stories260K against those llama.Calibrate
// collects on the model in memory (calib.FromLlama): the same up to
// rounding, for every lossy matrix, the classifier included.
func TestLayerHessians(t *testing.T) {
	in, docs := stories260K(t)
	docs = docs[:3]
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := llama.Calibrate(context.Background(), m, docs, m.Config().SeqLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := calib.FromLlama(m, hs)
	if err != nil {
		t.Fatal(err)
	}
	z, zsrc, err := llama.OpenLazy(in)
	if err != nil {
		t.Fatal(err)
	}
	defer zsrc.Close()
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c, err := newConversion(context.Background(), src, &Options{Codec: "ecsq", Bits: 4, Guidance: &Guidance{
		LayerHessians: true, Calib: &Calibration{Lazy: z, Docs: docs},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.spill, err = newSpill(context.Background(), filepath.Join(t.TempDir(), "m.nwc")); err != nil {
		t.Fatal(err)
	}
	defer c.spill.remove()
	if err := c.streamHessians(context.Background(), c.o.Guidance.Calib); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, it := range c.items {
		if !codec.Lossy(it.codec) {
			continue
		}
		w, ok := want.Hessian(it.info.Name)
		if !ok {
			t.Errorf("%s: coded lossy but llama.Calibrate has no Hessian for it", it.info.Name)
			continue
		}
		if it.hessian != nil || it.hessianAt == nil {
			t.Errorf("%s: Hessian not in the spill", it.info.Name)
			continue
		}
		got, err := c.hessianOf(it, false)
		if err != nil {
			t.Fatal(err)
		}
		if got.N != w.N || got.Tokens != w.Tokens {
			t.Errorf("%s: %d×%d over %d tokens, want %d×%d over %d", it.info.Name, got.N, got.N, got.Tokens, w.N, w.N, w.Tokens)
			continue
		}
		var scale float64
		for i := range w.N {
			scale = max(scale, w.Data[i*w.N+i])
		}
		for i, v := range w.Data {
			if d := math.Abs(got.Data[i] - v); d > 1e-5*scale {
				t.Errorf("%s: value %d is %v, want %v", it.info.Name, i, got.Data[i], v)
				break
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no lossy matrix checked")
	}
}
