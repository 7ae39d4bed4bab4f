package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nwcodec/nwc/bench"
	"github.com/nwcodec/nwc/bench/synth"
)

// scaleRow is one codec on one synthetic checkpoint in nwc bench scale.
type scaleRow struct {
	Shape           string  `json:"shape"`
	Weights         int64   `json:"weights"`
	Codec           string  `json:"codec"`
	Bits            float64 `json:"target_bits,omitempty"`
	GenerateSeconds float64 `json:"generate_seconds,omitempty"` // 0 when the checkpoint was reused
	ConvertSeconds  float64 `json:"convert_seconds"`
	ConvertRate     float64 `json:"convert_weights_per_second"`
	ConvertCPU      float64 `json:"convert_cpu_seconds"`
	ConvertRSS      int64   `json:"convert_peak_rss_bytes"`
	ConvertLoad     float64 `json:"convert_load1"`
	BitsPerWeight   float64 `json:"bits_per_weight"`
	FileBytes       int64   `json:"file_bytes"`
	bench.OpenCost
	bench.TensorCost
	// With --decode-runs N > 1 the decode figures are those of the run
	// of median wall time, and DecodeRuns holds every run's wall time.
	DecodeSeconds float64   `json:"decode_seconds"`
	DecodeRuns    []float64 `json:"decode_seconds_runs,omitempty"`
	DecodeRate    float64   `json:"decode_weights_per_second"`
	DecodeCPU     float64   `json:"decode_cpu_seconds"`
	DecodeRSS     int64     `json:"decode_peak_rss_bytes"`
	DecodeLoad    float64   `json:"decode_load1"`
}

// runBenchScale writes Llama-shaped synthetic checkpoints and measures
// converting, opening and decoding them, each heavy step in a child process
// of this binary so that its peak RSS is its own.
func runBenchScale(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench scale", stderr)
	shapes := fs.String("shapes", "tinyllama-1.1b", "comma-separated shapes: "+shapeNames())
	codecs := fs.String("codecs", "lossless,ecsq", "comma-separated codecs (empty: only write the checkpoints)")
	bits := fs.Float64("bits", 4, "target bits per weight of the lossy codecs")
	dir := fs.String("dir", "", "`DIR` for checkpoints and outputs; a valid checkpoint already there is reused (default: a temporary directory, removed)")
	seed := fs.Uint64("seed", 0, "seed of the synthetic weights")
	jobs := fs.Int("jobs", 0, "goroutines for generation and decode, passed to convert too (default: the number of cores)")
	keep := fs.Bool("keep", false, "keep the .nwc files in --dir")
	decDir := fs.String("decode-dir", "", "`DIR` decode writes its output to (default: --dir); a tmpfs such as /dev/shm measures the decoder without the disk")
	decRuns := fs.Int("decode-runs", 1, "decode each file `N` times (output removed before each) and report the run of median wall time")
	asJSON := fs.Bool("json", false, "print JSON rows instead of a markdown table")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("bench scale takes no positional arguments")
	}
	if *decRuns < 1 || *decRuns > 1000 {
		return usagef("--decode-runs %d: want 1 to 1000", *decRuns)
	}
	var shs []synth.Shape
	for _, n := range splitList(*shapes) {
		s, err := synth.Lookup(n)
		if err != nil {
			return usagef("%v", err)
		}
		shs = append(shs, s)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	root := *dir
	if root == "" {
		if root, err = os.MkdirTemp("", "nwc-scale-"); err != nil {
			return err
		}
		defer os.RemoveAll(root)
	}
	ctx := commandContext()
	pl := newProgress(stderr, *quiet)
	var rows []scaleRow
	for _, s := range shs {
		ckpt := filepath.Join(root, s.Name)
		gopts := &synth.Options{Seed: *seed, Jobs: *jobs}
		var genSec float64
		if !synth.Valid(ckpt, s, gopts) {
			pl.Start("generate "+s.Name, 0, "", s.Params())
			gopts.Progress = func(done, _ int64) { pl.Set(0, done) }
			t0 := time.Now()
			err := synth.Generate(ctx, ckpt, s, gopts)
			pl.Finish()
			if err != nil {
				return err
			}
			genSec = time.Since(t0).Seconds()
		}
		for _, c := range splitList(*codecs) {
			row := scaleRow{Shape: s.Name, Weights: s.Params(), Codec: c, GenerateSeconds: genSec}
			genSec = 0
			out := filepath.Join(root, s.Name+"."+c+".nwc")
			cargs := []string{"convert", ckpt, "-o", out, "--codec", c, "--json", "--force"}
			if c != "lossless" && c != "raw" {
				row.Bits = *bits
				cargs = append(cargs, "--bits", strconv.FormatFloat(*bits, 'g', -1, 64))
			}
			if *jobs > 0 {
				cargs = append(cargs, "--jobs", strconv.Itoa(*jobs))
			}
			if *quiet {
				cargs = append(cargs, "--quiet")
			}
			row.ConvertLoad = load1()
			res, err := child(ctx, self, cargs, stderr)
			if err != nil {
				return err
			}
			var cs struct {
				BitsPerWeight float64 `json:"bits_per_weight"`
				OutputBytes   int64   `json:"output_bytes"`
			}
			if err := json.Unmarshal(res.stdout, &cs); err != nil {
				return fmt.Errorf("convert %s: reading its summary: %w", c, err)
			}
			row.ConvertSeconds, row.ConvertCPU, row.ConvertRSS = res.seconds, res.cpu, res.maxRSS
			row.ConvertRate = float64(row.Weights) / res.seconds
			row.BitsPerWeight, row.FileBytes = cs.BitsPerWeight, cs.OutputBytes
			if row.OpenCost, err = bench.MeasureOpen(out, 5); err != nil {
				return err
			}
			if row.TensorCost, err = bench.MeasureTensor(out, "model.layers.0.mlp.down_proj.weight", 3); err != nil {
				return err
			}
			decRoot := root
			if *decDir != "" {
				decRoot = *decDir
			}
			dec := filepath.Join(decRoot, s.Name+"."+c+".decoded.safetensors")
			dargs := []string{"decode", out, "-o", dec, "--dtype", "bf16", "--force"}
			if *jobs > 0 {
				dargs = append(dargs, "--jobs", strconv.Itoa(*jobs))
			}
			if *quiet {
				dargs = append(dargs, "--quiet")
			}
			row.DecodeLoad = load1()
			runs := make([]childResult, 0, *decRuns)
			// Each run writes a new file, not over the last one's pages.
			os.Remove(dec)
			for range *decRuns {
				res, err = child(ctx, self, dargs, stderr)
				os.Remove(dec)
				if err != nil {
					return err
				}
				runs = append(runs, res)
			}
			if len(runs) > 1 {
				for _, r := range runs {
					row.DecodeRuns = append(row.DecodeRuns, r.seconds)
				}
			}
			slices.SortStableFunc(runs, func(a, b childResult) int { return cmp.Compare(a.seconds, b.seconds) })
			res = runs[(len(runs)-1)/2]
			row.DecodeSeconds, row.DecodeCPU, row.DecodeRSS = res.seconds, res.cpu, res.maxRSS
			row.DecodeRate = float64(row.Weights) / res.seconds
			if !*keep || *dir == "" {
				os.Remove(out)
			}
			rows = append(rows, row)
		}
	}
	if *asJSON {
		return writeJSON(stdout, rows)
	}
	return scaleTable(stdout, rows)
}

