package reader

import (
	"fmt"
	"sync"

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
}

// Name returns the tensor's name.
func (t *Tensor) Name() string { return t.e.Name }

// DType returns the tensor's original element type.
func (t *Tensor) DType() format.DType { return t.e.DType }

// Shape returns the tensor's shape.
func (t *Tensor) Shape() []uint64 { return append([]uint64(nil), t.e.Shape...) }

// Codec returns the id of the tensor's codec.
func (t *Tensor) Codec() string { return t.e.Codec }

// Entry returns the tensor's index entry. The caller must not modify it.
func (t *Tensor) Entry() *format.Tensor { return t.e }

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
		c, err := codec.Lookup(t.e.Codec)
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
// bytes.
func (t *Tensor) Bytes() ([]byte, error) { return t.elements(0, t.e.NumElements()) }

// Float32 decodes the whole tensor to float32.
func (t *Tensor) Float32() ([]float32, error) {
	b, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	return dtype.ToFloat32(nil, b, t.e.DType)
}

// RowBytes decodes rows [r0, r1) of the tensor's 2-D view to its original
// dtype's bytes, reading only the chunk groups that hold them.
func (t *Tensor) RowBytes(r0, r1 uint64) ([]byte, error) {
	if r0 > r1 || r1 > t.e.View[0] {
		return nil, fmt.Errorf("nwc: tensor %q: rows [%d, %d) out of range [0, %d)", t.e.Name, r0, r1, t.e.View[0])
	}
	return t.elements(r0*t.e.View[1], r1*t.e.View[1])
}

// RowFloat32 decodes rows [r0, r1) of the 2-D view to float32.
func (t *Tensor) RowFloat32(r0, r1 uint64) ([]float32, error) {
	b, err := t.RowBytes(r0, r1)
	if err != nil {
		return nil, err
	}
	return dtype.ToFloat32(nil, b, t.e.DType)
}

// elements decodes elements [e0, e1), decoding the groups that hold them
// in parallel.
func (t *Tensor) elements(e0, e1 uint64) ([]byte, error) {
	size := uint64(t.e.DType.Size())
	out := make([]byte, (e1-e0)*size) // ≤ Limits.MaxTensorBytes, checked by Validate
	if e0 == e1 {
		return out, nil
	}
	dec, err := t.decoder()
	if err != nil {
		return nil, err
	}
	first := 0
	for first < len(t.e.Groups) && t.e.Groups[first].End <= e0 {
		first++
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, t.r.opts.Concurrency)
		mu   sync.Mutex
		ferr error
		fi   int // the group ferr is about: the first failing group wins, as in a serial read (FORMAT.md §6)
	)
	for i := first; i < len(t.e.Groups) && t.e.GroupStart(i) < e1; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := t.decodeInto(dec, i, e0, e1, out); err != nil {
				mu.Lock()
				if ferr == nil || i < fi {
					ferr, fi = err, i
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if ferr != nil {
		return nil, ferr
	}
	return out, nil
}

// decodeInto decodes group i and copies its part of [e0, e1) into out.
func (t *Tensor) decodeInto(dec codec.GroupDecoder, i int, e0, e1 uint64, out []byte) error {
	g := t.e.Groups[i]
	gs := t.e.GroupStart(i)
	size := uint64(t.e.DType.Size())
	payload, err := t.r.readSection(g.Section, fmt.Sprintf("tensor %q group %d", t.e.Name, i))
	if err != nil {
		return err
	}
	lo, hi := max(gs, e0), min(g.End, e1)
	if lo == gs && hi == g.End {
		// The whole group is wanted: decode in place.
		dst := out[(gs-e0)*size : (g.End-e0)*size]
		return t.wrap(dec.DecodeGroup(i, payload, dst), i)
	}
	tmp := make([]byte, (g.End-gs)*size)
	if err := dec.DecodeGroup(i, payload, tmp); err != nil {
		return t.wrap(err, i)
	}
	copy(out[(lo-e0)*size:(hi-e0)*size], tmp[(lo-gs)*size:(hi-gs)*size])
	return nil
}

func (t *Tensor) wrap(err error, i int) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("tensor %q group %d (offset %#x): %w", t.e.Name, i, t.e.Groups[i].Offset, err)
}
