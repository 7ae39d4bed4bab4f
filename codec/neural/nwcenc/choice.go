package nwcenc

import (
	"encoding/binary"
	"math"

	"github.com/nwcodec/nwc/codec/neural"
)

// A choice is how decide chose to code a matrix, kept in
// codec.Encoded.Choice so that encodings of the same matrix, or of
// samples of it, at nearby steps can skip choosing: rate control codes a
// sample of every matrix at four or more steps, and choosing codes the
// sample five to seven times each.
type choice struct {
	kind uint8
	// offset is the trellis's centroid offset (neural.Params.Offset),
	// fitted where the choice was made; rounding fits its own.
	offset uint8
	// shift is log2 of the step coded over the step asked for: the
	// trellis and the learned transform are coded at the step where they
	// cost what rounding does at the asked one.
	shift float64
}

const (
	kindRound = iota
	kindTrellis
	kindLearned
)

// choiceMagic starts a marshaled choice, so that the choice of another
// codec, or of another version of this one, is ignored.
var choiceMagic = [2]byte{'n', 1}

// maxChoiceShift bounds the step shift a choice may carry: decide's
// shifts are hundredths of a bit.
const maxChoiceShift = 1

// choiceOf returns the choice that p records for a matrix asked to be
// coded at step.
func choiceOf(p neural.Params, step float64) choice {
	ch := choice{kind: kindLearned, shift: math.Log2(float64(p.Steps[0]) / float64(float32(step)))}
	if p.Plain {
		ch.kind = kindRound
		if p.Trellis {
			ch.kind, ch.offset = kindTrellis, p.Offset
		}
	}
	return ch
}

// marshal returns ch as codec.Encoded.Choice holds it.
func (ch choice) marshal() []byte {
	b := make([]byte, 0, 12)
	b = append(b, choiceMagic[:]...)
	b = append(b, ch.kind, ch.offset)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(ch.shift))
}

// parseChoice returns the choice b holds, or false if b is not one this
// encoder made.
func parseChoice(b []byte) (choice, bool) {
	if len(b) != 12 || [2]byte(b[:2]) != choiceMagic {
		return choice{}, false
	}
	ch := choice{kind: b[2], offset: b[3], shift: math.Float64frombits(binary.LittleEndian.Uint64(b[4:]))}
	if ch.kind > kindLearned || ch.offset > neural.MaxOffset || !(math.Abs(ch.shift) <= maxChoiceShift) {
		return choice{}, false
	}
	return ch, true
}

// reuse returns the parameters of opts' choice (b) at step, given the
// base parameters the encoder would start from, or false if there is no
// usable choice: none given, a learned one when the file has no blob,
// one that contradicts the encoder's forced path, or one whose step is
// out of range. Without a choice, an estimate (codec.EncodeOptions) is
// coded with rounding unless the encoder is forced to the learned
// transform.
func (c *Encoder) reuse(b []byte, estimate bool, step float64, base neural.Params, noBlob bool) (neural.Params, bool) {
	ch, ok := parseChoice(b)
	if !ok && estimate && c.force != forceLearned {
		ch, ok = choice{kind: kindRound}, true
	}
	switch {
	case !ok,
		ch.kind == kindLearned && (noBlob || c.force == forcePlain),
		ch.kind != kindLearned && c.force == forceLearned,
		ch.kind == kindTrellis && c.roundPlain:
		return neural.Params{}, false
	}
	s := step * math.Exp2(ch.shift)
	if checkStep(s) != nil {
		return neural.Params{}, false
	}
	p := neural.StepsFor(s)
	p.Transposed = base.Transposed
	switch ch.kind {
	case kindRound:
		p.Plain = true
	case kindTrellis:
		p.Plain, p.Trellis, p.Offset = true, true, ch.offset
	}
	return p, true
}
