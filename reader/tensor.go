package reader

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// A Tensor is one tensor of a file. Its data is read and decoded on demand.
type Tensor struct {
	r *Reader
	e *format.Tensor

	once sync.Once
	dec  codec.GroupDecoder
	err  error

	rawOnce sync.Once
	raw     []byte // the tensor's bytes in the mapping, when InPlace
	rawErr  error
}

// Name returns the tensor's name.
func (t *Tensor) Name() string { return t.e.Name }

// DType returns the tensor's original element type.
func (t *Tensor) DType() format.DType { return t.e.DType }

// Shape returns a copy of the tensor's shape.
func (t *Tensor) Shape() []uint64 { return append([]uint64(nil), t.e.Shape...) }

// Codec returns the id of the tensor's codec.
func (t *Tensor) Codec() string { return t.e.Codec }

// Entry returns a copy of the tensor's index entry.
func (t *Tensor) Entry() format.Tensor { return t.e.Clone() }

// NumElements returns the number of elements.
func (t *Tensor) NumElements() uint64 { return t.e.NumElements() }

// Rows returns the number of rows of the tensor's 2-D view.
func (t *Tensor) Rows() uint64 { return t.e.View[0] }

// Cols returns the number of columns of the tensor's 2-D view.
func (t *Tensor) Cols() uint64 { return t.e.View[1] }

// StoredBytes returns the bytes the tensor's own sections take in the file.
func (t *Tensor) StoredBytes() uint64 { return t.e.StoredBytes() }

type tensorEnv struct {
	t        *Tensor
	blobUsed bool // the codec asked for the tensor's blob
}

func (env *tensorEnv) Aux(name string) ([]byte, error) {
	a, ok := env.t.e.AuxEntry(name)
	if !ok {
		return nil, format.TensorErrorf(env.t.e.Name, -1, "codec %s needs aux section %q", env.t.e.Codec, name)
	}
	if a.Inline != nil {
		return a.Inline, nil // covered by the index checksum
	}
	return env.t.r.readSection(a.Section, fmt.Sprintf("tensor %q aux %q", env.t.e.Name, name))
}

func (env *tensorEnv) Blob(parse func([]byte) (any, error)) (any, error) {
	if env.t.e.Blob < 0 {
		return nil, format.TensorErrorf(env.t.e.Name, -1, "codec %s needs a blob", env.t.e.Codec)
	}
	env.blobUsed = true
	if b := env.t.r.index.Blobs[env.t.e.Blob]; b.Codec != env.t.e.Codec {
		return nil, format.TensorErrorf(env.t.e.Name, -1, "codec %s given blob %d of codec %s", env.t.e.Codec, env.t.e.Blob, b.Codec)
	}
	return env.t.r.blob(env.t.e.Blob, parse)
}

func (t *Tensor) decoder() (codec.GroupDecoder, error) {
	t.once.Do(func() {
		c, err := codec.LookupDecoder(t.e.Codec)
		if err != nil {
			t.err = fmt.Errorf("tensor %q: %w", t.e.Name, err)
			return
		}
		env := &tensorEnv{t: t}
		t.dec, t.err = c.NewDecoder(t.e, env)
		if t.err == nil && t.e.Blob >= 0 && !env.blobUsed {
			// Every codec that reads a blob asks for it in NewDecoder, so
			// a blob it did not ask for is data no decoder looks at.
			t.dec, t.err = nil, format.TensorErrorf(t.e.Name, -1, "codec %s takes no blob", t.e.Codec)
		}
	})
	return t.dec, t.err
}

// Bytes decodes the whole tensor to its original dtype's little-endian
// bytes, in a new slice.
func (t *Tensor) Bytes() ([]byte, error) {
	if err := t.precheck(t.e.NumElements() * uint64(t.e.DType.Size())); err != nil {
		return nil, err
	}
	out := make([]byte, t.e.NumElements()*uint64(t.e.DType.Size())) // ≤ Limits.MaxTensorBytes, checked by Validate
	if err := t.DecodeInto(context.Background(), out, t.e.DType); err != nil {
		return nil, err
	}
	return out, nil
}

// Float32 decodes the whole tensor to float32, in a new slice.
func (t *Tensor) Float32() ([]float32, error) {
	if err := t.precheck(4 * t.e.NumElements()); err != nil {
		return nil, err
	}
	out := make([]float32, t.e.NumElements())
	if err := t.Float32Into(context.Background(), out); err != nil {
		return nil, err
	}
	return out, nil
}

