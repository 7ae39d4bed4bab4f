package convert_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// TestMeasuredAllocation converts stories260K with the bit allocation
// measured on the model itself: the file still meets its rate, the
// probe leaves the model as it found it, and the matrices get different
// steps.
func TestMeasuredAllocation(t *testing.T) {
	in, docs := convert.Stories260K(t)
	probeTokens := 512
	if raceEnabled {
		t.Log("race detector on: probing 64 tokens")
		probeTokens = 64
	}
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Clone()
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "m.nwc")
	var probe []convert.Progress
	st, err := convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: "ecsq", Bits: 4, Guidance: &convert.Guidance{
		Allocate: true, Probe: &convert.Probe{MaxTokens: probeTokens}, Calib: &convert.Calibration{Model: m, Docs: docs},
	}, Progress: func(p convert.Progress) {
		if p.Phase == convert.PhaseProbe {
			probe = append(probe, p)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The probe reports each matrix: stories260K has 36 (7 per layer and
	// the embedding), all lossy under ecsq.
	if n := len(probe); n != 36 {
		t.Errorf("the probe reported %d times, want 36", n)
	} else if last := probe[n-1]; last.Tensors != 36 || last.TotalTensors != 36 {
		t.Errorf("the probe's last report is %+v, want 36 of 36", last)
	}
	if math.Abs(st.BitsPerWeight-4) > 0.04 {
		t.Errorf("file at %.4f bits, want 4 ± 1%%", st.BitsPerWeight)
	}
	for name, w := range before.Weights() {
		got, _, _ := m.Tensor(name)
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("the probe left %s changed", name)
			}
		}
	}
	r, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	steps := map[float64]bool{}
	for _, tt := range r.Tensors() {
		if tt.Codec() == "ecsq" {
			steps[paramStep(t, tt.Entry().Params)] = true
		}
	}
	// Without allocation every matrix shares the file's one step.
	if len(steps) < 3 {
		t.Errorf("%d distinct steps over the matrices: the allocation did not vary them", len(steps))
	}
}

// paramStep reads the "step" of an ecsq parameter map.
func paramStep(t *testing.T, params []byte) float64 {
	t.Helper()
	m := format.NewMsgReader(params, -1)
	var step float64
	err := m.MapKeys("params", func(k string) error {
		if k == "step" {
			v, err := m.Float(k)
			step = v
			return err
		}
		return m.Skip(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	return step
}
