// Package bench measures codecs the way users judge them: rate–distortion
// curves with bits counted from the bytes of real .nwc files.
package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// A Point is one codec at one target rate on one checkpoint.
type Point struct {
	File       string  `json:"file"`
	Codec      string  `json:"codec"`
	TargetBits float64 `json:"target_bits"`
	// BitsPerWeight is counted from the whole file (see
	// convert.BitsPerWeight).
	BitsPerWeight float64 `json:"bits_per_weight"`
	// BlobBitsPerWeight is the part of BitsPerWeight spent on codec blobs
	// (decoder weights and tables shared by the tensors).
	BlobBitsPerWeight float64 `json:"blob_bits_per_weight"`
	FileBytes         int64   `json:"file_bytes"`
	// NMSE is Σ(w−ŵ)² / Σw² over every element of the tensors of rank ≥ 2
	// (lossless ones contribute no error); SQNRdB is −10·log10(NMSE).
	NMSE   float64 `json:"nmse"`
	SQNRdB float64 `json:"sqnr_db"`
	// GaussianBoundDB is the rate–distortion bound of a Gaussian source at
	// BitsPerWeight: 6.02·R dB.
	GaussianBoundDB float64 `json:"gaussian_bound_db"`
	EncodeSeconds   float64 `json:"encode_seconds"`
	DecodeSeconds   float64 `json:"decode_seconds"`
}

// LosslessSQNR stands for the infinite SQNR of an exact reconstruction,
// which JSON cannot represent.
const LosslessSQNR = 999

// RD converts in with each codec at each target rate (codecs without a
// continuous rate, like q4k, once) and measures every point. Files are
// written to dir and removed.
func RD(in string, codecs []string, bits []float64, base convert.Options, dir string) ([]Point, error) {
	orig, err := loadMatrices(in)
	if err != nil {
		return nil, err
	}
	var pts []Point
	for _, c := range codecs {
		targets := bits
		if c == "q4k" {
			targets = []float64{4.5}
		}
		for _, b := range targets {
			p, err := measure(in, c, b, base, dir, orig)
			if err != nil {
				return nil, fmt.Errorf("%s %s at %g bits: %w", filepath.Base(in), c, b, err)
			}
			pts = append(pts, p)
		}
	}
	return pts, nil
}

func measure(in, codecID string, bits float64, base convert.Options, dir string, orig map[string][]float32) (Point, error) {
	p := Point{File: filepath.Base(in), Codec: codecID, TargetBits: bits}
	src, err := safetensors.OpenPath(in)
	if err != nil {
		return p, err
	}
	defer src.Close()
	out := filepath.Join(dir, fmt.Sprintf("rd-%s-%g.nwc", codecID, bits))
	defer os.Remove(out)
	o := base
	o.Codec = codecID
	if codecID != "q4k" {
		o.Bits = bits
	}
	start := time.Now()
	st, err := convert.ToNWC(context.Background(), src, out, &o)
	if err != nil {
		return p, err
	}
	p.EncodeSeconds = time.Since(start).Seconds()
	p.FileBytes = st.OutBytes
	p.BitsPerWeight = st.BitsPerWeight

	start = time.Now()
	d, err := decodeMatrices(out)
	if err != nil {
		return p, err
	}
	p.DecodeSeconds = time.Since(start).Seconds()
	if d.elems > 0 {
		p.BlobBitsPerWeight = float64(d.blobBytes) * 8 / float64(d.elems)
	}
	if p.NMSE, err = nmse(orig, d.m); err != nil {
		return p, err
	}
	p.SQNRdB = sqnrDB(p.NMSE)
	p.GaussianBoundDB = 6.02 * p.BitsPerWeight
	return p, nil
}

// decoded holds the float matrices of a .nwc file.
type decoded struct {
	m         map[string][]float32
	elems     uint64
	blobBytes uint64
}

// decodeMatrices decodes the float tensors of rank ≥ 2 of a .nwc file.
func decodeMatrices(path string) (decoded, error) {
	d := decoded{m: map[string][]float32{}}
	r, err := reader.Open(path, nil)
	if err != nil {
		return d, err
	}
	defer r.Close()
	for _, t := range r.Tensors() {
		if len(t.Shape()) < 2 || !t.DType().IsFloat() {
			continue
		}
		v, err := t.Float32()
		if err != nil {
			return d, err
		}
		d.m[t.Name()] = v
		d.elems += t.NumElements()
	}
	for _, b := range r.Index().Blobs {
		if b.Section != nil {
			d.blobBytes += b.Section.Length
		}
	}
	return d, nil
}

// nmse returns the squared error of decoded against orig over the
// squared values of orig, summed over every matrix of orig.
func nmse(orig, decoded map[string][]float32) (float64, error) {
	var sig, noise float64
	for name, w := range orig {
		d := decoded[name]
		if len(d) != len(w) {
			return 0, fmt.Errorf("tensor %q: decoded %d values, want %d", name, len(d), len(w))
		}
		for i := range w {
			e := float64(w[i]) - float64(d[i])
			sig += float64(w[i]) * float64(w[i])
			noise += e * e
		}
	}
	if sig == 0 {
		return 0, nil
	}
	return noise / sig, nil
}

// sqnrDB is −10·log10(nmse), LosslessSQNR for an exact reconstruction.
func sqnrDB(nmse float64) float64 {
	if nmse <= 0 {
		return LosslessSQNR
	}
	return min(-10*math.Log10(nmse), LosslessSQNR)
}

// fileSQNR returns the SQNR of the .nwc file at path against orig.
func fileSQNR(path string, orig map[string][]float32) (float64, error) {
	d, err := decodeMatrices(path)
	if err != nil {
		return 0, err
	}
	e, err := nmse(orig, d.m)
	return sqnrDB(e), err
}

// loadMatrices reads the float tensors of rank ≥ 2 of a checkpoint.
func loadMatrices(in string) (map[string][]float32, error) {
	src, err := safetensors.OpenPath(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	out := map[string][]float32{}
	for _, ti := range src.Tensors() {
		dt := ti.DType
		if len(ti.Shape) < 2 || !dt.IsFloat() {
			continue
		}
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			return nil, err
		}
		if out[ti.Name], err = dtype.ToFloat32(nil, b, dt); err != nil {
			return nil, err
		}
	}
	return out, nil
}
