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
		guided("ecsq + column steps + LDLQ + measured allocation + sequential", "ecsq", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true}, true),
		guided("tcq + column steps + LDLQ + measured allocation + sequential", "tcq", convert.Guidance{ColumnSteps: true, LDLQ: true, Allocate: true, Sequential: true}, true),
	)
}

// A PPLPoint is one variant at one rate: the model's mean negative
// log-likelihood per token on the evaluation text.
type PPLPoint struct {
	Variant       string  `json:"variant"`
	TargetBits    float64 `json:"target_bits"`
	BitsPerWeight float64 `json:"bits_per_weight"`
	Tokens        int     `json:"tokens"`
	NLL           float64 `json:"nll_per_token"`
	// RelNLL is NLL / NLL of the original weights − 1.
	RelNLL float64 `json:"rel_nll"`
}

// PPL converts the Llama checkpoint in with every variant at every rate
// (q4k once, at its fixed rate), loads each result and evaluates it on
// docs. Guided variants that run the model (measured allocation,
// sequential guidance) run it on calibDocs, or on docs if calibDocs is
// nil. The first point is the original model ("fp32"). base holds options
// common to every conversion.
func PPL(in string, docs, calibDocs [][]int, variants []Variant, bits []float64, base convert.Options, dir string) ([]PPLPoint, error) {
	if calibDocs == nil {
		calibDocs = docs
	}
	m, err := llama.Load(in)
	if err != nil {
		return nil, err
	}
	window := m.Config().SeqLen
	ref, err := llama.EvalNLL(m, docs, window)
	if err != nil {
		return nil, err
	}
	pts := []PPLPoint{{Variant: "fp32", TargetBits: 32, BitsPerWeight: 32, Tokens: ref.Tokens, NLL: ref.MeanNLL()}}
	for _, v := range variants {
		targets := bits
		if v.Codec == "q4k" {
			targets = []float64{4.5}
		}
		for _, b := range targets {
			p, err := pplPoint(in, m, docs, calibDocs, window, v, b, base, dir)
			if err != nil {
				return nil, fmt.Errorf("%s at %g bits: %w", v.Name, b, err)
			}
			p.RelNLL = p.NLL/ref.MeanNLL() - 1
			pts = append(pts, p)
		}
	}
	return pts, nil
}

func pplPoint(in string, ref *llama.Model, docs, calibDocs [][]int, window int, v Variant, bits float64, base convert.Options, dir string) (PPLPoint, error) {
	p := PPLPoint{Variant: v.Name, TargetBits: bits}
	src, err := safetensors.OpenPath(in)
	if err != nil {
		return p, err
	}
	defer src.Close()
	out := filepath.Join(dir, "ppl.nwc")
	defer os.Remove(out)
	o := base
	o.Codec = v.Codec
	if v.Codec != "q4k" {
		o.Bits = bits
	}
	if v.Guidance != nil {
		g := *v.Guidance
		g.Calib = &convert.Calibration{Model: ref.Clone(), Docs: calibDocs, Window: window}
		if v.Probe {
			g.Probe = &convert.Probe{}
		}
		o.Guidance = &g
	}
	st, err := convert.ToNWC(context.Background(), src, out, &o)
	if err != nil {
		return p, err
	}
	p.BitsPerWeight = st.BitsPerWeight
	m, err := llama.Load(out)
	if err != nil {
		return p, err
	}
	r, err := llama.EvalNLL(m, docs, window)
	if err != nil {
		return p, err
	}
	p.Tokens, p.NLL = r.Tokens, r.MeanNLL()
	return p, nil
}
