package scalar_test

import (
	"bytes"
	"fmt"
	"log"
	"math"

	"github.com/nwcodec/nwc/codec"
	_ "github.com/nwcodec/nwc/codec/scalar"
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

func Example() {
	// A 256×128 linear layer whose input channels differ in scale, as in
	// trained models; ecsq normalizes every column by its RMS first.
	const rows, cols = 256, 128
	w := make([]float32, rows*cols)
	for i := range w {
		r, c := i/cols, i%cols
		w[i] = float32(0.01 * (1 + float64(c%8)) * math.Sin(float64(r*cols+c)*0.7))
	}
	data, err := dtype.FromFloat32(nil, w, format.F32)
	if err != nil {
		log.Fatal(err)
	}
	t := &codec.Tensor{Name: "layer.weight", DType: format.F32, Shape: []uint64{rows, cols}, Data: data}

	var file bytes.Buffer
	wr, err := writer.New(&file, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"ecsq", "rtn", "q4k"} {
		t.Name = "layer.weight." + id
		if err := wr.WriteTensor(t, id, &codec.EncodeOptions{Step: 0.25, Bits: 4}); err != nil {
			log.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		log.Fatal(err)
	}

	rd, err := reader.NewReader(bytes.NewReader(file.Bytes()), int64(file.Len()), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, tn := range rd.Tensors() {
		got, err := tn.Float32()
		if err != nil {
			log.Fatal(err)
		}
		var s, e float64
		for i := range w {
			s += float64(w[i]) * float64(w[i])
			e += (float64(w[i]) - float64(got[i])) * (float64(w[i]) - float64(got[i]))
		}
		fmt.Printf("%-4s %.2f bits per weight, SQNR %.1f dB\n", tn.Codec(), float64(8*tn.StoredBytes())/(rows*cols), 10*math.Log10(s/e))
	}
	// Output:
	// ecsq 3.66 bits per weight, SQNR 23.5 dB
	// rtn  4.19 bits per weight, SQNR 21.2 dB
	// q4k  4.50 bits per weight, SQNR 24.4 dB
}
