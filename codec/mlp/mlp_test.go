package mlp

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/spec"
)

// randFloat returns a value in [-scale, scale) computed with exact integer
// conversions, so the same seed gives the same bits on every platform.
func randFloat(r *rand.Rand, scale float32) float32 {
	return float32(int32(r.Uint32())>>8) * (scale / (1 << 23))
}

// specials are inputs and parameters that stress IEEE corner cases.
var specials = []uint32{
	0x7fc00000, 0xffc00001, 0x7f800001, // quiet, negative-payload and signaling NaN
	0x7f800000, 0xff800000, // ±Inf
	0x00000001, 0x807fffff, 0x00400000, // subnormals
	0x80000000, 0x00000000, // −0, +0
	0x7f7fffff, 0xff7fffff, 0x00800000, // ±MaxFloat32, smallest normal
}

// netShape describes a random network for the tests.
type netShape struct {
	widths   []int // widths[0] is the input width
	residual []bool
	relu     []bool
	levels   int // 0: no embedding
}

// Levels of strange parameters for randomNet.
const (
	plain = iota // ordinary values only
	odd          // also −0, subnormals and large (1e4) weights
	huge         // also rare weights of 3e37 that overflow the sums
)

// randomNet builds a valid network of the given shape with parameters of
// the given strangeness (plain, odd or huge).
func randomNet(r *rand.Rand, s netShape, weird int) *Net {
	n := &Net{}
	for i := 1; i < len(s.widths); i++ {
		in, out := s.widths[i-1], s.widths[i]
		l := Layer{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out),
			ReLU: s.relu[i-1], Residual: s.residual[i-1]}
		scale := float32(1) / float32(roundUp(in, 4))
		for k := range l.W {
			l.W[k] = param(r, scale*2, weird)
		}
		for k := range l.B {
			l.B[k] = param(r, 0.5, weird)
		}
		n.Layers = append(n.Layers, l)
	}
	if s.levels > 0 {
		n.Embed = make([][]float32, s.levels)
		for lv := range n.Embed {
			n.Embed[lv] = make([]float32, n.embedWidth())
			for k := range n.Embed[lv] {
				n.Embed[lv][k] = 1 + param(r, 0.5, weird)
			}
		}
	}
	return n
}

func param(r *rand.Rand, scale float32, weird int) float32 {
	if weird > plain {
		switch r.IntN(64) {
		case 0:
			return math.Float32frombits(0x80000000)
		case 1:
			return math.Float32frombits(r.Uint32() & 0x807fffff) // subnormal
		case 2:
			return randFloat(r, 1e4)
		case 3:
			if weird == huge && r.IntN(16) == 0 {
				return 3e37 // overflows the sums it enters
			}
		}
	}
	return randFloat(r, scale)
}

// randomInputs returns batch×in inputs. With weird set, one row in three
// gets one IEEE special (which usually spreads to the whole output row) and
// one input in sixteen is a signed zero or subnormal.
func randomInputs(r *rand.Rand, batch, in int, weird bool) []float32 {
	x := make([]float32, batch*in)
	for i := range x {
		x[i] = randFloat(r, 2)
		if weird && r.IntN(16) == 0 {
			x[i] = math.Float32frombits(r.Uint32() & 0x807fffff)
		}
	}
	if weird {
		for row := range batch {
			if r.IntN(3) == 0 {
				x[row*in+r.IntN(in)] = math.Float32frombits(specials[r.IntN(len(specials))])
			}
		}
	}
	return x
}

func specLayers(n *Net) []spec.MLPLayer {
	ls := make([]spec.MLPLayer, len(n.Layers))
	for i, l := range n.Layers {
		ls[i] = spec.MLPLayer{In: l.In, Out: l.Out, W: l.W, B: l.B, ReLU: l.ReLU, Residual: l.Residual}
	}
	return ls
}

// checkAgainstSpec runs every kernel on the batch and compares each output
// bit with the reference.
func checkAgainstSpec(t *testing.T, n *Net, src []float32, levels []uint8, batch int) {
	t.Helper()
	p := Pack(n)
	want := make([]float32, 0, batch*n.Out())
	for i := range batch {
		lv := 0
		if levels != nil {
			lv = int(levels[i])
		}
		want = append(want, spec.MLPForward(specLayers(n), n.Embed, lv, src[i*n.In():(i+1)*n.In()])...)
	}
	for name, kern := range kernels() {
		dst := make([]float32, batch*n.Out())
		if err := p.forward(dst, src, levels, batch, new(Scratch), kern); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range dst {
			if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: sample %d output %d = %#08x (%g), spec %#08x (%g)", name, i/n.Out(), i%n.Out(),
					math.Float32bits(dst[i]), dst[i], math.Float32bits(want[i]), want[i])
			}
		}
	}
}

