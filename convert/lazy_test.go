package convert_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// TestLazyCalibration checks that probing and sequential guidance read a
// layer at a time from the checkpoint (llama.Lazy) write the same file as
// with the model in memory, for llama2.c and Hugging Face names, and that
// the file does not depend on the number of CPUs.
func TestLazyCalibration(t *testing.T) {
	in, docs := convert.Stories260K(t)
	docs = docs[:4]
	probeTokens := 300
	if raceEnabled {
		// The race pass needs every concurrent path once, not the
		// full calibration: the same-file comparison holds at any size.
		t.Log("race detector on: calibrating on 150 tokens of one story")
		docs, probeTokens = [][]int{docs[0][:150]}, 100
	}
	orig, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	hf := writeHF(t, in, orig.Config().HeadDim())
	type mode struct {
		lazy  bool
		procs int
	}
	modes := map[string][]mode{in: {{false, 2}, {true, 1}}, hf: {{false, 3}, {true, 2}}}
	for _, path := range []string{in, hf} {
		var files [][]byte
		for i, mode := range modes[path] {
			old := runtime.GOMAXPROCS(mode.procs)
			cal := &convert.Calibration{Docs: docs}
			var src safetensors.Source
			if mode.lazy {
				cal.Lazy, src, err = llama.OpenLazy(path)
			} else {
				cal.Model, err = llama.Load(path)
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := safetensors.OpenPath(path)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "m.nwc")
			var probe convert.Progress
			_, err = convert.ToNWC(context.Background(), st, out, &convert.Options{Codec: "ecsq", Bits: 4, Guidance: &convert.Guidance{
				ColumnSteps: true, LDLQ: true, Sequential: true, Allocate: true, Probe: &convert.Probe{MaxTokens: probeTokens, Local: true}, Calib: cal,
			}, Progress: func(p convert.Progress) {
				if p.Phase == convert.PhaseProbe {
					probe = p
				}
			}})
			st.Close()
			if src != nil {
				src.Close()
			}
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			if probe.TotalTensors == 0 || probe.Tensors != probe.TotalTensors || probe.Weights != probe.TotalWeights {
				t.Errorf("%s: the probe's last progress report is %+v, want all done", path, probe)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, b)
			if i > 0 && !bytes.Equal(b, files[0]) {
				t.Errorf("%s: lazy %v with GOMAXPROCS %d wrote another file than the model in memory", filepath.Base(path), mode.lazy, mode.procs)
			}
		}
	}
}
