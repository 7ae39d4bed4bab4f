// Package convert turns safetensors checkpoints into .nwc files and back.
package convert

import (
	"fmt"
	"path/filepath"

	"nwc/codec"
	"nwc/format"
	"nwc/safetensors"
	"nwc/writer"
)

// Options configure ToNWC. The zero value converts with the lossless codec.
type Options struct {
	// Codec is the codec id for every tensor; "" means codec.Lossless.
	Codec string
	// Encode is passed to the codec.
	Encode codec.EncodeOptions
	// Writer configures the container.
	Writer writer.Options
	// SourceName is the base name recorded for a single-file source;
	// "" means "model.safetensors".
	SourceName string
	// Progress, if set, is called after each tensor.
	Progress func(done, total int, name string)
}

// Stats summarizes a conversion.
type Stats struct {
	Tensors  int
	InBytes  int64 // tensor data bytes read
	OutBytes int64 // size of the .nwc file
}

// ToNWC converts the checkpoint src to a .nwc file at out. The file appears
// under its name only when complete.
func ToNWC(src safetensors.Source, out string, opts *Options) (*Stats, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Codec == "" {
		o.Codec = codec.Lossless
	}
	if _, err := codec.Lookup(o.Codec); err != nil {
		return nil, err
	}
	f, err := writer.Create(out, &o.Writer)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	if err := addSources(f.Writer, src, o.SourceName); err != nil {
		return nil, err
	}
	tensors := src.Tensors()
	st := &Stats{}
	for i, ti := range tensors {
		data, err := src.ReadTensor(ti.Name)
		if err != nil {
			return nil, err
		}
		shape := make([]uint64, len(ti.Shape))
		for j, d := range ti.Shape {
			shape[j] = uint64(d)
		}
		t := &codec.Tensor{Name: ti.Name, DType: format.DType(ti.DType), Shape: shape, Data: data}
		if err := f.WriteTensor(t, o.Codec, &o.Encode); err != nil {
			return nil, err
		}
		st.Tensors++
		st.InBytes += int64(len(data))
		if o.Progress != nil {
			o.Progress(i+1, len(tensors), ti.Name)
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	st.OutBytes = f.Size()
	return st, nil
}

// addSources records the metadata and the verbatim safetensors headers.
func addSources(w *writer.Writer, src safetensors.Source, name string) error {
	switch s := src.(type) {
	case *safetensors.ReadCloser:
		if s.HasMetadata() {
			if err := w.SetMetadata(nonNil(s.Metadata())); err != nil {
				return err
			}
		}
		if name == "" {
			name = "model.safetensors"
		}
		return w.AddSource(filepath.Base(name), s.RawHeader())
	case *safetensors.Sharded:
		if md := s.Metadata(); md != nil {
			if err := w.SetMetadata(md); err != nil {
				return err
			}
		}
		for _, name := range s.Shards() {
			sf, ok := s.Shard(name)
			if !ok {
				return fmt.Errorf("convert: shard %q vanished", name)
			}
			if err := w.AddSource(name, sf.RawHeader()); err != nil {
				return err
			}
		}
		return nil
	}
	if md := src.Metadata(); md != nil {
		return w.SetMetadata(md)
	}
	return nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
