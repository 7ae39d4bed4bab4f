package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/bench"
	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// defaultHeldout is the number of held-out tokens bench ppl samples from
// the model by default: 8 k tokens put the standard error of a mean nll
// difference well below the effects the table is read for.
const defaultHeldout = 8192

// runBenchPPL prints the perplexity table: nll/token of a Llama model after
// compression by each variant at each rate, on text the calibration never
// saw — stories sampled from the model itself with a seed of their own,
// and any text given — and, marked, on the calibration text.
func runBenchPPL(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench ppl", stderr)
	model := fs.String("model", "", "Llama checkpoint `FILE` (.safetensors or index.json; required)")
	tokPath := fs.String("tokenizer", "", "tokenizer `FILE`: llama2.c tokenizer.bin or Hugging Face tokenizer.json (required)")
	text := fs.String("text", "", "evaluation text `FILE`, one document per line (optional)")
	heldout := fs.Int("heldout-generate", defaultHeldout, "evaluate on `N` tokens of stories sampled from the model at temperature 1 (0: none)")
	heldoutSeed := fs.Uint64("heldout-seed", 1, "random seed of --heldout-generate's samples")
	hessians := fs.String("hessians", "", "Hessian `FILE` for the guided variants (which then run no model: no measured allocation or sequential guidance)")
	calibText := fs.String("calib-text", "", "calibration text `FILE` for the Hessians, the allocation probe and sequential guidance")
	calibGen := fs.Int("calib-generate", 0, "calibrate also on `N` tokens sampled from the model at temperature 1")
	calibSeed := fs.Uint64("calib-seed", DefaultCalibSeed, "random seed of --calib-generate's samples (not --heldout-seed)")
	split := fs.Bool("split", false, "calibrate on the first half of --text's documents and evaluate on the rest")
	bitsList := fs.String("bits", "2,3,4,5,6", "comma-separated target bits per weight")
	only := fs.String("variants", "", "comma-separated variant names to run (default all; without calibration, the unguided ones)")
	asJSON := fs.Bool("json", false, "print a JSON list of points")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	rate := fs.String("rate", "auto", "rate control of the conversions: auto, exact or model (see nwc convert --rate)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *model == "" || *tokPath == "" {
		return usagef("want --model and --tokenizer, no positional arguments")
	}
	switch {
	case *heldout < 0 || *calibGen < 0:
		return usagef("--heldout-generate %d or --calib-generate %d is negative", *heldout, *calibGen)
	case *heldout == 0 && *text == "":
		return usagef("nothing to evaluate on: give --text or --heldout-generate N")
	case *split && *text == "":
		return usagef("--split needs --text")
	case *split && (*hessians != "" || *calibText != "" || *calibGen > 0):
		return usagef("--split calibrates on --text: no --hessians, --calib-text or --calib-generate")
	case *hessians != "" && (*calibText != "" || *calibGen > 0):
		return usagef("give --hessians or calibration text, not both")
	case *heldout > 0 && *calibGen > 0 && *heldoutSeed == *calibSeed:
		return usagef("--heldout-seed and --calib-seed are both %d: the held-out text would be calibration text", *calibSeed)
	}
	bits, err := parseBits(*bitsList)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	m, err := llama.Load(*model)
	if err != nil {
		return err
	}
	ctx := commandContext()
	var evals []bench.EvalSet
	if *heldout > 0 {
		docs, err := generateDocs(ctx, m, tok, *heldoutSeed, *heldout)
		if err != nil {
			return fmt.Errorf("--heldout-generate: %w", err)
		}
		evals = append(evals, bench.EvalSet{Name: fmt.Sprintf("generated (seed %d)", *heldoutSeed), Docs: docs})
	}
	var calibDocs [][]int
	if *text != "" {
		docs, err := llama.LoadDocs(*text, tok)
		if err != nil {
			return err
		}
		if *split {
			if len(docs) < 2 {
				return usagef("--split needs at least two documents in --text")
			}
			calibDocs, docs = docs[:len(docs)/2], docs[len(docs)/2:]
		}
		evals = append(evals, bench.EvalSet{Name: filepath.Base(*text), Docs: docs})
	}
	if *calibText != "" || *calibGen > 0 {
		src := calibSource{text: *calibText, tokPath: *tokPath, generate: *calibGen, seed: *calibSeed}
		if calibDocs, err = src.docs(ctx, m); err != nil {
			return err
		}
	}
	for i := range evals {
		evals[i].InSample = overlaps(evals[i].Docs, calibDocs)
	}
	var h *calib.Set
	switch {
	case *hessians != "":
		h, err = calib.ReadHessians(*hessians)
	case calibDocs != nil:
		h, err = hessiansOf(ctx, m, calibDocs)
		// The calibration text, as much of it as the first evaluation
		// set holds, shows how far in-sample numbers flatter.
		evals = append(evals, bench.EvalSet{Name: "calibration (in-sample)", Docs: capTokens(calibDocs, tokenCount(evals[0].Docs)), InSample: true})
	}
	if err != nil {
		return err
	}
	variants := bench.Variants(h)
	if *only != "" {
		want := map[string]bool{}
		for _, v := range strings.Split(*only, ",") {
			want[strings.TrimSpace(v)] = true
		}
		var keep []bench.Variant
		for _, v := range variants {
			if want[v.Name] {
				keep = append(keep, v)
				delete(want, v.Name)
			}
		}
		if len(want) != 0 {
			return usagef("--variants: no variant %q here (guided ones need calibration text or --hessians)", slices.Sorted(maps.Keys(want)))
		}
		variants = keep
	}
	dir, err := os.MkdirTemp("", "nwc-ppl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var base convert.Options
	if base.Rate, err = parseRate(*rate); err != nil {
		return err
	}
	pl := newProgress(stderr, *quiet)
	base.Progress = convertProgress(pl, "bench ppl: convert")
	pts, err := bench.PPL(*model, evals, calibDocs, variants, bits, base, dir)
	pl.Finish()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, pts)
	}
	tw := newTable(stdout)
	head := "variant\ttarget\tbits/weight\tSQNR dB\t"
	for _, e := range evals {
		name := e.Name
		if e.InSample {
			name = "(" + name + ")"
		}
		head += fmt.Sprintf("%s: nll\tvs fp32\t", name)
	}
	fmt.Fprintln(tw, head)
	for _, p := range pts {
		fmt.Fprintf(tw, "%s\t%.2f\t%.4f\t%.2f\t", p.Variant, p.TargetBits, p.BitsPerWeight, p.SQNRdB)
		for _, s := range p.Sets {
			fmt.Fprintf(tw, "%.4f\t%+.2f%%\t", s.NLL, 100*s.RelNLL)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "tokens:\t\t\t\t")
	for _, s := range pts[0].Sets {
		fmt.Fprintf(tw, "%d\t\t", s.Tokens)
	}
	fmt.Fprintln(tw)
	return tw.Flush()
}

// overlaps reports whether any document of docs is one of calibDocs, or
// starts with the last of them (which --calib-tokens may have cut short):
// numbers on such a set are in-sample.
func overlaps(docs, calibDocs [][]int) bool {
	seen := make(map[string]bool, len(calibDocs))
	for _, d := range calibDocs {
		seen[fmt.Sprint(d)] = true
	}
	for _, d := range docs {
		if seen[fmt.Sprint(d)] {
			return true
		}
		if n := len(calibDocs); n > 0 && len(d) > len(calibDocs[n-1]) && fmt.Sprint(d[:len(calibDocs[n-1])]) == fmt.Sprint(calibDocs[n-1]) {
			return true
		}
	}
	return false
}

// tokenCount returns the number of tokens in docs.
func tokenCount(docs [][]int) int {
	n := 0
	for _, d := range docs {
		n += len(d)
	}
	return n
}
