package nwcenc

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/ldlq"
)

// ldlqTensor returns a rows×cols f32 tensor of Gaussian weights with
// column scales spread like a real layer's, and its values.
func ldlqTensor(rows, cols int, seed uint64) (*codec.Tensor, []float32) {
	r := rand.New(rand.NewPCG(seed, 3))
	scale := make([]float64, cols)
	for j := range scale {
		scale[j] = 0.02 * math.Exp(0.5*r.NormFloat64())
	}
	w := make([]float32, rows*cols)
	b := make([]byte, 0, 4*rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * scale[i%cols])
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(w[i]))
	}
	return &codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{uint64(rows), uint64(cols)}, Data: b}, w
}

// sharedHessian returns H = X Xᵀ/n for n inputs whose cols coordinates
// share one common component plus independent noise, as in codec/scalar's
// LDLQ test: strongly correlated inputs, where one column's error can be
// made up for by the others.
func sharedHessian(cols, n int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 4))
	x := make([]float64, cols)
	h := make([]float64, cols*cols)
	for range n {
		common := r.NormFloat64()
		for j := range x {
			x[j] = common + 0.3*r.NormFloat64()
		}
		for i := range cols {
			for j := range cols {
				h[i*cols+j] += x[i] * x[j] / float64(n)
			}
		}
	}
	return h
}

// forced returns a copy of the default encoder that always keeps the
// learned transform, always the scalar quantizer, or chooses.
func forced(t *testing.T, force int) *Encoder {
	t.Helper()
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	c := *def
	c.force = force
	return &c
}

var forceNames = map[int]string{forceAuto: "auto", forcePlain: "plain", forceLearned: "learned"}

// TestLDLQDiagonalHessian checks that a Hessian without correlations
// between inputs leaves nothing to compensate: Run's targets are the
// weights themselves, the scales are the same, and since the encoder net
// gives each chunk the same output whatever batch it is in, the encoding
// is identical to the one without a Hessian, byte for byte, for every
// block size, on both paths, with levels and a ragged last chunk.
func TestLDLQDiagonalHessian(t *testing.T) {
	const rows, cols = 45, 24
	tt, _ := ldlqTensor(rows, cols, 1)
	diag := make([]float64, cols*cols)
	levels := make([]uint8, cols)
	for j := range cols {
		diag[j*cols+j] = 1 + float64(j%7)
		levels[j] = uint8(j % 4)
	}
	for _, force := range []int{forceAuto, forcePlain, forceLearned} {
		c := forced(t, force)
		for _, o := range []codec.EncodeOptions{{Step: 0.3}, {Step: 0.6, Levels: levels, GroupBytes: 16 * cols * 4}} {
			want, err := c.Encode(tt, &o)
			if err != nil {
				t.Fatal(err)
			}
			for _, block := range []int{0, 1, 5, cols} {
				oh := o
				oh.Hessian, oh.LDLQBlock = diag, block
				got, err := c.Encode(tt, &oh)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s, step %v, block %d: a diagonal Hessian changed the encoding", forceNames[force], o.Step, block)
				}
			}
		}
	}
}

// TestLDLQLowersOutputError checks that with correlated inputs the LDLQ
// pass of each coding lowers the output error tr((W−Ŵ) H (W−Ŵ)ᵀ) well
// below that of the encoding without a Hessian at the same step, and that
// the result decodes as the reference decoder says.
func TestLDLQLowersOutputError(t *testing.T) {
	const rows, cols = 45, 96
	tt, w := ldlqTensor(rows, cols, 2)
	h := sharedHessian(cols, 2000, 5)
	const step = 0.5
	for _, force := range []int{forcePlain, forceLearned, forceAuto} {
		c := forced(t, force)
		for _, block := range []int{1, 8} {
			base, err := c.Encode(tt, &codec.EncodeOptions{Step: step})
			if err != nil {
				t.Fatal(err)
			}
			comp, err := c.Encode(tt, &codec.EncodeOptions{Step: step, Hessian: h, LDLQBlock: block})
			if err != nil {
				t.Fatal(err)
			}
			if force != forceAuto && (comp.Blob == nil) != (force == forcePlain) {
				t.Fatalf("%s: blob %v, not the forced path", forceNames[force], comp.Blob != nil)
			}
			lb, err := ldlq.ProxyLoss(h, cols, w, decodeForSpec(t, tt, base), rows)
			if err != nil {
				t.Fatal(err)
			}
			lc, err := ldlq.ProxyLoss(h, cols, w, decodeForSpec(t, tt, comp), rows)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s, block %d: output error %.4g with LDLQ, %.4g without (%.2f×); %d vs %d payload bytes",
				forceNames[force], block, lc, lb, lc/lb, payload(comp), payload(base))
			if !(lc < 0.5*lb) {
				t.Errorf("%s, block %d: LDLQ output error %.4g is not well below %.4g without", forceNames[force], block, lc, lb)
			}
		}
	}
}

