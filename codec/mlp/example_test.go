package mlp_test

import (
	"fmt"
	"log"

	"github.com/nwcodec/nwc/codec/mlp"
)

func Example() {
	// A toy decoder: 2 inputs → 2 hidden (ReLU) → residual block → 1 output,
	// with an embedding that scales the residual output per importance level.
	net := &mlp.Net{
		Layers: []mlp.Layer{
			{In: 2, Out: 2, W: []float32{1, 0, 0, -1}, B: []float32{0, 0}, ReLU: true},
			{In: 2, Out: 2, W: []float32{0.5, 0, 0, 0.5}, B: []float32{0, 1}, ReLU: true, Residual: true},
			{In: 2, Out: 1, W: []float32{1, 1}, B: []float32{0.25}},
		},
		Embed: [][]float32{{1, 1}, {2, 2}},
	}
	// The network travels as bytes inside the codec's tensor data.
	blob, err := net.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	var decoder mlp.Net
	if err := decoder.UnmarshalBinary(blob); err != nil {
		log.Fatal(err)
	}

	// Pack once, then evaluate batches; each goroutine keeps a Scratch.
	p := mlp.Pack(&decoder)
	src := []float32{2, 3, 2, -3}
	levels := []uint8{0, 1}
	dst := make([]float32, 2)
	var scratch mlp.Scratch
	if err := p.Forward(dst, src, levels, 2, &scratch); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(blob), "bytes")
	fmt.Println(dst)
	// Output:
	// 95 bytes
	// [4.25 17.25]
}
