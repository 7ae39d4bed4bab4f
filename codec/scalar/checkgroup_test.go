package scalar_test

import (
	"bytes"
	"context"
	"math"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// TestCheckGroupAcceptsCompressible encodes the most compressible tensors
// the entropy-coded codecs see, constant and nearly constant at coarse
// steps, and decodes them through the reader, which asks CheckGroup about
// every payload first: the bound on a payload's length must never refuse
// a valid one.
func TestCheckGroupAcceptsCompressible(t *testing.T) {
	const rows, cols = 512, 512
	zeros := make([]float32, rows*cols)
	tiny := make([]float32, rows*cols)
	for i := range tiny {
		if i%997 == 0 {
			tiny[i] = 1e-3
		}
	}
	for _, id := range []string{scalar.ECSQ, scalar.TCQ} {
		for _, c := range []struct {
			name string
			v    []float32
			opts codec.EncodeOptions
		}{
			{"zeros", zeros, codec.EncodeOptions{Step: 4}},
			{"sparse-coarse", tiny, codec.EncodeOptions{Step: 8, GroupBytes: 64 << 10}},
			{"sparse-fine", tiny, codec.EncodeOptions{Step: 0.05}},
		} {
			t.Run(id+"/"+c.name, func(t *testing.T) {
				data := make([]byte, 0, 4*len(c.v))
				for _, v := range c.v {
					data = append(data, f32bytes(v)...)
				}
				var buf bytes.Buffer
				w, err := writer.New(&buf, nil)
				if err != nil {
					t.Fatal(err)
				}
				tt := &codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{rows, cols}, Data: data}
				if err := w.WriteTensor(tt, id, &c.opts); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				b := buf.Bytes()
				r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
					t.Fatalf("%d-byte file: %v", len(b), err)
				}
			})
		}
	}
}

func f32bytes(v float32) []byte {
	var b [4]byte
	u := math.Float32bits(v)
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	return b[:]
}
