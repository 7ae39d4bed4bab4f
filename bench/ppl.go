package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// A Variant is one way of compressing a model for the perplexity table.
type Variant struct {
	Name  string
	Codec string
	// Guidance adds importance levels, LDLQ and bit allocation; nil for
	// plain coding.
	Guidance *convert.Guidance
	// Probe measures each matrix's sensitivity on the model itself (over
	// the start of the text, see convert.Probe) for the bit allocation.
	Probe bool
	// NoLearned codes nwc without its learned transform (every matrix on
	// the scalar trellis path, no decoder in the file): the same file
	// without the neural part.
	NoLearned bool
}

// Variants returns the rows of issue 5's table for a set of Hessians:
// the baselines, then nwc with each output-guided step added in turn.
func Variants(h *calib.Set) []Variant {
	vs := []Variant{{Name: "rtn g128", Codec: "rtn"}, {Name: "q4k", Codec: "q4k"}, {Name: "ecsq", Codec: "ecsq"}, {Name: "tcq", Codec: "tcq"}, {Name: "nwc", Codec: "nwc"}}
	if h == nil {
		return vs
	}
	guided := func(name, id string, g convert.Guidance, probe bool) Variant {
		g.Hessians = h
		return Variant{Name: name, Codec: id, Guidance: &g, Probe: probe}
	}
	return append(vs,
		guided("rtn g128 + LDLQ", "rtn", convert.Guidance{LDLQ: true}, false),
		guided("ecsq + LDLQ", "ecsq", convert.Guidance{LDLQ: true}, false),
		guided("nwc + importance", "nwc", convert.Guidance{Importance: true}, false),
		guided("nwc + importance + LDLQ", "nwc", convert.Guidance{Importance: true, LDLQ: true}, false),
		guided("nwc + importance + LDLQ + measured allocation", "nwc", convert.Guidance{Importance: true, LDLQ: true, Allocate: true}, true),
		guided("nwc + LDLQ", "nwc", convert.Guidance{LDLQ: true}, false),
		guided("nwc + column steps + LDLQ", "nwc", convert.Guidance{ColumnSteps: true, LDLQ: true}, false),
		guided("nwc + column steps + LDLQ + allocation (Hessian proxy)", "nwc", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true}, false),
		guided("nwc + column steps + LDLQ + measured allocation", "nwc", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true}, true),
		guided("nwc + column steps + LDLQ + measured allocation + sequential", "nwc", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true}, true),
		guided("nwc + column steps + LDLQ + measured allocation + sequential + token steps", "nwc", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true, TokenSteps: true}, true),
		noLearned(guided("nwc + column steps + LDLQ + measured allocation + sequential + token steps (no learned transform)", "nwc", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true, TokenSteps: true}, true)),
		guided("ecsq + column steps + LDLQ + measured allocation + sequential", "ecsq", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true}, true),
		guided("tcq + column steps + LDLQ + measured allocation + sequential", "tcq", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true}, true),
	)
}

func noLearned(v Variant) Variant {
	v.NoLearned = true
	return v
}

// An EvalSet is a named evaluation text of the perplexity table.
type EvalSet struct {
	Name string
	Docs [][]int
	// InSample marks text the guided variants were calibrated on: its
	// numbers show the gap to held-out text, never the result.
	InSample bool
}

// A SetNLL is a model's mean negative log-likelihood per token on one
// evaluation set.
type SetNLL struct {
	Set      string  `json:"set"`
	InSample bool    `json:"in_sample,omitempty"`
	Tokens   int     `json:"tokens"`
	NLL      float64 `json:"nll_per_token"`
	// RelNLL is NLL / NLL of the original weights on the set − 1.
	RelNLL float64 `json:"rel_nll"`
}

// A PPLPoint is one variant at one rate, with bits counted from the file:
// the model's nll on every evaluation set, the first of which (Tokens,
// NLL, RelNLL) is the headline.
type PPLPoint struct {
	Variant       string  `json:"variant"`
	TargetBits    float64 `json:"target_bits"`
	BitsPerWeight float64 `json:"bits_per_weight"`
	// SQNRdB is the signal-to-quantization-noise ratio of the file's
	// matrices against the original ones (as bench rd measures it).
	SQNRdB float64 `json:"sqnr_db"`
	Tokens int     `json:"tokens"`
	NLL    float64 `json:"nll_per_token"`
	RelNLL float64 `json:"rel_nll"`
	// Sets holds every evaluation set's numbers, the first included.
	Sets []SetNLL `json:"sets"`
}

