package convert

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync/atomic"

	"github.com/nwcodec/nwc/codec"
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
	// Tensors, if not nil, names the tensors to decode, in the order of
	// the output file (DecodeShards writes one shard each so).
	Tensors []string
	// Source names the stored source header (nwc convert keeps those of
	// raw and lossless conversions) to reproduce when it describes exactly
	// the decoded tensors in their own dtypes; "" means the only one of a
	// file converted from a single safetensors file.
	Source string
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
// then each tensor's chunk groups are decoded on opts.Jobs goroutines, each
// writing its group at its offset, so memory holds a few groups, never a
// whole tensor, and copying into the file is spread over the cores too.
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
	f, err := atomicfile.CreateContext(ctx, out)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriter(f)
	ts, err := o.tensors(r)
	if err != nil {
		return err
	}
	w, err := newSafetensorsWriter(r, ts, o.Source, bw, target)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	infos := w.Tensors()
	var total, done uint64
	for _, t := range ts {
		total += t.NumElements()
	}
	for k, ti := range infos {
		t, err := r.Tensor(ti.Name)
		if err != nil {
			return err
		}
		n, err := decodeGroups(ctx, t, ti.DType, o.Jobs, func(b []byte, e0 uint64) error {
			_, err := f.WriteAt(b, ti.Offset+int64(e0)*int64(ti.DType.Size()))
			return err
		}, func(n uint64) {
			done += n
			if o.Progress != nil {
				o.Progress(k, len(infos), done, total)
			}
		})
		if err != nil {
			return err
		}
		if n != ti.Length {
			return fmt.Errorf("convert: tensor %q decoded to %d bytes, want %d", ti.Name, n, ti.Length)
		}
		if err := w.SkipTensor(ti.Name); err != nil {
			return err
		}
	}
	if o.Progress != nil {
		o.Progress(len(infos), len(infos), done, total)
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Commit()
}

// decodeGroups decodes t's groups on jobs goroutines as dtype want (the
// reader converts, rounding once) and passes each with its first element to write, on the goroutine that
// decoded it; then, in group order, it calls done with the group's number
// of elements. It returns the bytes written.
func decodeGroups(ctx context.Context, t *reader.Tensor, want format.DType, jobs int,
	write func(b []byte, e0 uint64) error, done func(n uint64)) (int64, error) {
	wsize := want.Size()
	elems := func(i int64) (uint64, int) {
		e0, e1 := t.GroupElements(int(i))
		return e0, int(e1 - e0)
	}
	size := func(i int64) int {
		_, m := elems(i)
		return m * wsize
	}
	var written atomic.Int64
	fill := func(i int64, buf []byte) error {
		e0, _ := elems(i)
		if err := t.DecodeGroupInto(ctx, int(i), buf, want); err != nil {
			return err
		}
		written.Add(int64(len(buf)))
		return write(buf, e0)
	}
	err := ordered.Run(ctx, int64(t.NumGroups()), jobs, size, fill, func(i int64, _ []byte) error {
		_, m := elems(i)
		done(uint64(m))
		return nil
	})
	return written.Load(), err
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
func newSafetensorsWriter(r *reader.Reader, ts []*reader.Tensor, source string, f io.Writer, target format.DType) (*safetensors.Writer, error) {
	if i := sourceIndex(r, source); target == "" && i >= 0 {
		hdr, err := r.SourceHeader(i)
		if err != nil {
			return nil, err
		}
		// Parse the header with a writer to nowhere first: it may not
		// match, and then nothing must have been written.
		if probe, err := safetensors.NewWriterRaw(io.Discard, hdr); err == nil && sameTensors(probe.Tensors(), ts) {
			return safetensors.NewWriterRaw(f, hdr)
		}
	}
	h := &safetensors.Header{Metadata: sourceMetadata(r)}
	for _, t := range ts {
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

func sameTensors(infos []safetensors.TensorInfo, ts []*reader.Tensor) bool {
	if len(infos) != len(ts) {
		return false
	}
	byName := make(map[string]*reader.Tensor, len(ts))
	for _, t := range ts {
		byName[t.Name()] = t
	}
	for _, ti := range infos {
		t, ok := byName[ti.Name]
		if !ok || t.DType() != ti.DType {
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