// payload counts the bytes of an encoding's groups and aux sections.
func payload(e *codec.Encoded) int {
	n := 0
	for _, g := range e.Groups {
		n += len(g.Data)
	}
	for _, a := range e.Aux {
		n += len(a.Data)
	}
	return n
}

// TestLDLQErrors checks that a Hessian the encoder cannot use is an
// option error.
func TestLDLQErrors(t *testing.T) {
	const rows, cols = 20, 6
	tt, _ := ldlqTensor(rows, cols, 3)
	c := forced(t, forceAuto)
	id := func() []float64 {
		h := make([]float64, cols*cols)
		for j := range cols {
			h[j*cols+j] = 1
		}
		return h
	}
	negative, nan, indefinite := id(), id(), id()
	negative[0] = -1
	nan[1], nan[cols] = math.NaN(), math.NaN()
	indefinite[1], indefinite[cols] = 3, 3
	for _, tc := range []struct {
		name string
		h    []float64
		want error
	}{
		{"empty", []float64{}, nil},
		{"short", id()[:cols*cols-1], nil},
		{"transposed size", make([]float64, rows*rows), nil},
		{"negative diagonal", negative, ldlq.ErrInvalid},
		{"NaN", nan, ldlq.ErrInvalid},
		{"indefinite", indefinite, ldlq.ErrNotPositiveDefinite},
	} {
		_, err := c.Encode(tt, &codec.EncodeOptions{Hessian: tc.h})
		if !errors.Is(err, codec.ErrOptions) || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s Hessian: %v, want ErrOptions wrapping %v", tc.name, err, tc.want)
		}
	}
}

// TestEncodeInterrupt checks that an Interrupt error stops the encoding
// between column blocks and is returned, with and without a Hessian, and
// that an Interrupt that never fires leaves the bytes alone.
func TestEncodeInterrupt(t *testing.T) {
	const rows, cols = 45, 96
	tt, _ := ldlqTensor(rows, cols, 2)
	h := sharedHessian(cols, 2000, 5)
	stop := errors.New("stop")
	c := forced(t, forceAuto)
	for _, hess := range [][]float64{nil, h} {
		want, err := c.Encode(tt, &codec.EncodeOptions{Step: 0.5, Hessian: hess, LDLQBlock: 8})
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		got, err := c.Encode(tt, &codec.EncodeOptions{Step: 0.5, Hessian: hess, LDLQBlock: 8, Interrupt: func() error { calls++; return nil }})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Hessian %v: a silent Interrupt changed the encoding (%v)", hess != nil, err)
		}
		if calls == 0 {
			t.Errorf("Hessian %v: Interrupt never called", hess != nil)
		}
		after := 0
		if hess != nil {
			after = 3 // in the middle of the column blocks
		}
		n := 0
		_, err = c.Encode(tt, &codec.EncodeOptions{Step: 0.5, Hessian: hess, LDLQBlock: 8, Interrupt: func() error {
			if n++; n > after {
				return stop
			}
			return nil
		}})
		if !errors.Is(err, stop) {
			t.Errorf("Hessian %v: interrupted encoding returned %v, want the interrupt's error", hess != nil, err)
		}
		if n > after+1 {
			t.Errorf("Hessian %v: %d Interrupt calls after it fired", hess != nil, n-after-1)
		}
	}
}