// scaleTable prints the rows as a markdown table.
func scaleTable(w io.Writer, rows []scaleRow) error {
	fmt.Fprintln(w, "| shape | weights | codec | bits/weight | convert s (CPU s) | convert M w/s | convert RSS MiB | open ms (bytes read) | decode 1 tensor ms | decode s (CPU s) | decode M w/s | decode RSS MiB | load (convert, decode) |")
	fmt.Fprintln(w, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		codec := r.Codec
		if r.Bits > 0 {
			codec += fmt.Sprintf(" @ %g", r.Bits)
		}
		spread := ""
		if len(r.DecodeRuns) > 1 {
			spread = fmt.Sprintf(" median of %d, %.2f–%.2f", len(r.DecodeRuns), slices.Min(r.DecodeRuns), slices.Max(r.DecodeRuns))
		}
		_, err := fmt.Fprintf(w, "| %s | %.2f G | %s | %.3f | %.1f (%.1f) | %.1f | %d | %.2f (%d) | %.1f (%.1f M weights) | %.2f (%.1f)%s | %.1f | %d | %.2f, %.2f |\n",
			r.Shape, float64(r.Weights)/1e9, codec, r.BitsPerWeight, r.ConvertSeconds, r.ConvertCPU, r.ConvertRate/1e6, r.ConvertRSS>>20,
			1e3*r.OpenCost.Seconds, r.BytesRead, 1e3*r.TensorCost.Seconds, float64(r.TensorCost.Weights)/1e6,
			r.DecodeSeconds, r.DecodeCPU, spread, r.DecodeRate/1e6, r.DecodeRSS>>20, r.ConvertLoad, r.DecodeLoad)
		if err != nil {
			return err
		}
	}
	return nil
}

type childResult struct {
	stdout  []byte
	seconds float64
	cpu     float64 // user + system seconds: robust to a loaded machine
	maxRSS  int64   // bytes
}

// child runs this binary with args, its stderr going to ours, and reports
// its wall time and peak resident set.
func child(ctx context.Context, self string, args []string, stderr io.Writer) (childResult, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, self, args...)
	// An interrupt reaches the child as SIGTERM, so that it removes its
	// temporary output as nwc does; SIGKILL only if it has not exited
	// ten seconds later.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdout = &out
	cmd.Stderr = stderr
	t0 := time.Now()
	err := cmd.Run()
	res := childResult{stdout: out.Bytes(), seconds: time.Since(t0).Seconds()}
	if err != nil {
		return res, fmt.Errorf("nwc %s: %w", strings.Join(args, " "), err)
	}
	res.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = int64(ru.Maxrss) << 10 // kilobytes on Linux
	}
	return res, nil
}

// load1 is the one-minute load average, recorded beside each figure since
// the machine may be shared; 0 where /proc/loadavg does not exist.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func shapeNames() string {
	var n []string
	for _, s := range synth.Shapes {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
