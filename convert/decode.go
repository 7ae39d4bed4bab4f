package convert

import (
	"fmt"
	"io"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// DTypeOrig keeps every tensor's original dtype in ToSafetensors.
const DTypeOrig = "orig"

// ToSafetensors decodes every tensor of r into a safetensors file at out.
// With dt "" or "orig" each tensor keeps its original dtype, and a file
// converted from a single safetensors file comes back byte for byte: its
// verbatim header is stored in the .nwc. Otherwise dt is "f32", "f16" or
// "bf16" and floating-point tensors are converted to it (integer and bool
// tensors keep their dtype).
func ToSafetensors(r *reader.Reader, out string, dt string) error {
	target, err := targetDType(dt)
	if err != nil {
		return err
	}
	f, err := atomicfile.Create(out)
	if err != nil {
		return err
	}
	defer f.Abort()
	w, err := newSafetensorsWriter(r, f, target)
	if err != nil {
		return err
	}
	for _, ti := range w.Tensors() {
		t, err := r.Tensor(ti.Name)
		if err != nil {
			return err
		}
		data, err := t.Bytes()
		if err != nil {
			return err
		}
		if want := ti.DType; want != t.DType() {
			vals, err := dtype.ToFloat32(nil, data, t.DType())
			if err != nil {
				return err
			}
			if data, err = dtype.FromFloat32(nil, vals, want); err != nil {
				return err
			}
		}
		if err := w.WriteTensor(ti.Name, data); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Commit()
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
func newSafetensorsWriter(r *reader.Reader, f *atomicfile.File, target format.DType) (*safetensors.Writer, error) {
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