func TestForwardMatchesSpec(t *testing.T) {
	tests := []struct {
		name  string
		shape netShape
	}{
		{"default", netShape{[]int{16, 32, 32, 16}, []bool{false, true, false}, []bool{true, true, false}, 0}},
		{"default-embed", netShape{[]int{16, 32, 32, 16}, []bool{false, true, false}, []bool{true, true, false}, 4}},
		{"1x1", netShape{[]int{1, 1}, []bool{false}, []bool{false}, 0}},
		{"1-res", netShape{[]int{1, 1}, []bool{true}, []bool{true}, 3}},
		{"odd", netShape{[]int{7, 13, 13, 13, 5}, []bool{false, true, true, false}, []bool{true, true, false, false}, 2}},
		{"wide", netShape{[]int{16, 64, 64, 64, 16}, []bool{false, true, true, false}, []bool{true, true, true, false}, 8}},
		{"non-mult-8", netShape{[]int{9, 23, 23, 41, 1}, []bool{false, true, false, false}, []bool{true, true, true, true}, 0}},
		{"deep-noact", netShape{[]int{33, 17, 17, 17, 17, 64}, []bool{false, true, true, true, false}, []bool{false, false, false, false, false}, 256}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		for _, weird := range []int{plain, odd, huge} {
			t.Run(fmt.Sprintf("%s/weird=%v", tt.name, weird), func(t *testing.T) {
				n := randomNet(r, tt.shape, weird)
				for _, batch := range []int{0, 1, 3, 4, 5, 17, 300, 600} {
					src := randomInputs(r, batch, n.In(), weird > plain)
					var levels []uint8
					if tt.shape.levels > 0 {
						levels = make([]uint8, batch)
						for i := range levels {
							levels[i] = uint8(r.IntN(tt.shape.levels))
						}
					}
					checkAgainstSpec(t, n, src, levels, batch)
				}
			})
		}
	}
}

// TestForwardRandomWidths covers every width from 1 to 64 in random nets.
func TestForwardRandomWidths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for w := 1; w <= 64; w++ {
		in := 1 + r.IntN(20)
		s := netShape{[]int{in, w, w, 1 + r.IntN(17)}, []bool{false, true, false}, []bool{true, r.IntN(2) == 0, false}, r.IntN(3)}
		n := randomNet(r, s, w%3)
		batch := 1 + r.IntN(40)
		src := randomInputs(r, batch, in, w%2 == 0)
		var levels []uint8
		if s.levels > 0 {
			levels = make([]uint8, batch)
			for i := range levels {
				levels[i] = uint8(r.IntN(s.levels))
			}
		}
		checkAgainstSpec(t, n, src, levels, batch)
	}
}

// forward1 evaluates a network on one sample with every kernel and checks
// they agree, returning the output.
func forward1(t *testing.T, n *Net, x []float32, level uint8) []float32 {
	t.Helper()
	var out []float32
	for name, kern := range kernels() {
		dst := make([]float32, n.Out())
		if err := Pack(n).forward(dst, x, []uint8{level}, 1, new(Scratch), kern); err != nil {
			t.Fatal(err)
		}
		if out != nil {
			for i := range dst {
				if math.Float32bits(dst[i]) != math.Float32bits(out[i]) {
					t.Fatalf("%s differs from another kernel: %v vs %v", name, dst, out)
				}
			}
		}
		out = dst
	}
	return out
}

// TestNoFusedMultiplyAdd uses a product whose rounding decides the result:
// (1+2⁻¹²)² = 1+2⁻¹¹+2⁻²⁴ rounds to 1+2⁻¹¹ (a tie, to even), so adding the
// bias −(1+2⁻¹¹) gives exactly 0; a fused multiply-add gives 2⁻²⁴.
func TestNoFusedMultiplyAdd(t *testing.T) {
	x := float32(1 + 1.0/4096)
	n := &Net{Layers: []Layer{{In: 1, Out: 1, W: []float32{x}, B: []float32{-(1 + 1.0/2048)}}}}
	if got := forward1(t, n, []float32{x}, 0); math.Float32bits(got[0]) != 0 {
		t.Fatalf("output %g (%#08x), want +0: multiply and add were fused", got[0], math.Float32bits(got[0]))
	}
}

