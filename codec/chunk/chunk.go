// Package chunk holds what every lossy codec of nwc (ecsq, rtn, q4k, the
// neural codec) shares: the matrix a tensor is coded as, its per-column
// scales and importance levels, the 16-row chunks of one column, and the
// cutting of the matrix into chunk groups of whole rows.
//
// # The matrix
//
// A codec works on W[rows=out, cols=in], the layout of a linear layer in
// safetensors and PyTorch, so that a column holds the weights that multiply
// one input channel. A tensor of rank ≥ 2 is viewed as [shape[0],
// product of the rest] (a convolution [out, in, kh, kw] becomes
// [out, in·kh·kw]), a vector as [1, n] and a scalar as [1, 1]; this is
// [codec.DefaultView], and it is also the view recorded in the file, so
// chunk groups cover whole rows of the stored tensor. A rank-2 tensor
// stored [in, out] (PaddlePaddle's linear layout) is coded as its transpose
// when the encoder is told so ([codec.EncodeOptions.Transposed]); the file
// still records the storage view, the codec records the flag in its
// parameters, and because storage order then differs from the coded
// matrix's rows such a tensor is a single chunk group.
//
// # Columns
//
// Column j of the matrix has a scale s_j, its RMS rounded to fp16 (see
// [Scales]), and an importance level 0..3 (see [AppendLevels]). Both are
// stored once per tensor in auxiliary sections named [AuxScales] and
// [AuxLevels]; decoders read them with [ParseScales] and [ParseLevels].
//
// # Chunks and groups
//
// A chunk is [Rows] consecutive rows of one column. When the row count is
// not a multiple of [Rows] the last chunk of each column is padded with
// zeros for coding ([Gather]) and cropped on decoding ([Scatter]). Chunk
// groups are blocks of whole rows, each a multiple of [Rows] rows except
// the last ([GroupRows], checked by decoders with [CheckGroups]), so any
// row range decodes without the rest of the tensor.
//
// The byte formats are specified in FORMAT.md, §7.3: the matrix and its
// chunk groups in §7.3.2–7.3.3, the scales and levels sections in
// §7.3.6–7.3.7.
package chunk

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// Rows is the number of consecutive rows of one column in a chunk, and the
// granularity of chunk groups. Changing it changes every lossy format.
const Rows = 16

// Names of the auxiliary sections that hold per-column data.
const (
	AuxScales = "scales" // fp16 per column, lossless-compressed
	AuxLevels = "levels" // 2 bits per column, LSB first: ceil(cols/4) bytes
)

var (
	// ErrNonFinite reports a tensor with a NaN or infinite element, which
	// no lossy codec represents; such tensors must be stored losslessly.
	ErrNonFinite = errors.New("chunk: tensor has a NaN or infinite element")

	// ErrLayout reports a tensor a lossy codec cannot take: a non-float
	// dtype, a transposed tensor whose rank is not 2, data of the wrong
	// length, or a matrix too large for chunk groups.
	ErrLayout = errors.New("chunk: unsupported tensor layout")
)

func layoutErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrLayout, fmt.Sprintf(format, args...))
}

// A Layout maps a tensor to the matrix a lossy codec codes.
type Layout struct {
	DType format.DType
	// View is the 2-D view recorded in the file, [codec.DefaultView] of
	// the shape: chunk groups are ranges of its rows.
	View [2]uint64
	// Transposed says the coded matrix is the transpose of View.
	Transposed bool
	// Rows and Cols are the dimensions of the coded matrix: View's, or
	// swapped when Transposed.
	Rows, Cols int
}

// NewLayout returns the layout of a tensor of the given dtype and shape.
// Only floating-point dtypes are accepted, transposed only for rank 2, and
// the element count must fit in an int. Errors wrap [ErrLayout].
func NewLayout(dt format.DType, shape []uint64, transposed bool) (Layout, error) {
	if !dt.IsFloat() {
		return Layout{}, layoutErr("dtype %q is not floating point", dt)
	}
	if transposed && len(shape) != 2 {
		return Layout{}, layoutErr("a transposed tensor must have rank 2, not %d", len(shape))
	}
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt/8 {
			return Layout{}, layoutErr("shape %v is too large", shape)
		}
		n = lo
	}
	v := codec.DefaultView(shape)
	l := Layout{DType: dt, View: v, Transposed: transposed, Rows: int(v[0]), Cols: int(v[1])}
	if transposed {
		l.Rows, l.Cols = l.Cols, l.Rows
	}
	return l, nil
}

