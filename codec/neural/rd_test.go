package neural_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	_ "github.com/nwcodec/nwc/codec/neural/nwcenc"
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/safetensors"
)

// rdPoint is a codec's figure on a whole checkpoint: bits per weight of
// its matrices' own sections (parameters, groups, auxiliary data; not the
// shared blob, which a file may reference instead of storing) and SQNR.
type rdPoint struct{ bpw, sqnr float64 }

// rdCurve codes every matrix of a checkpoint with codec id at each step.
func rdCurve(t *testing.T, path, id string, steps []float64) []rdPoint {
	src, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c, err := codec.LookupEncoder(id)
	if err != nil {
		t.Fatal(err)
	}
	d, err := codec.LookupDecoder(id)
	if err != nil {
		t.Fatal(err)
	}
	var tensors []*codec.Tensor
	for _, ti := range src.Tensors() {
		if len(ti.Shape) < 2 {
			continue
		}
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		shape := make([]uint64, len(ti.Shape))
		for i, s := range ti.Shape {
			shape[i] = uint64(s)
		}
		tensors = append(tensors, &codec.Tensor{Name: ti.Name, DType: format.DType(ti.DType), Shape: shape, Data: b})
	}
	var pts []rdPoint
	for _, step := range steps {
		var bits, n, se, ss float64
		for _, tt := range tensors {
			enc, err := c.Encode(tt, &codec.EncodeOptions{Step: step})
			if err != nil {
				t.Fatal(err)
			}
			bits += 8 * float64(len(enc.Params))
			for _, g := range enc.Groups {
				bits += 8 * float64(len(g.Data))
			}
			for _, a := range enc.Aux {
				bits += 8 * float64(len(a.Data))
			}
			ft := entry(tt, enc)
			ft.Codec = id
			dec, err := d.NewDecoder(ft, memEnv{enc})
			if err != nil {
				t.Fatal(err)
			}
			out := make([]byte, len(tt.Data))
			var start uint64
			for i, g := range enc.Groups {
				if err := dec.DecodeGroup(i, g.Data, out[start*4:g.End*4]); err != nil {
					t.Fatal(err)
				}
				start = g.End
			}
			for i := 0; i < len(out); i += 4 {
				x := float64(math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[i:])))
				y := float64(math.Float32frombits(binary.LittleEndian.Uint32(out[i:])))
				se += (x - y) * (x - y)
				ss += x * x
			}
			n += float64(len(out) / 4)
		}
		pts = append(pts, rdPoint{bits / n, 10 * math.Log10(ss/se)})
	}
	return pts
}

// interp returns the SQNR of curve (ordered by rate) at rate r, linearly
// interpolated, and false outside the curve.
func interp(curve []rdPoint, r float64) (float64, bool) {
	for i := 1; i < len(curve); i++ {
		lo, hi := curve[i-1], curve[i]
		if r <= hi.bpw && r >= lo.bpw {
			return lo.sqnr + (hi.sqnr-lo.sqnr)*(r-lo.bpw)/(hi.bpw-lo.bpw), true
		}
	}
	return 0, false
}

// TestVersusECSQ is the codec's promise on real weights: on stories260K
// and PaddleOCR's detector, from about 1.5 to 6.5 bits per weight, nwc is
// within 0.1 dB of ecsq at equal rate (interpolating ecsq's curve), not
// counting the decoder blob (see TestBlobRef for referencing it).
func TestVersusECSQ(t *testing.T) {
	dir := dataDir(t)
	steps := []float64{1.6, 1.2, 0.9, 0.6, 0.45, 0.3, 0.22, 0.15, 0.1, 0.055}
	for _, f := range []string{"stories260K/stories260K.safetensors", "vision/ppocr_det.safetensors"} {
		path := filepath.Join(dir, f)
		ecsq := rdCurve(t, path, "ecsq", steps)
		nwc := rdCurve(t, path, neural.ID, steps)
		compared := 0
		for i, p := range nwc {
			ref, ok := interp(ecsq, p.bpw)
			if !ok {
				continue
			}
			t.Logf("%s step %.3f: nwc %.4f bpw %.3f dB, ecsq %.4f bpw %.3f dB, nwc − ecsq at equal rate %+.3f dB",
				filepath.Base(f), steps[i], p.bpw, p.sqnr, ecsq[i].bpw, ecsq[i].sqnr, p.sqnr-ref)
			compared++
			if p.sqnr < ref-0.1 {
				t.Errorf("%s step %g: nwc %.3f dB at %.4f bpw, ecsq %.3f dB there", f, steps[i], p.sqnr, p.bpw, ref)
			}
		}
		if compared < len(steps)-2 {
			t.Errorf("%s: only %d of %d rates fell inside ecsq's curve", f, compared, len(steps))
		}
	}
}
