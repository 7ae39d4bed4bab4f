// Package neural implements the decoder of nwc, the learned weight codec
// of Neural Weight Compression, as a codec of the .nwc container, and the
// model formats it shares with the encoder (package nwcenc) and the
// trainer (package train): the codec file, the blob, the parameters and
// the group payloads. Programs that only read files link this package
// alone.
//
// # Design
//
// A chunk is 16 consecutive rows of one column of a weight matrix whose
// columns are normalized to unit RMS (package codec/chunk). The codec
// contains the entropy-coded uniform scalar quantizer (ECSQ) as a special
// case: latents are y = round(x/Δ_q + E(x)) and the reconstruction is
// x̂ = Δ_q·(y + D(y)), where E and D are small residual MLPs whose last
// layers start at zero and Δ_q is the step of the column's importance
// level. Training (package train) teaches E and D what ECSQ cannot do —
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
// A [Codec] is immutable; decoders are safe for concurrent use.
package neural

import (
	"math"

	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/mlp"
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

// Params are a tensor's codec parameters (FORMAT.md §7.7.3). The file
// stores the level-0 step; the rest follows with float32 operations, so
// decoders never evaluate sqrt or log.
type Params struct {
	Steps      [NumLevels]float32 // Δ_q = fl(Δ_0·m_q)
	Features   [NumLevels]float32 // StepFeature(Δ_q): the decoder's last input
	Plain      bool               // the decoder net is skipped
	Trellis    bool               // plain only: latents are trellis-coded (package trellis)
	Offset     uint8              // plain only: nonzero latents shrink by Offset/256 steps toward 0
	Transposed bool
}

// MaxOffset bounds the centroid offset, in 1/256 of a step: the centroid
// of a cell never lies below its lower half.
const MaxOffset = 127

// StepFeature is the networks' last input for a chunk of step Δ: a
// piecewise-linear log2 read off the float32 bits,
// fl(fl(float32(bits(Δ))·2⁻²³) − 127), exact to within 0.09 of log2 Δ and
// computed with two float32 operations, so a decoder needs no logarithm
// and files need not store it.
func StepFeature(step float32) float32 {
	return float32(float32(math.Float32bits(step))*(1.0/(1<<23))) - 127 // conversions forbid FMA (FORMAT.md A.2)
}

// setLevels derives the per-level steps and features from level 0's step.
func (p *Params) setLevels(step0 float32) {
	for q := range NumLevels {
		p.Steps[q] = step0 * StepMultiplier(q)
		p.Features[q] = StepFeature(p.Steps[q])
	}
}

// Marshal returns the parameter map as the file stores it.
func (p *Params) Marshal() []byte {
	w := format.NewMsgWriter()
	n := 2
	if p.Plain {
		n++
	}
	if p.Transposed {
		n++
	}
	if p.Trellis {
		n++
	}
	w.MapLen(n)
	w.String("step")
	w.Float64(float64(p.Steps[0]))
	w.String("plain")
	w.Bool(p.Plain)
	if p.Plain {
		w.String("offset")
		w.Uint(uint64(p.Offset))
	}
	if p.Transposed {
		w.String("transposed")
		w.Bool(true)
	}
	if p.Trellis {
		w.String("trellis")
		w.Bool(true)
	}
	return w.Bytes()
}

// ParseParams reads a parameter map strictly. Errors wrap format.ErrFormat,
// or format.ErrLimit for a key longer than FORMAT.md §5.4 allows.
func ParseParams(b []byte) (Params, error) {
	var p Params
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
			p.Plain = v
			return err
		case "offset":
			v, err := m.Uint(k)
			if err != nil {
				return err
			}
			if v > MaxOffset {
				return m.Errorf("offset %d above %d", v, MaxOffset)
			}
			p.Offset = uint8(v)
			return nil
		case "transposed":
			v, err := m.Bool(k)
			if err == nil && !v {
				return m.Errorf("transposed is written only when true")
			}
			p.Transposed = v
			return err
		case "trellis":
			v, err := m.Bool(k)
			if err == nil && !v {
				return m.Errorf("trellis is written only when true")
			}
			p.Trellis = v
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
	if !seen["step"] || !seen["plain"] || seen["offset"] != p.Plain {
		return p, format.Errorf(-1, "nwc params: want step, plain, and offset exactly when plain")
	}
	if p.Trellis && !p.Plain {
		return p, format.Errorf(-1, "nwc params: trellis without plain")
	}
	p.setLevels(step)
	for q := range NumLevels {
		if !(p.Steps[q] > 0) || math.IsInf(float64(p.Steps[q]), 0) {
			return p, format.Errorf(-1, "nwc params: level %d step %v", q, p.Steps[q])
		}
	}
	return p, nil
}

// StepsFor returns the parameters of a level-0 step: the per-level steps
// and decoder features that decoders derive from it with float32
// operations alone.
func StepsFor(step float64) (p Params) {
	p.setLevels(float32(step))
	return p
}

// reconstruct turns the latents of n chunks (n×Chunk, chunk-major) into
// normalized weights, the decoder's normative arithmetic (FORMAT.md §7.7
// §5): without a net, x̂ = fl(y·Δ_q); with one, x̂ = fl(fl(y + D_i)·Δ_q)
// where D is the net evaluated on fl(y·Δ_q) and the level's feature.
// in and d are scratch of n×(Chunk+1) and n×Chunk values.
//
// With p.Trellis the latents are chunks first..first+n−1 of the chunk-major
// array seq walks, whose trellis states it advances.
func reconstruct(d *decoderModel, out []float32, y []int32, lv []uint8, n int, p *Params, seq *ChunkSeq, first int, in, dout []float32, sc *mlp.Scratch) error {
	const k = chunk.Rows
	if p.Plain {
		off := float32(float32(p.Offset) / 256) // a separate rounding: no FMA with its use
		offs := [trellis.States]float32{}
		for st := range offs {
			offs[st] = trellis.Offset(uint8(st), off)
		}
		for c := range n {
			s := p.Steps[lv[c]]
			if p.Trellis {
				sp := seq.Begin(first + c)
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
		s := p.Steps[lv[c]]
		row := in[c*(k+1) : (c+1)*(k+1)]
		for i := range k {
			row[i] = float32(y[c*k+i]) * s
		}
		row[k] = p.Features[lv[c]]
	}
	if err := d.packed.Forward(dout, in, lv, n, sc); err != nil {
		return err
	}
	for c := range n {
		s := p.Steps[lv[c]]
		for i := range k {
			out[c*k+i] = float32(float32(y[c*k+i])+dout[c*k+i]) * s
		}
	}
	return nil
}

// BuildTables returns the rANS table of every level that occurs (nil for
// the others), built from the coded latents y of a rows×cols matrix's
// chunks (levels lv, in coding order), and the serialized AuxTables
// section.
func BuildTables(y []int32, lv []uint8, rows, cols int) ([NumLevels]*rans.Table, []byte, error) {
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

// ParseTables reads the AuxTables section: one table per level present,
// in increasing level order, and nothing else. Errors wrap
// format.ErrFormat.
func ParseTables(b []byte, present [NumLevels]bool) ([NumLevels]*rans.Table, error) {
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

// LevelsPresent lists the levels that occur among the cols columns of
// levels (nil means all 0).
func LevelsPresent(levels []uint8, cols int) (p [NumLevels]bool) {
	for j := range cols {
		p[levelOf(levels, j)] = true
	}
	return p
}