// ParseLayout returns the layout of a tensor entry read from a file. It
// checks what NewLayout checks and that the entry's view is the default
// one; errors wrap format.ErrFormat.
func ParseLayout(t *format.Tensor, transposed bool) (Layout, error) {
	l, err := NewLayout(t.DType, t.Shape, transposed)
	if err != nil {
		return Layout{}, format.TensorErrorf(t.Name, -1, "codec %s: %v", t.Codec, err)
	}
	if t.View != l.View {
		return Layout{}, format.TensorErrorf(t.Name, -1, "codec %s: view %v, want %v", t.Codec, t.View, l.View)
	}
	return l, nil
}

// Len returns the number of elements.
func (l Layout) Len() int { return l.Rows * l.Cols }

// Load returns the layout of t and its coded matrix in float32, row-major,
// converted from any float dtype (exactly, or for F64 rounded to nearest
// even). Errors wrap [ErrLayout] or, for NaN and infinite elements,
// [ErrNonFinite]: a weight that overflows float32 counts as infinite.
func Load(t *codec.Tensor, transposed bool) (Layout, []float32, error) {
	l, err := NewLayout(t.DType, t.Shape, transposed)
	if err != nil {
		return Layout{}, nil, err
	}
	if len(t.Data) != l.Len()*t.DType.Size() {
		return Layout{}, nil, layoutErr("tensor %q has %d bytes, want %d", t.Name, len(t.Data), l.Len()*t.DType.Size())
	}
	// Room for the padding rows of a ragged last chunk lets encoders
	// lay the matrix out in chunks in place.
	size := l.Len()
	if !transposed {
		size = Chunks(l.Rows) * Rows * l.Cols
	}
	m, err := dtype.ToFloat32(make([]float32, 0, size), t.Data, t.DType)
	if err != nil {
		return Layout{}, nil, err
	}
	for i, v := range m {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return Layout{}, nil, fmt.Errorf("%w: tensor %q element %d is %v", ErrNonFinite, t.Name, i, v)
		}
	}
	if transposed {
		m = transpose(m, l.Cols, l.Rows)
	}
	return l, m, nil
}

// Store converts rows of the coded matrix to the tensor's dtype into dst,
// which must be exactly their size. m holds whole rows; when the layout is
// transposed it must be the whole matrix, which is written in storage
// order. Floats round to nearest even (F8_E4M3 saturates).
func (l Layout) Store(dst []byte, m []float32) error {
	size := l.DType.Size()
	if l.Cols == 0 || len(m)%l.Cols != 0 || len(dst) != len(m)*size || (l.Transposed && len(m) != l.Len()) {
		return fmt.Errorf("chunk: storing %d values of a %d×%d matrix into %d bytes", len(m), l.Rows, l.Cols, len(dst))
	}
	if l.Transposed {
		m = transpose(m, l.Rows, l.Cols)
	}
	// dst has room for every element, so FromFloat32 converts in place.
	_, err := dtype.FromFloat32(dst[:0], m, l.DType)
	return err
}

// transpose returns the cols×rows transpose of the rows×cols matrix m.
func transpose(m []float32, rows, cols int) []float32 {
	t := make([]float32, len(m))
	// Blocks of 32×32 keep both sides in cache for large matrices.
	const b = 32
	for r0 := 0; r0 < rows; r0 += b {
		for c0 := 0; c0 < cols; c0 += b {
			for r := r0; r < min(r0+b, rows); r++ {
				for c := c0; c < min(c0+b, cols); c++ {
					t[c*rows+r] = m[r*cols+c]
				}
			}
		}
	}
	return t
}

