package mlp

import (
	"math"
	"unsafe"

	"github.com/nwcodec/nwc/format"
)

// panelWidth is the number of output neurons a kernel call computes for
// every batch row: two 8-lane AVX registers. Packed layers round their width
// up to a multiple of it.
const panelWidth = 16

// rowBlock is the number of batch rows a kernel computes at once; tiles hold
// a multiple of it.
const rowBlock = 4

// Tile sizing: a tile's two activation buffers should stay in L2 while the
// weight panels stream through L1.
const (
	tileBytes   = 128 << 10 // budget for one activation buffer
	minTileRows = 16
	maxTileRows = 256
)

// Kernel flags, a bit set passed to every panel call.
const (
	kReLU     = 1 << 0 // max(v, +0)
	kResidual = 1 << 1 // add the layer input
	kEmbed    = 1 << 2 // scale by the row's embedding vector
	kCanonNaN = 1 << 3 // replace NaNs by CanonicalNaN (last layer)
)

// A packedLayer is a layer laid out in panels of panelWidth outputs. Panel
// p holds panelWidth biases followed by in rows of panelWidth weights, row k
// holding W[p*16+c][k] for c = 0..15, so a kernel reads one contiguous,
// 32-byte-aligned stream. Outputs past out are zero-padded.
type packedLayer struct {
	in, out, outPad int
	panels          []float32 // outPad/panelWidth panels of (in+1)×panelWidth
	flags           int
}

// A Packed network is a [Net] laid out for the batched kernels. It is
// immutable and safe for concurrent use.
type Packed struct {
	layers   []packedLayer
	in, out  int
	maxPad   int       // widest activation row stride in the tile buffers
	embed    []float32 // levels × embPad, zero-padded; nil without embedding
	embPad   int
	levels   int
	tileRows int
}

// A Scratch holds the working buffers of [Packed.Forward]. The zero value is
// ready to use; buffers grow on first use and are reused after that, so a
// goroutine that keeps its Scratch decodes without allocating. A Scratch must
// not be used by two goroutines at once.
type Scratch struct {
	a, b   []float32
	embOff []int // per tile row: offset of the row's embedding vector
	job    panelJob
}

// A panelJob describes one kernel call: panelWidth outputs of one layer for
// rows (a multiple of rowBlock) batch rows of a tile.
type panelJob struct {
	x      []float32 // layer input, row stride ldx
	ldx    int
	y      []float32 // output, from the panel's first column; row stride ldy
	ldy    int
	w      []float32 // the panel: biases, then k weight rows
	k      int       // layer input width
	rows   int
	flags  int
	res    []float32 // layer input from the panel's first column (residual)
	emb    []float32 // embedding table from the panel's first column
	embOff []int     // per row: offset of its vector in emb
}

// A kernelFunc computes one panelJob. All kernels give bit-identical
// results.
type kernelFunc func(j *panelJob)

// Pack lays out a valid network for [Packed.Forward]. It panics if
// n.Validate reports an error: validate networks from untrusted sources
// first ([Net.UnmarshalBinary] does).
func Pack(n *Net) *Packed {
	if err := n.Validate(); err != nil {
		panic(err)
	}
	p := &Packed{in: n.In(), out: n.Out(), levels: n.Levels()}
	p.maxPad = roundUp(p.in, panelWidth)
	for _, l := range n.Layers {
		pl := packedLayer{in: l.In, out: l.Out, outPad: roundUp(l.Out, panelWidth)}
		if l.ReLU {
			pl.flags |= kReLU
		}
		if l.Residual {
			pl.flags |= kResidual
			if n.Embed != nil {
				pl.flags |= kEmbed
			}
		}
		stride := (l.In + 1) * panelWidth
		pl.panels = alignedFloats(pl.outPad / panelWidth * stride)
		for j := range l.Out {
			panel := pl.panels[j/panelWidth*stride:]
			c := j % panelWidth
			panel[c] = l.B[j]
			for k := range l.In {
				panel[(k+1)*panelWidth+c] = l.W[j*l.In+k]
			}
		}
		p.maxPad = max(p.maxPad, pl.outPad)
		p.layers = append(p.layers, pl)
	}
	p.layers[len(p.layers)-1].flags |= kCanonNaN
	if n.Embed != nil {
		p.embPad = roundUp(n.embedWidth(), panelWidth)
		p.embed = alignedFloats(len(n.Embed) * p.embPad)
		for lv, e := range n.Embed {
			copy(p.embed[lv*p.embPad:], e)
		}
	}
	p.tileRows = tileBytes / 4 / p.maxPad / rowBlock * rowBlock
	p.tileRows = min(max(p.tileRows, minTileRows), maxTileRows)
	return p
}

// In returns the input width of the network.
func (p *Packed) In() int { return p.in }

// Out returns the output width of the network.
func (p *Packed) Out() int { return p.out }

// Levels returns the number of importance levels the network accepts.
func (p *Packed) Levels() int { return p.levels }

// Forward evaluates the network on batch samples: src holds batch×In()
// inputs and dst receives batch×Out() outputs, both row-major. For a network
// with an embedding, levels holds each sample's importance level; otherwise
// it is ignored and may be nil. scratch may be nil (Forward then allocates
// its buffers).
//
// The output is bit-identical to [nwc/spec.MLPForward] on every platform.
// Forward returns an error wrapping [format.ErrFormat] if a level is out of
// range (levels come from decoded data), leaving dst partly written; it
// panics if a slice is shorter than batch requires.
func (p *Packed) Forward(dst, src []float32, levels []uint8, batch int, scratch *Scratch) error {
	if scratch == nil {
		scratch = new(Scratch)
	}
	return p.forward(dst, src, levels, batch, scratch, activeKernel)
}

