package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/progress"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

func runConvert(args []string, stdout, stderr io.Writer) error {
	return convertCmd("convert", args, stdout, stderr, nil)
}

// convertCmd runs nwc convert, or nwc plan when name is "plan"; loaded is
// the plan whose recorded options args carry (convert --plan).
func convertCmd(name string, args []string, stdout, stderr io.Writer, loaded *loadedPlan) error {
	fs := newFlagSet(name, stderr)
	out := fs.String("o", "", "output .nwc `file` (required; the plan file for nwc plan; a directory with --part)")
	codecID := fs.String("codec", codec.Lossless, "codec of the matrices: raw, lossless, ecsq, tcq, rtn, q4k or nwc (default nwc when --bits, --tensor-bits or --step is given)")
	bits := fs.Float64("bits", 0, "target bits per weight of the whole file (nwc, ecsq, tcq; rtn: the integer width whose rate with its group scales is nearest)")
	force := fs.Bool("force", false, "replace OUT if it exists")
	step := fs.Float64("step", 0, "quantizer step in column-RMS units, instead of --bits (ecsq, nwc)")
	var tensorBits, keep, transposed multiFlag
	fs.Var(&tensorBits, "tensor-bits", "`REGEX=B`: target bits for matching matrices (repeatable)")
	fs.Var(&keep, "keep", "`REGEX` of tensor names kept lossless (repeatable; default norm|bias)")
	fs.Var(&transposed, "transposed", "`REGEX` of matrices stored [in, out], like PaddlePaddle linears (repeatable)")
	minElems := fs.Uint64("min-elements", convert.DefaultMinElements, "matrices with fewer elements stay lossless")
	rtnBits := fs.Int("rtn-bits", 0, "rtn bit width (default: nearest to --bits, else 4)")
	var gf guideFlags
	fs.StringVar(&gf.hessians, "hessians", "", "Hessian `FILE` (nwc calibrate): per-column steps and LDLQ error compensation")
	fs.StringVar(&gf.importance, "importance", "", "Hessian `FILE` used for per-column steps (and --levels) only, no LDLQ")
	fs.StringVar(&gf.calibText, "calib", "", "calibration text `FILE`: run IN itself (a Llama model) on it for Hessians and sequential guidance")
	fs.StringVar(&gf.tokPath, "tokenizer", "", "tokenizer `FILE` for --calib: llama2.c tokenizer.bin or Hugging Face tokenizer.json")
	fs.IntVar(&gf.calibTokens, "calib-tokens", 0, "use only the first `N` tokens of --calib (default all): calibration, the allocation probe and sequential guidance cost time and memory in proportion")
	fs.IntVar(&gf.calibGenerate, "calib-generate", 0, "calibrate also on `N` tokens of stories sampled from IN itself at temperature 1 (data-free; after --calib's text if given)")
	fs.Uint64Var(&gf.calibSeed, "calib-seed", DefaultCalibSeed, "random seed of --calib-generate's samples")
	fs.Float64Var(&gf.seqDamp, "seq-damp", 0, "ridge on sequential guidance's corrections, relative to the mean input power (default 0.3; less with more calibration tokens)")
	fs.IntVar(&gf.ldlqBlock, "ldlq-block", 0, "columns per LDLQ block (default cols/16, at most 128; 1 = column by column)")
	fs.BoolVar(&gf.noLDLQ, "no-ldlq", false, "with Hessians: no LDLQ error compensation")
	fs.BoolVar(&gf.noColumnSteps, "no-column-steps", false, "with Hessians: every column of a matrix at the same normalized step")
	fs.BoolVar(&gf.levels, "levels", false, "with Hessians: also the paper's importance levels from diag(H) (2 bits per column)")
	fs.BoolVar(&gf.noSequential, "no-sequential", false, "with --calib: code every matrix against the original model's Hessians, not the model as compressed so far (sequential guidance)")
	fs.BoolVar(&gf.noTokenSteps, "no-token-steps", false, "with --calib: code the token embedding and classifier like other matrices, not with a step per token from its frequency in the calibration text")
	fs.BoolVar(&gf.allocate, "allocate", false, "with Hessians: spread --bits over the matrices by output-error sensitivity (measured on --calib text)")
	noLearned := fs.Bool("no-learned", false, "nwc: code every matrix on the scalar trellis path and store no decoder (the same file without the learned transform)")
	codecRef := fs.Bool("codec-ref", false, "nwc: store only the SHA-256 of the built-in decoder instead of its weights")
	group := fs.Int("group", 0, "rtn group size (default 128)")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	rate := fs.String("rate", "auto", "rate control: exact (dry runs of the whole file), model (row samples and one pass) or auto (exact up to 4 Mi lossy weights, 64 Mi with calibration)")
	jobs := fs.Int("jobs", 0, "tensors encoded at once (default: GOMAXPROCS); the output is the same for any value")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	groupKiB := fs.Int("group-kib", codec.DefaultGroupBytes>>10, "decoded size of a chunk group in KiB")
	plainIndex := fs.Bool("index-uncompressed", false, "store the index as plain msgpack, not zstd, so that a reader without zstd can open the file")
	align := fs.Int("align-log2", -1, "log2 of the section alignment, 0 (packed) to 24 (default: 6 = 64 bytes with --codec raw, else packed)")
	pf := planFlags(fs, name)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one input and -o OUT.nwc")
	}
	set := setFlags(fs)
	if name == "convert" && *pf.plan != "" && loaded == nil {
		return convertFromPlan(fs, pos[0], pf, stdout, stderr)
	}
	if err := pf.check(name, set, loaded); err != nil {
		return err
	}
	if !set["codec"] && (set["bits"] || set["tensor-bits"] || set["step"]) {
		*codecID = "nwc" // a rate asks for a lossy file
	}
	if err := checkConvertFlags(set, *codecID, *bits, *step, tensorBits, *rtnBits, *group, *groupKiB); err != nil {
		return err
	}
	if gf.ldlqBlock < 0 {
		return usagef("--ldlq-block %d is negative", gf.ldlqBlock)
	}
	rateMode, err := parseRate(*rate)
	if err != nil {
		return err
	}
	if *jobs < 0 {
		return usagef("--jobs %d: want 0 (GOMAXPROCS) or more", *jobs)
	}
	src, err := safetensors.OpenPath(pos[0])
	if err != nil {
		return explainSafetensorsErr(pos[0], err)
	}
	defer src.Close()
	inputs := append(sourceFiles(pos[0], src), gf.hessians, gf.importance, gf.calibText, gf.tokPath)
	outPath, what := *out, "a .nwc file"
	switch {
	case name == "plan":
		what = "a plan file"
	case loaded != nil:
		inputs = append(inputs, *pf.plan)
		if outPath, err = loaded.output(*out); err != nil {
			return err
		}
	}
	target, err := checkOutput(outPath, what, *force, inputs...)
	if err != nil {
		return err
	}
	reportLeftovers(stderr, "convert", target)
	opts := &convert.Options{
		Codec:       *codecID,
		Bits:        *bits,
		MinElements: *minElems,
		SourceName:  sourceName(pos[0]),
		// config.json and the tokenizer's files go into the metadata,
		// so that eval needs the .nwc alone.
		CheckpointDir: checkpointDir(pos[0]),
		Jobs:          *jobs,
		Rate:          rateMode,
	}
	if opts.TensorBits, err = parseTensorBits(tensorBits); err != nil {
		return err
	}
	if err := checkTensorBits(tensorBits, opts.TensorBits, src); err != nil {
		return err
	}
	if len(keep) > 0 {
		if opts.Keep, err = compileAll(keep); err != nil {
			return err
		}
	}
	if opts.Transposed, err = compileAll(transposed); err != nil {
		return err
	}
	// An interrupt stops calibration and conversion alike and leaves no
	// file.
	ctx := commandContext()
	for _, t := range src.Tensors() {
		n := uint64(1)
		for _, d := range t.Shape {
			n *= uint64(d)
		}
		gf.weights += n
	}
	gf.whole = name == "convert" && loaded == nil
	if opts.Guidance, err = guidance(ctx, pos[0], gf); err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		switch g := opts.Guidance; {
		case g == nil:
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(memoryLimit(src, *codecID, len(opts.Transposed) > 0)))
		case g.Calib != nil && g.Calib.Lazy != nil:
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(streamingMemoryLimit(src, g.Calib.Lazy.Config())))
		}
	}
	opts.Encode.BlobRef = *codecRef
	opts.Encode.NoBlob = *noLearned
	opts.Encode.Step = *step
	opts.Encode.Bits = *rtnBits
	opts.Encode.Group = *group
	opts.Encode.GroupBytes = *groupKiB << 10
	opts.Writer.PlainIndex = *plainIndex
	switch {
	case *align == 0:
		opts.Writer.Packed = true
	case *align > 0:
		if *align > format.MaxAlignLog2 {
			return usagef("--align-log2 %d above %d", *align, format.MaxAlignLog2)
		}
		opts.Writer.AlignLog2 = uint8(*align)
	}
	pl := newProgress(stderr, *quiet)
	show := convertProgress(pl, "")
	opts.Progress = func(p convert.Progress) {
		show(p)
		if p.Phase == convert.PhaseEncode && 2*p.Tensors >= p.TotalTensors {
			testPause("mid-write")
		}
	}
	if name == "plan" {
		defer pl.Finish()
		return makePlan(ctx, src, target, pf, planArgs(fs), opts, *asJSON, stdout)
	}
	testPause("before-output")
	var st *convert.Stats
	if loaded != nil {
		st, err = loaded.convert(ctx, src, target, opts)
	} else {
		st, err = convert.ToNWC(ctx, src, target, opts)
	}
	pl.Finish()
	if err != nil {
		return err
	}
	ratio := 0.0
	if st.InBytes > 0 {
		ratio = float64(st.OutBytes) / float64(st.InBytes)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"input": pos[0], "output": outPath, "codec": *codecID,
			"tensors": st.Tensors, "lossy_tensors": st.Lossy, "input_bytes": st.InBytes, "output_bytes": st.OutBytes,
			"ratio": ratio, "bits_per_weight": st.BitsPerWeight, "passes": st.Passes, "model_bits": st.ModelBits,
			"step_model_bits": st.StepModelBits,
			"rate_seconds":    st.RateTime.Seconds(), "encode_seconds": st.EncodeTime.Seconds(),
		})
	}
	fmt.Fprintf(stdout, "%s: %d tensors (%d lossy), %d → %d bytes (%.1f%%), %.4f bits per weight\n",
		outPath, st.Tensors, st.Lossy, st.InBytes, st.OutBytes, 100*ratio, st.BitsPerWeight)
	return nil
}

