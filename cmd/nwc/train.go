package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/neural/train"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/safetensors"
)

// runTrain trains a neural codec on the matrices of safetensors
// checkpoints (plus synthetic Gaussian and Laplace chunks) and writes the
// .nwcc codec file, rewriting it at every held-out evaluation so that an
// interrupted run leaves its latest checkpoint.
func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	out := fs.String("o", "", "output codec `file` (.nwcc, required)")
	def := neural.DefaultConfig
	width := fs.Int("width", def.Width, "hidden width of the encoder and decoder")
	blocks := fs.Int("blocks", def.Blocks, "residual blocks per network")
	lambda := fs.Float64("lambda", 1, "weight of distortion against rate (1 = equal slope)")
	steps := fs.Int("steps", 4000, "optimizer steps")
	batch := fs.Int("batch", 256, "chunks per step")
	lr := fs.Float64("lr", 1e-3, "Adam learning rate")
	seed := fs.Uint64("seed", 1, "random seed; the same inputs and seed give the same file")
	synth := fs.Float64("synthetic", 0.25, "fraction of synthetic chunks per batch (negative: none)")
	heldEvery := fs.Int("held-every", 10, "hold out every N-th data chunk for evaluation")
	evalEvery := fs.Int("eval-every", 0, "steps between held-out evaluations (default steps/20)")
	csvPath := fs.String("csv", "", "also write the held-out curve as CSV to `file`")
	inputs, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("train: -o is required")
	}
	set := setFlags(fs)
	for name, v := range map[string]float64{"lambda": *lambda, "lr": *lr} {
		if err := positive(set, name, v); err != nil {
			return err
		}
	}
	if math.IsNaN(*synth) {
		return usagef("--synthetic NaN: want a number")
	}
	// Training rewrites its output at every checkpoint and is rerun into
	// the same file as a matter of course, so an existing output is
	// replaced without --force; inputs never are. (--csv is written in
	// place and may be a device such as /dev/stdout.)
	target, err := checkOutput(*out, "a codec file", true, inputs...)
	if err != nil {
		return err
	}
	reportLeftovers(stderr, "train", target)
	cmdline := "nwc train " + strings.Join(args, " ")
	data := train.NewDataset(16)
	for _, path := range inputs {
		if err := addCheckpoint(data, path); err != nil {
			return err
		}
	}
	fit, held := data.Split(*heldEvery)
	fmt.Fprintf(stderr, "training on %d chunks, %d held out\n", fit.Len(), held.Len())
	var csv io.Writer = io.Discard
	if *csvPath != "" {
		f, err := os.Create(*csvPath)
		if err != nil {
			return err
		}
		defer f.Close()
		csv = f
	}
	fmt.Fprintln(csv, "step,seconds,train_loss,loss,rate,dist,plain_loss,plain_rate,plain_dist")
	start := time.Now()
	opts := &train.Options{
		Config:    neural.Config{Chunk: 16, Latent: 16, Width: *width, Blocks: *blocks},
		Lambda:    *lambda,
		Steps:     *steps,
		Batch:     *batch,
		LR:        *lr,
		Seed:      *seed,
		Synthetic: *synth,
		EvalEvery: *evalEvery,
		Progress: func(m *train.Model, st train.Stats) error {
			fmt.Fprintf(stdout, "step %6d %7.1fs  train %.5f  held-out loss %.5f rate %.4f dist %.5f  (scalar %.5f: gain %+.5f)\n",
				st.Step, st.Elapsed.Seconds(), st.TrainLoss, st.Loss, st.Rate, st.Dist, st.PlainLoss, st.PlainLoss-st.Loss)
			fmt.Fprintf(csv, "%d,%.2f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n", st.Step, st.Elapsed.Seconds(),
				st.TrainLoss, st.Loss, st.Rate, st.Dist, st.PlainLoss, st.PlainRate, st.PlainDist)
			return writeCodec(*out, m, cmdline)
		},
	}
	// An interrupt stops training between steps; the codec file keeps the
	// last evaluation's checkpoint.
	ctx := commandContext()
	if _, err := train.Train(ctx, fit, held, opts); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s in %.1fs\n", *out, time.Since(start).Seconds())
	return nil
}

// addCheckpoint adds every floating-point matrix of a checkpoint.
func addCheckpoint(d *train.Dataset, path string) error {
	src, err := safetensors.OpenPath(path)
	if err != nil {
		return err
	}
	defer src.Close()
	for _, ti := range src.Tensors() {
		if len(ti.Shape) < 2 {
			continue
		}
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			return err
		}
		shape := make([]uint64, len(ti.Shape))
		for i, s := range ti.Shape {
			shape[i] = uint64(s)
		}
		t := &codec.Tensor{Name: ti.Name, DType: format.DType(ti.DType), Shape: shape, Data: b}
		if _, err := d.AddTensor(t, false); err != nil {
			return fmt.Errorf("%s: %w", ti.Name, err)
		}
	}
	return nil
}

// writeCodec writes the codec file atomically, so a reader or a crash
// never sees half a checkpoint.
func writeCodec(path string, m *train.Model, info string) error {
	c, err := train.NewCodec(m, info)
	if err != nil {
		return err
	}
	b, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
