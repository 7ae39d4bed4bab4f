// Package neural implements nwc, the learned weight codec of Neural Weight
// Compression, as a codec of the .nwc container: the model and its
// training in Go, the encoder, and a fast, bit-exact decoder.
//
// # Design
//
// A chunk is 16 consecutive rows of one column of a weight matrix whose
// columns are normalized to unit RMS (package codec/chunk). The codec
// contains the entropy-coded uniform scalar quantizer (ECSQ) as a special
// case: latents are y = round(x/Δ_q + E(x)) and the reconstruction is
// x̂ = Δ_q·(y + D(y)), where E and D are small residual MLPs whose last
// layers start at zero and Δ_q is the step of the column's importance
// level. Training (see [Train]) teaches E and D what ECSQ cannot do —
// chunk-wise centroids and rate-saving latent choices — with the
// uniform-noise proxy and a factorized logistic prior; files code latents
// with per-tensor integer rANS tables built from the tensor's own latents.
// The encoder falls back to ECSQ (with a centroid offset) on every tensor
// where the learned transform does not win at equal rate, so nwc is never
// worse than the scalar quantizer beyond a few bytes of parameters. The
// scalar path may also trellis-code its latents, one sequence per column
// of each chunk group (package trellis), kept where it beats rounding at
// equal rate (on stories260K it lifts the file's SQNR by 0.9–1.1 dB from
// 3 bits per weight up).
//
// The built-in default model (width 32, one residual block) is embedded
// from default.nwcc and decodes above 100 M weights/s on two cores; its
// decoder blob is registered with [codec.RegisterBuiltinBlob] so that
// files may reference it by SHA-256 ([codec.EncodeOptions.BlobRef]).
//
// Given a layer's input Hessian ([codec.EncodeOptions.Hessian]), the
// encoder runs both codings with LDLQ error compensation (package ldlq);
// that is encoder-only and leaves the format and the decoder unchanged.
//
// # Format
//
// FORMAT.md §7.7 specifies the parameters, auxiliary sections, blob, group
// payloads and the normative decode arithmetic; spec.NWCReconstruct is
// the reference decoder the fast path is tested against. Version 1 is
// read and written.
//
// # Concurrency
//
// A [Codec] is immutable; encoders and decoders are safe for concurrent
// use.
package neural

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/format"
)

// ID is the codec id of the neural codec in a tensor entry.
const ID = "nwc"

// AuxTables names the auxiliary section holding a tensor's integer
// entropy tables, one per importance level that occurs.
const AuxTables = "tables"

// DefaultStep is the level-0 step used when EncodeOptions.Step is 0:
// about 4 bits per weight on Gaussian-like weights.
const DefaultStep = 0.25

// tablePrecision is the precision of the per-tensor rANS tables: 14 bits
// costs under 0.1 % over the entropy with a 32 KiB decoding table.
const tablePrecision = 14

// params are a tensor's codec parameters (FORMAT.md §7.7.3). The file
// stores the level-0 step; the rest follows with float32 operations, so
// decoders never evaluate sqrt or log.
type params struct {
	steps      [NumLevels]float32 // Δ_q = fl(Δ_0·m_q)
	features   [NumLevels]float32 // StepFeature(Δ_q): the decoder's last input
	plain      bool               // the decoder net is skipped
	trellis    bool               // plain only: latents are trellis-coded (package trellis)
	offset     uint8              // plain only: nonzero latents shrink by offset/256 steps toward 0
	transposed bool
}

// maxOffset bounds the centroid offset, in 1/256 of a step: the centroid
// of a cell never lies below its lower half.
const maxOffset = 127

// StepFeature is the networks' last input for a chunk of step Δ: a
// piecewise-linear log2 read off the float32 bits,
// fl(fl(float32(bits(Δ))·2⁻²³) − 127), exact to within 0.09 of log2 Δ and
// computed with two float32 operations, so a decoder needs no logarithm
// and files need not store it.
func StepFeature(step float32) float32 {
	return float32(float32(math.Float32bits(step))*(1.0/(1<<23))) - 127 // conversions forbid FMA (FORMAT.md A.2)
}