// PPL converts the Llama checkpoint in with every variant at every rate
// (q4k once, at its fixed rate), loads each result and evaluates it on
// every set of evals. Guided variants that run the model (measured
// allocation, sequential guidance) run it on calibDocs. The first point is
// the original model ("fp32"). base holds options common to every
// conversion.
func PPL(in string, evals []EvalSet, calibDocs [][]int, variants []Variant, bits []float64, base convert.Options, dir string) ([]PPLPoint, error) {
	if len(evals) == 0 {
		return nil, fmt.Errorf("bench: no evaluation text")
	}
	m, err := llama.Load(in)
	if err != nil {
		return nil, err
	}
	window := m.Config().SeqLen
	ref, err := evalSets(m, evals, window, nil)
	if err != nil {
		return nil, err
	}
	orig, err := loadMatrices(in)
	if err != nil {
		return nil, err
	}
	pts := []PPLPoint{point("fp32", 32, 32, ref)}
	pts[0].SQNRdB = LosslessSQNR
	for _, v := range variants {
		targets := bits
		if v.Codec == "q4k" {
			targets = []float64{4.5}
		}
		for _, b := range targets {
			if v.Guidance != nil && calibDocs == nil {
				return nil, fmt.Errorf("%s: a guided variant without calibration text", v.Name)
			}
			bpw, sqnr, sets, err := pplPoint(in, m, evals, calibDocs, window, v, b, base, dir, ref, orig)
			if err != nil {
				return nil, fmt.Errorf("%s at %g bits: %w", v.Name, b, err)
			}
			p := point(v.Name, b, bpw, sets)
			p.SQNRdB = sqnr
			pts = append(pts, p)
		}
	}
	return pts, nil
}

func point(name string, target, bpw float64, sets []SetNLL) PPLPoint {
	return PPLPoint{Variant: name, TargetBits: target, BitsPerWeight: bpw,
		Tokens: sets[0].Tokens, NLL: sets[0].NLL, RelNLL: sets[0].RelNLL, Sets: sets}
}

// evalSets evaluates m on every set, relative to ref's numbers if given.
func evalSets(m *llama.Model, evals []EvalSet, window int, ref []SetNLL) ([]SetNLL, error) {
	out := make([]SetNLL, len(evals))
	for i, e := range evals {
		r, err := llama.EvalNLL(m, e.Docs, window)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if r.Tokens == 0 {
			return nil, fmt.Errorf("%s: no tokens to score", e.Name)
		}
		out[i] = SetNLL{Set: e.Name, InSample: e.InSample, Tokens: r.Tokens, NLL: r.MeanNLL()}
		if ref != nil {
			out[i].RelNLL = out[i].NLL/ref[i].NLL - 1
		}
	}
	return out, nil
}

func pplPoint(in string, orig *llama.Model, evals []EvalSet, calibDocs [][]int, window int, v Variant, bits float64, base convert.Options, dir string, ref []SetNLL, origW map[string][]float32) (bpw, sqnr float64, sets []SetNLL, err error) {
	src, err := safetensors.OpenPath(in)
	if err != nil {
		return 0, 0, nil, err
	}
	defer src.Close()
	out := filepath.Join(dir, "ppl.nwc")
	defer os.Remove(out)
	o := base
	o.Codec = v.Codec
	if v.Codec != "q4k" {
		o.Bits = bits
	}
	o.Encode.NoBlob = o.Encode.NoBlob || v.NoLearned
	if v.Guidance != nil {
		g := *v.Guidance
		g.Calib = &convert.Calibration{Model: orig.Clone(), Docs: calibDocs, Window: window}
		if v.Probe {
			g.Probe = &convert.Probe{}
		}
		o.Guidance = &g
	}
	st, err := convert.ToNWC(context.Background(), src, out, &o)
	if err != nil {
		return 0, 0, nil, err
	}
	if sqnr, err = fileSQNR(out, origW); err != nil {
		return 0, 0, nil, err
	}
	m, err := llama.Load(out)
	if err != nil {
		return 0, 0, nil, err
	}
	sets, err = evalSets(m, evals, window, ref)
	return st.BitsPerWeight, sqnr, sets, err
}
