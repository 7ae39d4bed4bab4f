package llama

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// SafetensorsSource is a WeightSource reading a safetensors checkpoint.
// Floating-point tensors of any dtype the file may hold (F64, F32, F16,
// BF16, FP8) are converted to float32 on each call.
type SafetensorsSource struct {
	Src safetensors.Source
}

// HasTensor reports whether the checkpoint holds the named tensor.
func (s SafetensorsSource) HasTensor(name string) bool {
	_, ok := s.Src.Tensor(name)
	return ok
}

// Tensor reads and converts the named tensor.
func (s SafetensorsSource) Tensor(name string) ([]float32, []int64, error) {
	ti, ok := s.Src.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	raw, err := s.Src.ReadTensor(name)
	if err != nil {
		return nil, nil, err
	}
	data, err := dtype.ToFloat32(nil, raw, format.DType(ti.DType))
	if err != nil {
		return nil, nil, fmt.Errorf("llama: tensor %s: %w", name, err)
	}
	return data, slices.Clone(ti.Shape), nil
}

// NWCSource is a WeightSource reading a .nwc file. Each call decodes the
// named tensor through its codec, so lossy files yield the decoded
// weights the file's users will see; the codecs of the file must be
// registered (imported) by the program.
type NWCSource struct {
	R *reader.Reader
}

// HasTensor reports whether the file holds the named tensor, without
// decoding it.
func (s NWCSource) HasTensor(name string) bool {
	_, err := s.R.Tensor(name)
	return err == nil
}

// Tensor decodes the named tensor to float32.
func (s NWCSource) Tensor(name string) ([]float32, []int64, error) {
	t, err := s.R.Tensor(name)
	if err != nil {
		if errors.Is(err, format.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, nil, err
	}
	data, err := t.Float32()
	if err != nil {
		return nil, nil, err
	}
	shape := make([]int64, 0, 2)
	for _, d := range t.Shape() {
		shape = append(shape, int64(d))
	}
	return data, shape, nil
}

// Load opens the model at path, choosing the reader by the name: ".bin"
// is a llama2.c legacy checkpoint (LoadBin), ".nwc" a compressed file,
// and anything else a safetensors checkpoint as safetensors.OpenPath
// accepts it (a file, a sharded index or a directory holding either). For
// safetensors and .nwc files the configuration comes from the file's
// metadata (ConfigFromMetadata), which convert copies from the source
// checkpoint; when the metadata has none, from the config.json convert
// stored in it (format.MetaFilePrefix + "config.json", read by
// ConfigFromJSON); else from the config.json in the same directory,
// where Hugging Face keeps it. The files
// are closed before Load returns.
func Load(path string) (*Model, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".bin":
		return LoadBin(path)
	case ".nwc":
		rc, err := reader.Open(path, nil)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return fromMetadata(rc.Metadata(), NWCSource{R: rc.Reader}, path)
	}
	src, err := safetensors.OpenPath(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("llama: %s: %w", path, err)
	}
	defer src.Close()
	return fromMetadata(src.Metadata(), SafetensorsSource{Src: src}, path)
}

func fromMetadata(md map[string]string, src WeightSource, path string) (*Model, error) {
	if text, ok := md[format.MetaFilePrefix+ConfigFile]; ok && !hasConfig(md) {
		// The config.json convert stored with the weights.
		hf, err := ConfigFromJSON(strings.NewReader(text))
		if err != nil {
			return nil, fmt.Errorf("llama: %s: %w", path, err)
		}
		md = hf
	}
	if !hasConfig(md) {
		// Hugging Face checkpoints keep their configuration beside the
		// weights.
		dir := path
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			dir = filepath.Dir(path)
		}
		hf, err := configBeside(dir)
		if err != nil {
			return nil, fmt.Errorf("llama: %s: %w", path, err)
		}
		if hf != nil {
			md = hf
		}
	}
	cfg, err := ConfigFromMetadata(md)
	if err != nil {
		return nil, fmt.Errorf("llama: %s: %w", path, err)
	}
	return New(cfg, src)
}
