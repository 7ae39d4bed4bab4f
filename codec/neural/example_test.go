package neural_test

import (
	"bytes"
	"fmt"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	_ "github.com/nwcodec/nwc/codec/neural/nwcenc" // the encoder, for writing
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// Example writes a 64×32 matrix with the built-in neural codec at a step
// of 0.25 (about 4 bits per weight), referencing the built-in decoder
// instead of storing it, and reads it back.
func Example() {
	t := gaussTensor("layer.weight", 64, 32, 1)
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		panic(err)
	}
	if err := w.WriteTensor(t, neural.ID, &codec.EncodeOptions{Step: 0.25, BlobRef: true}); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		panic(err)
	}
	rt, err := r.Tensor("layer.weight")
	if err != nil {
		panic(err)
	}
	got, err := rt.Bytes()
	if err != nil {
		panic(err)
	}
	var se, ss float64
	for i := 0; i < len(got); i += 4 {
		x, y := f32(t.Data[i:]), f32(got[i:])
		se += (x - y) * (x - y)
		ss += x * x
	}
	fmt.Printf("codec %s, %d values, error energy %.1f%% of the signal\n", rt.Codec(), len(got)/4, 100*se/ss)
	// Output: codec nwc, 2048 values, error energy 0.5% of the signal
}
