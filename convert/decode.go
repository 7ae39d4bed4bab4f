package convert

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/internal/ordered"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// DTypeOrig keeps every tensor's original dtype in ToSafetensors.
const DTypeOrig = "orig"

// DecodeOptions configure Decode. The zero value keeps every tensor's
// original dtype and decodes on GOMAXPROCS goroutines.
type DecodeOptions struct {
	// DType is "" or "orig" to keep each tensor's dtype, or "f32", "f16" or
	// "bf16" to convert floating-point tensors to it (integer and bool
	// tensors keep theirs).
	DType string
	// Jobs is the number of chunk groups decoded at once (default
	// GOMAXPROCS).
	Jobs int
	// Progress, if set, is called after each chunk group is written, from
	// Decode's goroutine, with the tensors and weights written so far and
	// their totals.
	Progress func(tensorsDone, tensors int, weightsDone, weights uint64)
}

// ToSafetensors decodes every tensor of r into a safetensors file at out,
// as Decode does with dtype dt.
func ToSafetensors(r *reader.Reader, out string, dt string) error {
	return Decode(context.Background(), r, out, &DecodeOptions{DType: dt})
}

// Decode decodes every tensor of r into a safetensors file at out,
// streaming: the header goes first (every offset follows from the index),
// then each tensor's chunk groups are decoded on opts.Jobs goroutines and
// written in order, so memory holds a few groups, never a whole tensor.
// With the original dtypes, a file converted from a single safetensors file
// comes back byte for byte: its verbatim header is stored in the .nwc. The
// output appears at out only when complete; on an error or when ctx is
// cancelled the temporary file is removed.
func Decode(ctx context.Context, r *reader.Reader, out string, opts *DecodeOptions) error {
	var o DecodeOptions
	if opts != nil {
		o = *opts
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	target, err := targetDType(o.DType)
	if err != nil {
		return err
	}
	f, err := atomicfile.Create(out)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := newSafetensorsWriter(r, bw, target)
	if err != nil {
		return err
	}
	infos := w.Tensors()
	var total, done uint64
	for _, t := range r.Tensors() {
		total += t.NumElements()
	}
	for k, ti := range infos {
		t, err := r.Tensor(ti.Name)
		if err != nil {
			return err
		}
		err = w.WriteTensorFunc(ti.Name, func(write func([]byte) error) error {
			return decodeGroups(ctx, t, ti.DType, o.Jobs, func(b []byte, n uint64) error {
				if err := write(b); err != nil {
					return err
				}
				done += n
				if o.Progress != nil {
					o.Progress(k, len(infos), done, total)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	if o.Progress != nil {
		o.Progress(len(infos), len(infos), done, total)
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Commit()
}

// decodeGroups decodes t's groups on jobs goroutines, converted to want,
// and passes each to emit in order with its number of elements.
func decodeGroups(ctx context.Context, t *reader.Tensor, want format.DType, jobs int, emit func([]byte, uint64) error) error {
	src := t.DType()
	ssize, wsize := src.Size(), want.Size()
	n := t.NumGroups()
	elems := func(i int64) int {
		e0, e1 := t.GroupElements(int(i))
		return int(e1 - e0)
	}
	// Each slot holds the group in its own dtype and, when converting, the
	// converted group after it.
	size := func(i int64) int {
		if want == src {
			return elems(i) * ssize
		}
		return elems(i) * (ssize + wsize)
	}
	fill := func(i int64, buf []byte) error {
		m := elems(i)
		raw := buf[:m*ssize]
		if err := t.DecodeGroup(int(i), raw); err != nil {
			return err
		}
		if want == src {
			return nil
		}
		vals, err := dtype.ToFloat32(nil, raw, src)
		if err != nil {
			return err
		}
		_, err = dtype.FromFloat32(buf[m*ssize:m*ssize], vals, want)
		return err
	}
	return ordered.Run(ctx, int64(n), jobs, size, fill, func(i int64, buf []byte) error {
		m := elems(i)
		if want != src {
			buf = buf[m*ssize:]
		}
		return emit(buf, uint64(m))
	})
}

func targetDType(dt string) (format.DType, error) {
	switch dt {
	case "", DTypeOrig:
		return "", nil
	case "f32", "F32":
		return format.F32, nil
	case "f16", "F16":
		return format.F16, nil
	case "bf16", "BF16":
		return format.BF16, nil
	}
	return "", fmt.Errorf("convert: %w: unknown output dtype %q (want orig, f32, f16 or bf16)", codec.ErrOptions, dt)
}

// newSafetensorsWriter reuses the stored source header when it describes
// exactly the tensors of r in their original dtypes, and writes a canonical
// header otherwise.
func newSafetensorsWriter(r *reader.Reader, f io.Writer, target format.DType) (*safetensors.Writer, error) {
	if target == "" && len(r.Index().Sources) == 1 {
		hdr, err := r.SourceHeader(0)
		if err != nil {
			return nil, err
		}
		// Parse the header with a writer to nowhere first: it may not
		// match, and then nothing must have been written.
		if probe, err := safetensors.NewWriterRaw(io.Discard, hdr); err == nil && sameTensors(probe.Tensors(), r) {
			return safetensors.NewWriterRaw(f, hdr)
		}
	}
	h := &safetensors.Header{Metadata: r.Metadata()}
	for _, t := range r.Tensors() {
		dt := t.DType()
		if target != "" && dt.IsFloat() {
			dt = target
		}
		shape := make([]int64, len(t.Shape()))
		for i, d := range t.Shape() {
			shape[i] = int64(d)
		}
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: t.Name(), DType: dt, Shape: shape})
	}
	return safetensors.NewWriter(f, h)
}

func sameTensors(infos []safetensors.TensorInfo, r *reader.Reader) bool {
	if len(infos) != len(r.Tensors()) {
		return false
	}
	for _, ti := range infos {
		t, err := r.Tensor(ti.Name)
		if err != nil || t.DType() != ti.DType {
			return false
		}
		shape := make([]uint64, len(ti.Shape))
		for i, d := range ti.Shape {
			shape[i] = uint64(d)
		}
		if !slices.Equal(shape, t.Shape()) {
			return false
		}
	}
	return true
}