func (p *Packed) forward(dst, src []float32, levels []uint8, batch int, s *Scratch, kern kernelFunc) error {
	if batch < 0 || len(src) < batch*p.in || len(dst) < batch*p.out {
		panic("mlp: Forward slices shorter than the batch")
	}
	if p.embed != nil {
		if len(levels) < batch {
			panic("mlp: Forward levels shorter than the batch")
		}
		for i, lv := range levels[:batch] {
			if int(lv) >= p.levels {
				return format.Errorf(-1, "mlp: importance level %d of sample %d out of range [0, %d)", lv, i, p.levels)
			}
		}
	}
	s.grow(p.tileRows * p.maxPad)
	for t0 := 0; t0 < batch; t0 += p.tileRows {
		n := min(p.tileRows, batch-t0)
		rows := roundUp(n, rowBlock)
		ld := roundUp(p.in, panelWidth)
		x, y := s.a, s.b
		for i := range n {
			copy(x[i*ld:i*ld+p.in], src[(t0+i)*p.in:])
		}
		// Rows past the batch only pad the last row block; zeros keep
		// them cheap (no subnormals) and their outputs are dropped.
		for i := n; i < rows; i++ {
			clear(x[i*ld : i*ld+p.in])
		}
		if p.embed != nil {
			for i := range rows {
				lv := 0
				if i < n {
					lv = int(levels[t0+i])
				}
				s.embOff[i] = lv * p.embPad
			}
		}
		for li := range p.layers {
			l := &p.layers[li]
			stride := (l.in + 1) * panelWidth
			for c := 0; c < l.outPad; c += panelWidth {
				j := &s.job
				*j = panelJob{
					x: x, ldx: ld, y: y[c:], ldy: l.outPad,
					w: l.panels[c/panelWidth*stride : (c/panelWidth+1)*stride],
					k: l.in, rows: rows, flags: l.flags,
					res: x[c:], embOff: s.embOff,
				}
				if l.flags&kEmbed != 0 {
					j.emb = p.embed[c:]
				}
				kern(j)
			}
			ld = l.outPad
			x, y = y, x
		}
		for i := range n {
			copy(dst[(t0+i)*p.out:(t0+i+1)*p.out], x[i*ld:])
		}
	}
	s.job = panelJob{} // drop references to the caller's network
	return nil
}

// grow makes both activation buffers hold at least n floats.
func (s *Scratch) grow(n int) {
	if len(s.a) < n {
		s.a = alignedFloats(n)
		s.b = alignedFloats(n)
	}
	if len(s.embOff) < maxTileRows {
		s.embOff = make([]int, maxTileRows)
	}
}

// kernelGeneric is the portable kernel. It performs exactly the operations
// of the assembly kernels, in the same order for every output.
func kernelGeneric(j *panelJob) {
	k := j.k
	w := j.w[:(k+1)*panelWidth]
	for r := range j.rows {
		var acc [panelWidth]float32
		x := j.x[r*j.ldx : r*j.ldx+k]
		// Eight named accumulators (half a panel at a time) stay in
		// registers; an indexed array would be loaded and stored on every
		// product.
		for h := 0; h < panelWidth; h += 8 {
			b := w[h : h+8 : h+8]
			a0, a1, a2, a3, a4, a5, a6, a7 := b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
			for kk, xv := range x {
				o := (kk+1)*panelWidth + h
				wr := w[o : o+8 : o+8]
				// The conversions round each product on its own and so
				// forbid fusing it into a multiply-add.
				a0 = a0 + float32(xv*wr[0])
				a1 = a1 + float32(xv*wr[1])
				a2 = a2 + float32(xv*wr[2])
				a3 = a3 + float32(xv*wr[3])
				a4 = a4 + float32(xv*wr[4])
				a5 = a5 + float32(xv*wr[5])
				a6 = a6 + float32(xv*wr[6])
				a7 = a7 + float32(xv*wr[7])
			}
			acc[h], acc[h+1], acc[h+2], acc[h+3] = a0, a1, a2, a3
			acc[h+4], acc[h+5], acc[h+6], acc[h+7] = a4, a5, a6, a7
		}
		if j.flags&kReLU != 0 {
			for c, v := range acc {
				if !(v > 0) {
					acc[c] = 0
				}
			}
		}
		if j.flags&kResidual != 0 {
			res := j.res[r*j.ldx : r*j.ldx+panelWidth]
			for c := range acc {
				acc[c] = res[c] + acc[c]
			}
		}
		if j.flags&kEmbed != 0 {
			e := j.emb[j.embOff[r] : j.embOff[r]+panelWidth]
			for c := range acc {
				acc[c] = float32(acc[c] * e[c])
			}
		}
		if j.flags&kCanonNaN != 0 {
			for c, v := range acc {
				if v != v {
					acc[c] = math.Float32frombits(CanonicalNaN)
				}
			}
		}
		copy(j.y[r*j.ldy:r*j.ldy+panelWidth], acc[:])
	}
}

// alignedFloats returns n zeroed floats starting on a 32-byte boundary, so
// that vector loads of panels and activation rows never split cache lines.
func alignedFloats(n int) []float32 {
	s := make([]float32, n+8)
	off := 0
	if mis := uintptr(unsafe.Pointer(&s[0])) % 32; mis != 0 {
		off = int(32-mis) / 4
	}
	return s[off : off+n : off+n]
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }
