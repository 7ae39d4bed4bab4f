package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/internal/progress"
	"github.com/nwcodec/nwc/reader"
)

func runDecode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("decode", stderr)
	out := fs.String("o", "", "output .safetensors or .gguf `file` (required)")
	dt := fs.String("dtype", convert.DTypeOrig, "output dtype of float tensors: orig, f32, f16 or bf16")
	force := fs.Bool("force", false, "replace OUT if it exists")
	jobs := fs.Int("jobs", 0, "chunk groups decoded at once (default: the number of cores)")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	gf := addGGUFFlags(fs)
	shards := fs.String("shards", "one", "one: write one file; same: write the source checkpoint's shards and model.safetensors.index.json into the directory -o (files converted with a plan from a sharded checkpoint)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one input and -o OUT.safetensors or OUT.gguf")
	}
	if *shards != "one" && *shards != "same" {
		return usagef("--shards %q: want one or same", *shards)
	}
	// The output's extension chooses the format.
	isGGUF := strings.EqualFold(filepath.Ext(*out), ".gguf")
	what := "a safetensors file"
	if isGGUF {
		what = "a GGUF file"
		if *shards == "same" {
			return usagef("--shards same writes safetensors shards, not GGUF")
		}
	} else if gf.used(setFlags(fs)) {
		return usagef("--config, --tokenizer, --name and --alignment are for a .gguf output")
	}
	ctx := commandContext()
	r, closeR, err := openNWC(ctx, pos[0], stderr)
	if err != nil {
		return explainNWCErr(pos[0], "decode", err)
	}
	defer closeR()
	inputs := append(r.Parts(), pos[0])
	if *shards == "same" {
		return decodeShards(ctx, r, *out, inputs, *dt, *jobs, *force, *quiet, stdout, stderr)
	}
	target, err := checkOutput(*out, what, *force, inputs...)
	if err != nil {
		return err
	}
	reportLeftovers(stderr, "decode", target)
	pl := newProgress(stderr, *quiet)
	pl.Start("decode", len(r.Tensors()), "tensors", int64(totalWeights(r)))
	progress := func(done, _ int, weights, total uint64) {
		pl.Set(done, int64(weights))
		if 2*weights >= total {
			testPause("mid-write")
		}
	}
	testPause("before-output")
	if isGGUF {
		err = exportGGUF(ctx, r, target, gf, *dt, *jobs, progress)
	} else {
		err = convert.Decode(ctx, r, target, &convert.DecodeOptions{DType: *dt, Jobs: *jobs, Progress: progress})
	}
	pl.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d tensors\n", *out, len(r.Tensors()))
	return nil
}

// decodeShards runs decode --shards same into the directory out.
func decodeShards(ctx context.Context, r *reader.Reader, out string, inputs []string, dt string, jobs int, force, quiet bool, stdout, stderr io.Writer) error {
	names, _, err := convert.SourceShards(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, n := range append(names, convert.IndexName) {
		if _, err := checkOutput(filepath.Join(out, n), "a safetensors file", force, inputs...); err != nil {
			return err
		}
	}
	pl := newProgress(stderr, quiet)
	pl.Start("decode", len(r.Tensors()), "tensors", int64(totalWeights(r)))
	err = convert.DecodeShards(ctx, r, out, &convert.DecodeOptions{
		DType: dt, Jobs: jobs,
		Progress: func(done, _ int, weights, _ uint64) { pl.Set(done, int64(weights)) },
	})
	pl.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d tensors in %d shards and %s\n", out, len(r.Tensors()), len(names), convert.IndexName)
	return nil
}

func totalWeights(r *reader.Reader) uint64 {
	var n uint64
	for _, t := range r.Tensors() {
		n += t.NumElements()
	}
	return n
}

// newProgress returns the progress line of a long command on stderr, or
// nil (which draws nothing) with --quiet. It redraws in place on a
// terminal and prints a line every few seconds elsewhere.
func newProgress(stderr io.Writer, quiet bool) *progress.Line {
	if quiet {
		return nil
	}
	f, ok := stderr.(*os.File)
	return progress.New(stderr, ok && isTerminal(f))
}
