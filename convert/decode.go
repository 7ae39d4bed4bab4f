package convert

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"

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
// streaming: every offset follows from the index, so the chunk groups of
// all tensors are decoded on opts.Jobs goroutines, each writing its group
// at its offset, and the header is written once they are all in place.
// Memory holds a few groups, never a whole tensor, and copying into the
// file is spread over the cores too.
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
	ts, err := o.tensors(r)
	if err != nil {
		return err
	}
	// The header is written last: until then the file begins with a
	// zero header length, so a decode killed half way leaves a file no
	// safetensors reader takes for a whole one, whichever groups the
	// workers had written ahead of the others.
	var hdr bytes.Buffer
	w, err := newSafetensorsWriter(r, ts, o.Source, &hdr, target)
	if err != nil {
		return err
	}
	infos := w.Tensors()
	var total uint64
	for _, t := range ts {
		total += t.NumElements()
	}
	if err := decodeAll(ctx, r, w, f, infos, o.Jobs, total, o.Progress); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if _, err := f.WriteAt(hdr.Bytes(), 0); err != nil {
		return err
	}
	return f.Commit()
}

// writebackBytes is how much finished output Decode lets accumulate
// before asking the system to write it out: large enough for few calls,
// small next to the page cache.
const writebackBytes = 64 << 20

// decodeAll decodes the chunk groups of every tensor in infos as one
// numbered sequence on jobs goroutines, each writing its group at its
// offset in f. One sequence rather than one per tensor keeps every core
// busy across tensor boundaries: a run per tensor waits for each tensor's
// last group alone, and a checkpoint's many small tensors (norms, biases)
// have a single group each. Groups are handed on in order, so w is told of
// each tensor's end, and progress reported, in file order.
func decodeAll(ctx context.Context, r *reader.Reader, w *safetensors.Writer, f io.WriterAt,
	infos []safetensors.TensorInfo, jobs int, total uint64, progress func(int, int, uint64, uint64)) error {
	type span struct {
		t  *reader.Tensor
		g0 int64 // number of the tensor's first group in the sequence
	}
	spans := make([]span, len(infos))
	// written is apart from spans, which the workers read: only the
	// emitting goroutine touches it.
	written := make([]int64, len(infos))
	var groups int64
	for k, ti := range infos {
		t, err := r.Tensor(ti.Name)
		if err != nil {
			return err
		}
		spans[k] = span{t: t, g0: groups}
		groups += int64(t.NumGroups())
	}
	// locate finds the tensor of group i of the sequence and the group's
	// number in it.
	locate := func(i int64) (int, int) {
		k, found := slices.BinarySearchFunc(spans, i, func(s span, i int64) int { return cmp.Compare(s.g0, i) })
		if !found {
			k--
		}
		for k+1 < len(spans) && spans[k+1].g0 == i { // skip tensors without groups
			k++
		}
		return k, int(i - spans[k].g0)
	}
	// elems returns the tensor of group i, the group's number in it, its
	// first element and its number of elements.
	elems := func(i int64) (k, g int, e0 uint64, n int) {
		k, g = locate(i)
		e0, e1 := spans[k].t.GroupElements(g)
		return k, g, e0, int(e1 - e0)
	}
	var done uint64
	// Every group up to the one emitted is in the file, so the file's
	// first flushed bytes are final; past writebackBytes more they are
	// handed to the disk while the decode goes on.
	wb, _ := f.(interface{ StartWriteback(off, n int64) })
	var flushed int64
	next := 0 // the first tensor w has not yet been told the end of
	finish := func(through int) error {
		for ; next <= through; next++ {
			ti := infos[next]
			if n := written[next]; n != ti.Length {
				return fmt.Errorf("convert: tensor %q decoded to %d bytes, want %d", ti.Name, n, ti.Length)
			}
			if err := w.SkipTensor(ti.Name); err != nil {
				return err
			}
		}
		return nil
	}
	// finishEmpty tells w of the tensors without groups that come next.
	finishEmpty := func() error {
		k := next
		for k < len(spans) && spans[k].t.NumGroups() == 0 {
			k++
		}
		return finish(k - 1)
	}
	if err := finishEmpty(); err != nil {
		return err
	}
	err := ordered.Run(ctx, groups, jobs, func(i int64) int {
		k, _, _, n := elems(i)
		return n * infos[k].DType.Size()
	}, func(i int64, buf []byte) error {
		k, g, e0, _ := elems(i)
		ti := infos[k]
		if err := spans[k].t.DecodeGroupInto(ctx, g, buf, ti.DType); err != nil {
			return err
		}
		_, err := f.WriteAt(buf, ti.Offset+int64(e0)*int64(ti.DType.Size()))
		return err
	}, func(i int64, buf []byte) error {
		k, g := locate(i)
		written[k] += int64(len(buf))
		done += uint64(len(buf) / infos[k].DType.Size())
		if end := infos[k].Offset + written[k]; wb != nil && end-flushed >= writebackBytes {
			wb.StartWriteback(flushed, end-flushed)
			flushed = end
		}
		if g == spans[k].t.NumGroups()-1 {
			if err := finish(k); err != nil {
				return err
			}
			if err := finishEmpty(); err != nil {
				return err
			}
		}
		if progress != nil {
			progress(next, len(infos), done, total)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if next != len(infos) {
		return fmt.Errorf("convert: decoded %d of %d tensors", next, len(infos))
	}
	if progress != nil {
		progress(len(infos), len(infos), done, total)
	}
	return nil
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
