package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nwcodec/nwc/bench"
	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// runBenchPPL prints the perplexity table: nll/token of a Llama model on a
// text after compression by each variant at each rate.
func runBenchPPL(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench ppl", stderr)
	model := fs.String("model", "", "Llama checkpoint `FILE` (.safetensors or index.json; required)")
	tokPath := fs.String("tokenizer", "", "tokenizer `FILE`: llama2.c tokenizer.bin or Hugging Face tokenizer.json (required)")
	text := fs.String("text", "", "evaluation text `FILE`, one document per line (required)")
	hessians := fs.String("hessians", "", "Hessian `FILE`; default: calibrate on --calib-text")
	calibText := fs.String("calib-text", "", "calibration text `FILE` for the Hessians, the allocation probe and sequential guidance (default: --text)")
	split := fs.Bool("split", false, "calibrate on the first half of --text's documents and evaluate on the rest")
	bitsList := fs.String("bits", "2,3,4,5,6", "comma-separated target bits per weight")
	only := fs.String("variants", "", "comma-separated variant names to run (default all)")
	asJSON := fs.Bool("json", false, "print a JSON list of points")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *model == "" || *tokPath == "" || *text == "" {
		return usagef("want --model, --tokenizer and --text")
	}
	bits, err := parseBits(*bitsList)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	docs, err := llama.LoadDocs(*text, tok)
	if err != nil {
		return err
	}
	var h *calib.Set
	var calibDocs [][]int // nil: the evaluation text
	switch {
	case *split && (*hessians != "" || *calibText != ""):
		return usagef("--split calibrates on --text: no --hessians or --calib-text")
	case *split:
		if len(docs) < 2 {
			return usagef("--split needs at least two documents in --text")
		}
		calibDocs, docs = docs[:len(docs)/2], docs[len(docs)/2:]
		var m *llama.Model
		if m, err = llama.Load(*model); err == nil {
			h, err = hessiansOf(context.Background(), m, calibDocs)
		}
	case *hessians != "":
		h, err = calib.ReadHessians(*hessians)
	default:
		ct := *calibText
		if ct == "" {
			ct = *text
		}
		_, calibDocs, h, err = calibrate(context.Background(), *model, ct, *tokPath, 0)
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
			}
		}
		variants = keep
	}
	dir, err := os.MkdirTemp("", "nwc-ppl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var base convert.Options
	pl := newProgress(stderr, *quiet)
	base.Progress = convertProgress(pl, "bench ppl: convert")
	pts, err := bench.PPL(*model, docs, calibDocs, variants, bits, base, dir)
	pl.Finish()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, pts)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "variant\ttarget\tbits/weight\ttokens\tnll/token\tvs fp32\t")
	for _, p := range pts {
		fmt.Fprintf(tw, "%s\t%.2f\t%.4f\t%d\t%.4f\t%+.2f%%\t\n", p.Variant, p.TargetBits, p.BitsPerWeight, p.Tokens, p.NLL, 100*p.RelNLL)
	}
	return tw.Flush()
}