// parseRate parses a --rate flag.
func parseRate(s string) (convert.RateMode, error) {
	switch s {
	case "auto":
		return convert.RateAuto, nil
	case "exact":
		return convert.RateExact, nil
	case "model":
		return convert.RateModel, nil
	}
	return 0, usagef("--rate %q: want auto, exact or model", s)
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func compileAll(pats []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, usagef("bad pattern %q: %v", p, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func parseTensorBits(vals []string) ([]convert.TensorBits, error) {
	var out []convert.TensorBits
	for _, v := range vals {
		i := strings.LastIndexByte(v, '=')
		if i < 0 {
			return nil, usagef("--tensor-bits %q: want REGEX=BITS", v)
		}
		b, err := strconv.ParseFloat(v[i+1:], 64)
		if err != nil {
			return nil, usagef("--tensor-bits %q: %v", v, err)
		}
		if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 {
			return nil, usagef("--tensor-bits %q: want a finite number of bits above 0", v)
		}
		re, err := regexp.Compile(v[:i])
		if err != nil {
			return nil, usagef("--tensor-bits %q: %v", v, err)
		}
		out = append(out, convert.TensorBits{Pattern: re, Bits: b})
	}
	return out, nil
}

// sourceName is the file name recorded for a single-file source.
func sourceName(path string) string {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		return "model.safetensors"
	}
	return path
}

// checkpointDir is the directory of a checkpoint given as a file or a
// directory, where Hugging Face keeps its configuration.
func checkpointDir(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return path
	}
	return filepath.Dir(path)
}

// isSafetensorsInvalid reports whether err says the safetensors input is
// invalid (exit status 1) rather than unreadable.
func isSafetensorsInvalid(err error) bool {
	return errors.Is(err, safetensors.ErrFormat) || errors.Is(err, safetensors.ErrUnsupported) || errors.Is(err, safetensors.ErrTooLarge)
}

// convertProgress shows convert's progress reports on pl, one phase per
// pass of each stage (rate model, rate search, sequential, encode), the
// phase's name after label when label is not empty.
func convertProgress(pl *progress.Line, label string) func(convert.Progress) {
	var (
		mu    sync.Mutex
		phase convert.Phase
		pass  int
	)
	return func(p convert.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Phase != phase || p.Pass != pass {
			phase, pass = p.Phase, p.Pass
			name := string(p.Phase)
			if p.Pass > 1 {
				name = fmt.Sprintf("%s #%d", p.Phase, p.Pass)
			}
			if label != "" {
				name = label + ": " + name
			}
			pl.Start(name, p.TotalTensors, "tensors", int64(p.TotalWeights))
		}
		pl.Set(p.Tensors, int64(p.Weights))
	}
}

// streamingMemoryLimit is the soft limit of the Go heap while converting
// src with guidance from a model of configuration cfg read a layer at a
// time, whose memory is bounded by one layer: four float64 matrices as
// wide as the widest input (sequential guidance's moments and target map
// for the down projection), two float32 copies of a layer (original and
// compressed), 16 bytes a weight of the largest tensor (coding it with
// LDLQ and decoding it, the classifier's correction) and 512 MiB for the
// rest. Without it the collector's pacing let the 1.1 B Llama shape's
// heap pass 4 GiB at the classifier after a layer's worth of garbage.
// GOMEMLIMIT overrides it.
func streamingMemoryLimit(src safetensors.Source, cfg llama.Config) int64 {
	var largest int64
	for _, t := range src.Tensors() {
		largest = max(largest, t.NumElements())
	}
	wide := int64(max(cfg.Dim, cfg.HiddenDim))
	dim, kv, hidden := int64(cfg.Dim), int64(cfg.KVDim()), int64(cfg.HiddenDim)
	layer := 2*dim*dim + 2*dim*kv + 3*dim*hidden
	return 4*8*wide*wide + 2*4*layer + 16*min(largest, math.MaxInt64/32) + 512<<20
}

// memoryLimit is the soft limit of the Go heap while converting src
// without guidance to codec id: one float32 copy of its largest tensor
// for nwc, which streams large matrices (the source bytes and one-byte
// latents, about 3 bytes a weight, at its peak; conversion runs the
// largest tensor alone), two for the other codecs and for transposed
// matrices, which encoders load whole, plus 512 MiB for the rest.
// Encoders allocate and drop buffers the size of a tensor faster than the
// collector's default pacing follows: on a 1.1 B-parameter model the live
// heap stayed under 100 MB while the heap grew to 1.9 GB between
// collections. GOMEMLIMIT overrides it.
func memoryLimit(src safetensors.Source, id string, transposed bool) int64 {
	var largest int64
	for _, t := range src.Tensors() {
		largest = max(largest, t.NumElements())
	}
	perWeight := int64(8)
	if id == "nwc" && !transposed {
		perWeight = 4
	}
	return min(largest, math.MaxInt64/16)*perWeight + 512<<20
}