func TestReLUAndNaN(t *testing.T) {
	nan := math.Float32frombits(0xffc00001)
	inf := float32(math.Inf(1))
	tests := []struct {
		name     string
		relu     bool
		residual bool
		x        float32
		want     uint32
	}{
		{"relu-nan", true, false, nan, 0},
		{"relu-neg-zero", true, false, float32(math.Copysign(0, -1)), 0},
		{"relu-neg", true, false, -3, 0},
		{"relu-pos", true, false, 3, math.Float32bits(3)},
		{"relu-inf", true, false, inf, math.Float32bits(inf)},
		{"relu-inf-times-zero", true, false, 0, 0}, // weight row below makes 0·w = 0
		{"nan-canonical", false, false, nan, CanonicalNaN},
		{"neg-zero-kept", false, false, float32(math.Copysign(0, -1)), 0x80000000},
		{"residual-nan", true, true, nan, CanonicalNaN}, // relu gives 0, x + 0 is NaN
		{"residual-inf-minus-inf", false, true, inf, CanonicalNaN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, b := float32(1), float32(0)
			if tt.name == "residual-inf-minus-inf" {
				w = -1 // x + (−x) with x = +Inf is NaN
			}
			if tt.name == "neg-zero-kept" {
				b = float32(math.Copysign(0, -1)) // −0 + (−0·1) = −0
			}
			n := &Net{Layers: []Layer{{In: 1, Out: 1, W: []float32{w}, B: []float32{b}, ReLU: tt.relu, Residual: tt.residual}}}
			got := forward1(t, n, []float32{tt.x}, 0)
			if math.Float32bits(got[0]) != tt.want {
				t.Fatalf("got %#08x, want %#08x", math.Float32bits(got[0]), tt.want)
			}
			want := spec.MLPForward(specLayers(n), nil, 0, []float32{tt.x})
			if math.Float32bits(want[0]) != tt.want {
				t.Fatalf("spec gives %#08x, want %#08x", math.Float32bits(want[0]), tt.want)
			}
		})
	}
}

func TestEmbedding(t *testing.T) {
	// A residual layer with zero weights and bias passes x through, so the
	// output is x·E[level].
	n := &Net{
		Layers: []Layer{{In: 2, Out: 2, W: make([]float32, 4), B: make([]float32, 2), Residual: true}},
		Embed:  [][]float32{{1, 1}, {2, 0.5}, {-1, 3}},
	}
	for lv, want := range [][]float32{{3, 5}, {6, 2.5}, {-3, 15}} {
		got := forward1(t, n, []float32{3, 5}, uint8(lv))
		if got[0] != want[0] || got[1] != want[1] {
			t.Errorf("level %d: got %v, want %v", lv, got, want)
		}
	}
}

func TestLevelOutOfRange(t *testing.T) {
	n := randomNet(rand.New(rand.NewPCG(5, 6)), netShape{[]int{4, 8, 8, 4}, []bool{false, true, false}, []bool{true, true, false}, 3}, plain)
	p := Pack(n)
	src := make([]float32, 2*4)
	dst := make([]float32, 2*4)
	err := p.Forward(dst, src, []uint8{0, 3}, 2, nil)
	if !errors.Is(err, format.ErrFormat) {
		t.Fatalf("level 3 of 3: err = %v, want ErrFormat", err)
	}
	if err := p.Forward(dst, src, []uint8{0, 2}, 2, nil); err != nil {
		t.Fatalf("level 2 of 3: %v", err)
	}
	// Without an embedding levels are ignored.
	n.Embed = nil
	if err := Pack(n).Forward(dst, src, nil, 2, nil); err != nil {
		t.Fatalf("no embedding, nil levels: %v", err)
	}
}

func TestForwardShortSlicesPanic(t *testing.T) {
	p := Pack(randomNet(rand.New(rand.NewPCG(7, 8)), netShape{[]int{4, 4}, []bool{false}, []bool{false}, 0}, plain))
	defer func() {
		if recover() == nil {
			t.Fatal("Forward with a short dst did not panic")
		}
	}()
	p.Forward(make([]float32, 7), make([]float32, 8), nil, 2, nil)
}