// setLevels derives the per-level steps and features from level 0's step.
func (p *params) setLevels(step0 float32) {
	for q := range NumLevels {
		p.steps[q] = step0 * StepMultiplier(q)
		p.features[q] = StepFeature(p.steps[q])
	}
}

func (p *params) marshal() []byte {
	w := format.NewMsgWriter()
	n := 2
	if p.plain {
		n++
	}
	if p.transposed {
		n++
	}
	if p.trellis {
		n++
	}
	w.MapLen(n)
	w.String("step")
	w.Float64(float64(p.steps[0]))
	w.String("plain")
	w.Bool(p.plain)
	if p.plain {
		w.String("offset")
		w.Uint(uint64(p.offset))
	}
	if p.transposed {
		w.String("transposed")
		w.Bool(true)
	}
	if p.trellis {
		w.String("trellis")
		w.Bool(true)
	}
	return w.Bytes()
}

func parseParams(b []byte) (params, error) {
	var p params
	if b == nil {
		return p, format.Errorf(-1, "codec nwc needs parameters")
	}
	m := format.NewMsgReader(b, -1)
	seen := map[string]bool{}
	var step float32
	err := m.MapKeys("nwc params", func(k string) error {
		if seen[k] {
			return m.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		switch k {
		case "step":
			v, err := m.Float(k)
			if err != nil {
				return err
			}
			step = float32(v)
			if float64(step) != v || math.IsInf(v, 0) || !(step > 0) {
				return m.Errorf("step %v is not a positive finite float32", v)
			}
			return nil
		case "plain":
			v, err := m.Bool(k)
			p.plain = v
			return err
		case "offset":
			v, err := m.Uint(k)
			if err != nil {
				return err
			}
			if v > maxOffset {
				return m.Errorf("offset %d above %d", v, maxOffset)
			}
			p.offset = uint8(v)
			return nil
		case "transposed":
			v, err := m.Bool(k)
			if err == nil && !v {
				return m.Errorf("transposed is written only when true")
			}
			p.transposed = v
			return err
		case "trellis":
			v, err := m.Bool(k)
			if err == nil && !v {
				return m.Errorf("trellis is written only when true")
			}
			p.trellis = v
			return err
		}
		return m.Errorf("unknown key %q", k)
	})
	if err != nil {
		return p, err
	}
	if m.Remaining() != 0 {
		return p, m.Errorf("trailing bytes after the parameters")
	}
	if !seen["step"] || !seen["plain"] || seen["offset"] != p.plain {
		return p, format.Errorf(-1, "nwc params: want step, plain, and offset exactly when plain")
	}
	if p.trellis && !p.plain {
		return p, format.Errorf(-1, "nwc params: trellis without plain")
	}
	p.setLevels(step)
	for q := range NumLevels {
		if !(p.steps[q] > 0) || math.IsInf(float64(p.steps[q]), 0) {
			return p, format.Errorf(-1, "nwc params: level %d step %v", q, p.steps[q])
		}
	}
	return p, nil
}

// stepsFor derives the per-level steps and decoder features of a level-0
// step; the encoder stores them, so decoders never evaluate sqrt or log.
func stepsFor(step float64) (p params) {
	p.setLevels(float32(step))
	return p
}

// reconstruct turns the latents of n chunks (n×Chunk, chunk-major) into
// normalized weights, the decoder's normative arithmetic (FORMAT.md §7.7
// §5): without a net, x̂ = fl(y·Δ_q); with one, x̂ = fl(fl(y + D_i)·Δ_q)
// where D is the net evaluated on fl(y·Δ_q) and the level's feature.
// in and d are scratch of n×(Chunk+1) and n×Chunk values.
//
// With p.trellis the latents are chunks first..first+n−1 of the chunk-major
// array seq walks, whose trellis states it advances.
func reconstruct(d *decoderModel, out []float32, y []int32, lv []uint8, n int, p *params, seq *chunkSeq, first int, in, dout []float32, sc *scratch) error {
	const k = chunk.Rows
	if p.plain {
		off := float32(float32(p.offset) / 256) // a separate rounding: no FMA with its use
		offs := [trellis.States]float32{}
		for st := range offs {
			offs[st] = trellis.Offset(uint8(st), off)
		}
		for c := range n {
			s := p.steps[lv[c]]
			if p.trellis {
				sp := seq.begin(first + c)
				st := *sp
				ys, dst := y[c*k:(c+1)*k], out[c*k:(c+1)*k]
				for i, v := range ys {
					dst[i] = trellis.Value(v, s, offs[st&3])
					st = trellis.Next(st, v)
				}
				*sp = st
				continue
			}
			for i := range k {
				out[c*k+i] = trellis.Value(y[c*k+i], s, off)
			}
		}
		return nil
	}
	for c := range n {
		s := p.steps[lv[c]]
		row := in[c*(k+1) : (c+1)*(k+1)]
		for i := range k {
			row[i] = float32(y[c*k+i]) * s
		}
		row[k] = p.features[lv[c]]
	}
	if err := d.packed.Forward(dout, in, lv, n, &sc.mlp); err != nil {
		return err
	}
	for c := range n {
		s := p.steps[lv[c]]
		for i := range k {
			out[c*k+i] = float32(float32(y[c*k+i])+dout[c*k+i]) * s
		}
	}
	return nil
}

// buildTables returns the rANS table of every level that occurs (nil for
// the others), built from the coded latents of that level's chunks, and
// the serialized AuxTables section.
func buildTables(y []int32, lv []uint8, rows, cols int) ([NumLevels]*rans.Table, []byte, error) {
	var byLevel [NumLevels][]int32
	k := chunk.Rows
	for c, q := range lv {
		n := validRows(c/cols, rows)
		byLevel[q] = append(byLevel[q], y[c*k:c*k+n]...)
	}
	var tabs [NumLevels]*rans.Table
	var aux []byte
	for q, s := range byLevel {
		if len(s) == 0 {
			continue
		}
		t, err := rans.BuildCompact(s, rans.MinPrecision, tablePrecision)
		if err != nil {
			return tabs, nil, err
		}
		tabs[q] = t
		if aux, err = t.AppendBinary(aux); err != nil {
			return tabs, nil, err
		}
	}
	return tabs, aux, nil
}

// validRows returns the rows of chunk row b that exist in a matrix of
// rows rows: 16 except in a ragged last chunk. Only they are coded.
func validRows(b, rows int) int { return min(chunk.Rows, rows-b*chunk.Rows) }

// parseTables reads the AuxTables section: one table per level present in
// levels, in increasing level order, and nothing else.
func parseTables(b []byte, present [NumLevels]bool) ([NumLevels]*rans.Table, error) {
	var tabs [NumLevels]*rans.Table
	for q := range NumLevels {
		if !present[q] {
			continue
		}
		t, n, err := rans.ParseTable(b)
		if err != nil {
			return tabs, format.Errorf(-1, "aux %q: level %d: %v", AuxTables, q, err)
		}
		tabs[q], b = t, b[n:]
	}
	if len(b) != 0 {
		return tabs, format.Errorf(-1, "aux %q: %d trailing bytes", AuxTables, len(b))
	}
	return tabs, nil
}

func levelOf(levels []uint8, j int) uint8 {
	if levels == nil {
		return 0
	}
	return levels[j]
}

// checkLevelsPresent lists the levels that occur among the columns.
func levelsPresent(levels []uint8, cols int) (p [NumLevels]bool) {
	for j := range cols {
		p[levelOf(levels, j)] = true
	}
	return p
}

// ErrStep reports an unusable quantizer step in the encode options.
var ErrStep = errors.New("neural: step must be positive and finite")

func checkStep(step float64) error {
	if !(step > 0) || math.IsInf(step, 0) || float32(step*float64(StepMultiplier(NumLevels-1))) == 0 {
		return fmt.Errorf("%w, not %v", ErrStep, step)
	}
	return nil
}

// sortedAux returns aux sections sorted by name, as the writer expects.
func sortedAux(a []codec.NamedBytes) []codec.NamedBytes {
	slices.SortFunc(a, func(x, y codec.NamedBytes) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	return a
}
