package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nwcodec/nwc/bench"
	"github.com/nwcodec/nwc/convert"
)

func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ppl" {
		return runBenchPPL(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "scale" {
		return runBenchScale(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rd" {
		return usagef("want: nwc bench rd [--codecs LIST] [--bits LIST] [--json] [--plot FILE.png] IN...\n   or: nwc bench ppl --model FILE --tokenizer TOK --text FILE [--hessians FILE] [--bits LIST] [--json]\n   or: nwc bench scale [--shapes LIST] [--codecs LIST] [--bits B] [--dir DIR] [--jobs N] [--json]")
	}
	fs := newFlagSet("bench rd", stderr)
	codecs := fs.String("codecs", "ecsq,rtn,q4k", "comma-separated codecs")
	bitsList := fs.String("bits", "2,3,4,5,6", "comma-separated target bits per weight")
	asJSON := fs.Bool("json", false, "print a JSON list of points")
	plotPath := fs.String("plot", "", "write an RD plot to `FILE` (.png, .svg or .pdf)")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	codecRef := fs.Bool("codec-ref", false, "nwc: reference the built-in decoder by SHA-256 instead of storing it")
	noLearned := fs.Bool("no-learned", false, "nwc: code without the learned transform (see nwc convert --no-learned)")
	rate := fs.String("rate", "auto", "rate control: auto, exact or model (see nwc convert --rate)")
	var transposed multiFlag
	fs.Var(&transposed, "transposed", "`REGEX` of matrices stored [in, out] (repeatable)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want at least one input checkpoint")
	}
	bits, err := parseBits(*bitsList)
	if err != nil {
		return err
	}
	var base convert.Options
	base.Encode.BlobRef = *codecRef
	base.Encode.NoBlob = *noLearned
	if base.Rate, err = parseRate(*rate); err != nil {
		return err
	}
	if base.Transposed, err = compileAll(transposed); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "nwc-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var pts []bench.Point
	pl := newProgress(stderr, *quiet)
	for _, in := range pos {
		base.Progress = convertProgress(pl, "bench rd "+filepath.Base(in))
		p, err := bench.RD(in, strings.Split(*codecs, ","), bits, base, dir)
		pl.Finish()
		if err != nil {
			return err
		}
		pts = append(pts, p...)
	}
	if *plotPath != "" {
		if err := bench.Plot(pts, *plotPath); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(stdout, pts)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "file\tcodec\ttarget\tbits/weight\tblob b/w\tSQNR dB\t6.02R dB\tNMSE\tencode s\tdecode s\t")
	for _, p := range pts {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.4f\t%.4f\t%.2f\t%.2f\t%.3g\t%.2f\t%.3f\t\n", p.File, p.Codec, p.TargetBits,
			p.BitsPerWeight, p.BlobBitsPerWeight, p.SQNRdB, p.GaussianBoundDB, p.NMSE, p.EncodeSeconds, p.DecodeSeconds)
	}
	return tw.Flush()
}

// parseBits parses a comma-separated list of rates.
func parseBits(list string) ([]float64, error) {
	var bits []float64
	for _, s := range strings.Split(list, ",") {
		b, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, usagef("--bits: %v", err)
		}
		if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 {
			return nil, usagef("--bits %s: want finite numbers above 0", s)
		}
		bits = append(bits, b)
	}
	return bits, nil
}