// GroupRows returns the end row (exclusive) of each chunk group of a
// layout: blocks of a multiple of [Rows] rows holding about groupBytes of
// decoded data (0 means [codec.DefaultGroupBytes]), the last block taking
// the remainder. A transposed layout is one group. An empty matrix has no
// groups. It fails, wrapping [ErrLayout], when a group would exceed
// [format.MaxGroupElements].
func GroupRows(l Layout, groupBytes int) ([]int, error) {
	n := l.Len()
	if n == 0 {
		return nil, nil
	}
	if groupBytes <= 0 {
		groupBytes = codec.DefaultGroupBytes
	}
	if l.Transposed {
		if n > format.MaxGroupElements {
			return nil, layoutErr("transposed matrix of %d elements exceeds one group's %d", n, format.MaxGroupElements)
		}
		return []int{l.Rows}, nil
	}
	limit := format.MaxGroupElements / l.Cols / Rows * Rows
	if limit == 0 {
		return nil, layoutErr("%d rows of %d columns exceed one group's %d elements", Rows, l.Cols, format.MaxGroupElements)
	}
	per := groupBytes / (l.Cols * l.DType.Size()) / Rows * Rows
	per = min(max(per, Rows), limit)
	var ends []int
	for r := 0; r < l.Rows; {
		r = min(r+per, l.Rows)
		ends = append(ends, r)
	}
	return ends, nil
}

// ParseGroups parses the layout of a tensor entry (ParseLayout) and checks
// its groups (CheckGroups): the first step of every lossy decoder.
func ParseGroups(t *format.Tensor, transposed bool) (Layout, []int, error) {
	l, err := ParseLayout(t, transposed)
	if err != nil {
		return l, nil, err
	}
	ends, err := CheckGroups(t, l)
	return l, ends, err
}

// CheckGroups checks that the groups of a tensor entry are blocks of whole
// rows of the coded matrix, each a multiple of [Rows] rows except the last,
// or a single group for a transposed layout, and returns each group's end
// row. Errors wrap format.ErrFormat.
func CheckGroups(t *format.Tensor, l Layout) ([]int, error) {
	if l.Len() == 0 {
		if len(t.Groups) != 0 {
			return nil, format.TensorErrorf(t.Name, -1, "codec %s: empty tensor has %d groups", t.Codec, len(t.Groups))
		}
		return nil, nil
	}
	if l.Transposed && len(t.Groups) != 1 {
		return nil, format.TensorErrorf(t.Name, -1, "codec %s: a transposed tensor has %d groups, want 1", t.Codec, len(t.Groups))
	}
	if l.Transposed {
		return []int{l.Rows}, nil
	}
	ends := make([]int, len(t.Groups)) // len(t.Groups) is bounded by the index size
	prev := 0
	for i, g := range t.Groups {
		cols := uint64(l.Cols)
		if g.End%cols != 0 || g.End/cols > uint64(l.Rows) {
			return nil, format.TensorErrorf(t.Name, -1, "codec %s: group %d ends at element %d, not at a row of %d columns", t.Codec, i, g.End, l.Cols)
		}
		end := int(g.End / cols)
		if end <= prev || (i < len(t.Groups)-1 && (end-prev)%Rows != 0) {
			return nil, format.TensorErrorf(t.Name, -1, "codec %s: group %d holds rows [%d, %d), not a multiple of %d", t.Codec, i, prev, end, Rows)
		}
		ends[i] = end
		prev = end
	}
	if prev != l.Rows {
		return nil, format.TensorErrorf(t.Name, -1, "codec %s: groups cover %d of %d rows", t.Codec, prev, l.Rows)
	}
	return ends, nil
}

// CheckAux rejects auxiliary sections of a tensor entry whose names are
// not in allowed, so that data a decoder would ignore cannot hide in a
// file. Errors wrap format.ErrFormat.
func CheckAux(t *format.Tensor, allowed ...string) error {
	for _, a := range t.Aux {
		ok := false
		for _, name := range allowed {
			ok = ok || a.Name == name
		}
		if !ok {
			return format.TensorErrorf(t.Name, -1, "codec %s has no aux section %q", t.Codec, a.Name)
		}
	}
	return nil
}