// RowBytes decodes rows [r0, r1) of the tensor's 2-D view to its original
// dtype's bytes, in a new slice, reading only the chunk groups that hold
// them.
func (t *Tensor) RowBytes(r0, r1 uint64) ([]byte, error) {
	if err := t.checkRows(r0, r1); err != nil {
		return nil, err
	}
	out := make([]byte, (r1-r0)*t.e.View[1]*uint64(t.e.DType.Size()))
	if err := t.DecodeRowsInto(context.Background(), r0, r1, out, t.e.DType); err != nil {
		return nil, err
	}
	return out, nil
}

// RowFloat32 decodes rows [r0, r1) of the 2-D view to float32, in a new
// slice.
func (t *Tensor) RowFloat32(r0, r1 uint64) ([]float32, error) {
	if err := t.checkRows(r0, r1); err != nil {
		return nil, err
	}
	out := make([]float32, (r1-r0)*t.e.View[1])
	if err := t.RowsFloat32Into(context.Background(), r0, r1, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeInto decodes the whole tensor into dst as little-endian elements of
// type dt: the tensor's own dtype (its exact bytes), or F32, F16 or BF16.
// Conversions are those of dtype.Convert: exact when the value fits (BF16
// or F16 to F32), else rounded to nearest, ties to even, once. len(dst)
// must be NumElements × dt.Size().
//
// Each chunk group is decoded straight into dst when dt is the tensor's
// dtype, else through a buffer of one group per concurrent decode. ctx is
// checked between groups; on error dst holds a partial result.
func (t *Tensor) DecodeInto(ctx context.Context, dst []byte, dt format.DType) error {
	return t.decodeBytes(ctx, 0, t.e.NumElements(), dst, dt)
}

// DecodeRowsInto is DecodeInto for rows [r0, r1) of the tensor's 2-D view:
// it reads only the chunk groups that hold them. len(dst) must be
// (r1-r0) × Cols × dt.Size().
func (t *Tensor) DecodeRowsInto(ctx context.Context, r0, r1 uint64, dst []byte, dt format.DType) error {
	if err := t.checkRows(r0, r1); err != nil {
		return err
	}
	return t.decodeBytes(ctx, r0*t.e.View[1], r1*t.e.View[1], dst, dt)
}

// Float32Into decodes the whole tensor into dst, converting as
// dtype.ToFloat32 does (exact from BF16, F16, F8 and small integers;
// rounded to nearest even from F64 and large integers). len(dst) must be
// NumElements.
func (t *Tensor) Float32Into(ctx context.Context, dst []float32) error {
	return t.decodeFloat32(ctx, 0, t.e.NumElements(), dst)
}

// BF16Into decodes the whole tensor into dst as little-endian bfloat16,
// two bytes an element, whatever its codec or original dtype: it is
// DecodeInto(ctx, dst, format.BF16), the form most runtimes load.
func (t *Tensor) BF16Into(ctx context.Context, dst []byte) error {
	return t.DecodeInto(ctx, dst, format.BF16)
}

// F16Into decodes the whole tensor into dst as little-endian IEEE
// half-precision floats: DecodeInto(ctx, dst, format.F16).
func (t *Tensor) F16Into(ctx context.Context, dst []byte) error {
	return t.DecodeInto(ctx, dst, format.F16)
}

// RowsFloat32Into is Float32Into for rows [r0, r1) of the 2-D view.
// len(dst) must be (r1-r0) × Cols.
func (t *Tensor) RowsFloat32Into(ctx context.Context, r0, r1 uint64, dst []float32) error {
	if err := t.checkRows(r0, r1); err != nil {
		return err
	}
	return t.decodeFloat32(ctx, r0*t.e.View[1], r1*t.e.View[1], dst)
}

func (t *Tensor) checkRows(r0, r1 uint64) error {
	if r0 > r1 || r1 > t.e.View[0] {
		return fmt.Errorf("nwc: tensor %q: rows [%d, %d) out of range [0, %d)", t.e.Name, r0, r1, t.e.View[0])
	}
	return nil
}

// checkTarget reports whether the tensor may be decoded as dt.
func (t *Tensor) checkTarget(dt format.DType) error {
	switch dt {
	case t.e.DType:
		return nil
	case format.F32, format.F16, format.BF16:
		if dtype.CanConvert(dt, t.e.DType) {
			return nil
		}
	}
	return fmt.Errorf("nwc: tensor %q: decoding %s as %s: %w", t.e.Name, t.e.DType, dt,
		format.UnsupportedError("output dtype "+string(dt)))
}

func (t *Tensor) decodeBytes(ctx context.Context, e0, e1 uint64, dst []byte, dt format.DType) error {
	if err := t.checkTarget(dt); err != nil {
		return err
	}
	if want := (e1 - e0) * uint64(dt.Size()); uint64(len(dst)) != want {
		return fmt.Errorf("nwc: tensor %q: dst holds %d bytes, want %d (%d %s elements)", t.e.Name, len(dst), want, e1-e0, dt)
	}
	return t.decodeRange(ctx, e0, e1, sink{dt: dt, b: dst})
}

func (t *Tensor) decodeFloat32(ctx context.Context, e0, e1 uint64, dst []float32) error {
	if uint64(len(dst)) != e1-e0 {
		return fmt.Errorf("nwc: tensor %q: dst holds %d values, want %d", t.e.Name, len(dst), e1-e0)
	}
	return t.decodeRange(ctx, e0, e1, sink{f: dst})
}

// A sink is where decodeRange puts elements [e0, e1): b as dt, or f as
// float32; with neither, decoded groups are dropped (Verify).
type sink struct {
	dt format.DType
	b  []byte
	f  []float32
}

// groupRange returns the groups [first, end) that hold elements [e0, e1),
// e0 < e1.
func (t *Tensor) groupRange(e0, e1 uint64) (first, end int) {
	g := t.e.Groups
	first = sort.Search(len(g), func(i int) bool { return g[i].End > e0 })
	end = sort.Search(len(g), func(i int) bool { return g[i].End >= e1 }) + 1
	return first, min(end, len(g))
}

// decodeRange decodes the groups holding elements [e0, e1) into s, up to
// Options.Concurrency at once. The error reported is that of the first
// failing group in file order, so it does not depend on scheduling.
func (t *Tensor) decodeRange(ctx context.Context, e0, e1 uint64, s sink) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The decoder checks the entry (params, aux data, blob) even when no
	// element is wanted: an empty tensor's entry must be valid too.
	dec, err := t.decoder()
	if err != nil {
		return err
	}
	if e0 == e1 {
		return nil
	}
	first, end := t.groupRange(e0, e1)
	workers := min(t.r.opts.Concurrency, end-first)
	if workers <= 1 {
		for i := first; i < end; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := t.decodeGroup(dec, i, e0, e1, s); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next    atomic.Int64
		failed  atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		errAt   = end
		firstEr error
	)
	next.Store(int64(first))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= end {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = t.decodeGroup(dec, i, e0, e1, s)
				}
				if err != nil {
					failed.Store(true)
					mu.Lock()
					if i < errAt {
						errAt, firstEr = i, err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return firstEr
}

// bufPool holds group-sized scratch buffers (*[]byte).
var bufPool sync.Pool

func getBuf(n uint64) *[]byte {
	if p, ok := bufPool.Get().(*[]byte); ok && uint64(cap(*p)) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n)
	return &b
}

func putBuf(p *[]byte) { bufPool.Put(p) }

// decodeGroup decodes group i and stores its part of [e0, e1) in s.
func (t *Tensor) decodeGroup(dec codec.GroupDecoder, i int, e0, e1 uint64, s sink) error {
	g := t.e.Groups[i]
	gs := t.e.GroupStart(i)
	size := uint64(t.e.DType.Size())
	lo, hi := max(gs, e0), min(g.End, e1)
	whole := lo == gs && hi == g.End
	if s.b != nil && s.dt == t.e.DType && whole {
		dst := s.b[(gs-e0)*size : (g.End-e0)*size]
		if t.e.Codec == codec.Raw && g.Length == uint64(len(dst)) {
			// A raw group is the elements themselves: read them
			// straight into dst.
			return t.r.readSectionInto(dst, g.Section, t.groupWhat(i))
		}
		payload, err := t.readPayload(i)
		if err != nil {
			return err
		}
		defer putBuf(payload)
		return t.wrap(dec.DecodeGroup(i, *payload, dst), i)
	}
	payload, err := t.readPayload(i)
	if err != nil {
		return err
	}
	defer putBuf(payload)
	if err := t.checkGroup(dec, i, *payload, g.End-gs); err != nil {
		return err
	}
	buf := getBuf((g.End - gs) * size)
	defer putBuf(buf)
	if err := dec.DecodeGroup(i, *payload, *buf); err != nil {
		return t.wrap(err, i)
	}
	part := (*buf)[(lo-gs)*size : (hi-gs)*size]
	switch {
	case s.f != nil:
		// A full-capacity slice of exactly hi-lo values: the conversion
		// appends in place.
		_, err = dtype.ToFloat32(s.f[lo-e0:lo-e0:hi-e0], part, t.e.DType)
	case s.b != nil:
		osz := uint64(s.dt.Size())
		_, err = dtype.Convert(s.b[(lo-e0)*osz:(lo-e0)*osz:(hi-e0)*osz], s.dt, part, t.e.DType)
	}
	return err
}

// precheckRatio is the decoded-to-stored ratio above which Bytes and
// Float32 check every group's payload before allocating the whole tensor.
// Real tensors stay far below it (lossless codes 1.3:1, 2-bit nwc 16:1), so
// they are read once; a file whose small payloads declare a huge tensor is
// refused without the allocation.
const precheckRatio = 64

// precheck runs the codec's payload check (codec.GroupChecker) on every
// group before a whole-tensor allocation of n bytes that 64 MiB and
// precheckRatio times the stored bytes do not cover.
func (t *Tensor) precheck(n uint64) error {
	if n <= 64<<20 || n/precheckRatio <= t.e.StoredBytes() {
		return nil
	}
	dec, err := t.decoder()
	if err != nil {
		return err
	}
	c, ok := dec.(codec.GroupChecker)
	if !ok {
		return nil
	}
	for i := range t.e.Groups {
		p, err := t.readPayload(i)
		if err != nil {
			return err
		}
		err = t.wrap(c.CheckGroup(i, *p, t.e.Groups[i].End-t.e.GroupStart(i)), i)
		putBuf(p)
		if err != nil {
			return err
		}
	}
	return nil
}

// checkGroup lets a codec that can refuse group i's payload without
// allocating do so before the reader allocates the n elements the group
// declares.
func (t *Tensor) checkGroup(dec codec.GroupDecoder, i int, payload []byte, n uint64) error {
	if c, ok := dec.(codec.GroupChecker); ok {
		return t.wrap(c.CheckGroup(i, payload, n), i)
	}
	return nil
}

// readPayload reads group i's checked payload into a pooled buffer: the
// decoders keep nothing of it once DecodeGroup returns.
func (t *Tensor) readPayload(i int) (*[]byte, error) {
	g := t.e.Groups[i]
	p := getBuf(g.Length) // within the file: checked by Validate
	if err := t.r.readSectionInto(*p, g.Section, t.groupWhat(i)); err != nil {
		putBuf(p)
		return nil, err
	}
	return p, nil
}

func (t *Tensor) groupWhat(i int) string { return fmt.Sprintf("tensor %q group %d", t.e.Name, i) }

func (t *Tensor) wrap(err error, i int) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("tensor %q group %d (offset %#x): %w", t.e.Name, i, t.e.Groups[i].Offset, err)
}

// InPlace reports whether RawBytes returns the tensor's bytes inside the
// file's memory mapping rather than a copy: the file was opened with
// Options.Mmap and mapped, the tensor is stored raw, its groups lie back
// to back in the file, and its first byte is aligned for its dtype.
func (t *Tensor) InPlace() bool {
	m := t.r.mapped
	if m == nil || t.e.Codec != codec.Raw || len(t.e.Groups) == 0 {
		return false
	}
	g := t.e.Groups
	if g[0].Offset%uint64(t.e.DType.Size()) != 0 {
		return false
	}
	size := uint64(t.e.DType.Size())
	for i := range g {
		if g[i].Length != (g[i].End-t.e.GroupStart(i))*size || (i > 0 && g[i].Offset != g[i-1].Section.End()) {
			return false
		}
	}
	return true
}

// RawBytes returns the tensor's elements in its own dtype, little-endian.
// When InPlace reports true the slice is the file's memory mapping itself:
// no byte is copied, the slice must not be modified (the mapping is
// read-only; writing faults), and it must not be used after the
// ReadCloser is closed. The groups' checksums are checked on the first
// call. Otherwise RawBytes returns a decoded copy, as Bytes does.
func (t *Tensor) RawBytes(ctx context.Context) ([]byte, error) {
	if !t.InPlace() {
		out := make([]byte, t.e.NumElements()*uint64(t.e.DType.Size()))
		if err := t.DecodeInto(ctx, out, t.e.DType); err != nil {
			return nil, err
		}
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.rawOnce.Do(func() {
		g := t.e.Groups
		b := t.r.mapped.bytes(g[0].Offset, g[len(g)-1].Section.End()-g[0].Offset)
		if b == nil {
			t.rawErr = fmt.Errorf("nwc: tensor %q: %w", t.e.Name, os.ErrClosed)
			return
		}
		for i, gr := range g {
			part := b[gr.Offset-g[0].Offset : gr.Section.End()-g[0].Offset]
			if got := format.CRC(part); got != gr.CRC {
				t.rawErr = &format.ChecksumError{What: t.groupWhat(i), Off: int64(gr.Offset), Want: gr.CRC, Got: got}
				return
			}
		}
		t.raw = b
	})
	if t.rawErr != nil {
		return nil, t.rawErr
	}
	if t.r.mapped.closed() {
		return nil, fmt.Errorf("nwc: tensor %q: %w", t.e.Name, os.ErrClosed)
	}
	return t.raw, nil
}