func TestNetForwardMatchesPacked(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n := randomNet(r, netShape{[]int{16, 32, 32, 16}, []bool{false, true, false}, []bool{true, true, false}, 2}, huge)
	src := randomInputs(r, 50, 16, true)
	levels := make([]uint8, 50)
	for i := range levels {
		levels[i] = uint8(i % 2)
	}
	a := make([]float32, 50*16)
	b := make([]float32, 50*16)
	if err := n.Forward(a, src, levels, 50); err != nil {
		t.Fatal(err)
	}
	if err := Pack(n).Forward(b, src, levels, 50, nil); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("output %d: Net.Forward %g, Packed.Forward %g", i, a[i], b[i])
		}
	}
}

func TestForwardZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	p := Pack(randomNet(r, netShape{[]int{16, 32, 32, 16}, []bool{false, true, false}, []bool{true, true, false}, 4}, plain))
	src := randomInputs(r, 1000, 16, false)
	dst := make([]float32, 1000*16)
	levels := make([]uint8, 1000)
	var s Scratch
	if err := p.Forward(dst, src, levels, 1000, &s); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(20, func() { p.Forward(dst, src, levels, 1000, &s) }); a != 0 {
		t.Fatalf("Forward allocates %v times per call with a warm Scratch", a)
	}
}

// TestForwardConcurrent shares one Packed between goroutines with their own
// Scratch; run with -race.
func TestForwardConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	n := randomNet(r, netShape{[]int{16, 24, 24, 16}, []bool{false, true, false}, []bool{true, true, false}, 2}, plain)
	p := Pack(n)
	src := randomInputs(r, 500, 16, false)
	levels := make([]uint8, 500)
	want := make([]float32, 500*16)
	if err := p.Forward(want, src, levels, 500, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			var s Scratch
			dst := make([]float32, 500*16)
			for range 10 {
				if err := p.Forward(dst, src, levels, 500, &s); err != nil {
					errs <- err
					return
				}
				for i := range dst {
					if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
						errs <- fmt.Errorf("output %d differs between goroutines", i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Net {
		return randomNet(rand.New(rand.NewPCG(15, 16)), netShape{[]int{4, 8, 8, 4}, []bool{false, true, false}, []bool{true, true, false}, 2}, plain)
	}
	tests := []struct {
		name   string
		break_ func(n *Net)
	}{
		{"no layers", func(n *Net) { n.Layers = nil }},
		{"zero width", func(n *Net) { n.Layers[0].In = 0; n.Layers[0].W = nil }},
		{"too wide", func(n *Net) { n.Layers[2].Out = MaxWidth + 1 }},
		{"unchained", func(n *Net) { n.Layers[1].In = 7 }},
		{"residual not square", func(n *Net) { n.Layers[0].Residual = true }},
		{"short W", func(n *Net) { n.Layers[1].W = n.Layers[1].W[:10] }},
		{"short B", func(n *Net) { n.Layers[1].B = n.Layers[1].B[:3] }},
		{"NaN weight", func(n *Net) { n.Layers[1].W[5] = float32(math.NaN()) }},
		{"Inf bias", func(n *Net) { n.Layers[2].B[0] = float32(math.Inf(-1)) }},
		{"Inf embedding", func(n *Net) { n.Embed[1][3] = float32(math.Inf(1)) }},
		{"embedding width", func(n *Net) { n.Embed[0] = n.Embed[0][:7] }},
		{"empty embedding", func(n *Net) { n.Embed = [][]float32{} }},
		{"embedding without residual", func(n *Net) { n.Layers[1].Residual = false }},
		{"too many levels", func(n *Net) {
			n.Embed = make([][]float32, MaxLevels+1)
			for i := range n.Embed {
				n.Embed[i] = make([]float32, 8)
			}
		}},
		{"too many layers", func(n *Net) {
			for range MaxLayers {
				n.Layers = append(n.Layers, Layer{In: 4, Out: 4, W: make([]float32, 16), B: make([]float32, 4)})
			}
		}},
		{"too many params", func(n *Net) {
			n.Layers = []Layer{{In: 4096, Out: 4096, W: make([]float32, 4096*4096), B: make([]float32, 4096)}}
			n.Embed = nil
		}},
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid network: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ok()
			tt.break_(n)
			err := n.Validate()
			if !errors.Is(err, ErrNet) || !errors.Is(err, format.ErrFormat) {
				t.Fatalf("Validate = %v, want ErrNet and format.ErrFormat", err)
			}
			if _, merr := n.MarshalBinary(); merr == nil {
				t.Fatal("MarshalBinary accepted an invalid network")
			}
		})
	}
}
