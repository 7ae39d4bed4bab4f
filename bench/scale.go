package bench

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
)

// OpenCost is what opening a .nwc file and listing its tensors costs.
type OpenCost struct {
	// Seconds is the best of several runs of opening the file, reading it
	// with reader.NewReader (what reader.Open does) and listing every
	// tensor's name, dtype and shape.
	Seconds float64 `json:"open_seconds"`
	// BytesRead is what one open read from the file; IndexBytes is the
	// stored index's length, which BytesRead should barely exceed.
	BytesRead  int64 `json:"open_bytes_read"`
	IndexBytes int64 `json:"index_bytes"`
	Tensors    int   `json:"tensors"`
}

type countingFile struct {
	f *os.File
	n atomic.Int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// MeasureOpen opens path runs times and reports the fastest open and
// listing, with the bytes one open read.
func MeasureOpen(path string, runs int) (OpenCost, error) {
	var oc OpenCost
	for i := range max(runs, 1) {
		t0 := time.Now()
		f, err := os.Open(path)
		if err != nil {
			return oc, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return oc, err
		}
		cf := &countingFile{f: f}
		r, err := reader.NewReader(cf, fi.Size(), nil)
		if err != nil {
			f.Close()
			return oc, err
		}
		var n int
		for _, t := range r.Tensors() {
			if t.Name() != "" && t.DType() != "" && len(t.Shape()) > 0 {
				n++
			}
		}
		el := time.Since(t0).Seconds()
		if i == 0 {
			if oc.IndexBytes, err = indexLength(f, fi.Size()); err != nil {
				f.Close()
				return oc, err
			}
		}
		f.Close()
		if i == 0 || el < oc.Seconds {
			oc.Seconds = el
		}
		oc.BytesRead = cf.n.Load()
		oc.Tensors = n
	}
	return oc, nil
}

// indexLength reads the index length from the file's trailer.
func indexLength(f *os.File, size int64) (int64, error) {
	var tb [format.TrailerLen]byte
	off := size - format.TrailerLen
	if _, err := f.ReadAt(tb[:], off); err != nil {
		return 0, err
	}
	t, err := format.ParseTrailer(tb[:], off, size)
	if err != nil {
		return 0, err
	}
	return int64(t.IndexLength), nil
}

// TensorCost is the time to decode one tensor of an open file.
type TensorCost struct {
	Name    string  `json:"tensor"`
	Weights uint64  `json:"tensor_weights"`
	Seconds float64 `json:"tensor_decode_seconds"`
}

// MeasureTensor opens path and decodes the named tensor (or, if name is
// empty or absent, the file's largest one) to its original dtype, the best
// of runs runs.
func MeasureTensor(path, name string, runs int) (TensorCost, error) {
	r, err := reader.Open(path, nil)
	if err != nil {
		return TensorCost{}, err
	}
	defer r.Close()
	t, err := r.Tensor(name)
	if err != nil {
		for _, c := range r.Tensors() {
			if t == nil || c.NumElements() > t.NumElements() {
				t = c
			}
		}
	}
	if t == nil {
		return TensorCost{}, fmt.Errorf("bench: %s has no tensors", path)
	}
	tc := TensorCost{Name: t.Name(), Weights: t.NumElements()}
	for i := range max(runs, 1) {
		t0 := time.Now()
		if _, err := t.Bytes(); err != nil {
			return tc, err
		}
		if el := time.Since(t0).Seconds(); i == 0 || el < tc.Seconds {
			tc.Seconds = el
		}
	}
	return tc, nil
}
