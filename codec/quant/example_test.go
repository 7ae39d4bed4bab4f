package quant_test

import (
	"fmt"

	"github.com/nwcodec/nwc/codec/quant"
)

func ExampleRTN() {
	r := quant.RTN{Bits: 4, Group: 4}
	row := []float32{-1, 0, 0.5, 2, 1, 1, 1, 1, 0}
	enc := r.Quantize(nil, row)
	fmt.Printf("%d bytes: % x\n", r.RowBytes(len(row)), enc)
	dec, err := r.Dequantize(nil, enc, len(row))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(dec)
	// Output:
	// 13 bytes: 66 32 44 2c 00 00 05 00 50 f8 ff ff 00
	// [-0.99975586 0 0.5998535 1.9995117 0.99975586 0.99975586 0.99975586 0.99975586 0]
}

func ExampleQuantizeQ4K() {
	// A ramp over one super-block; ggml's quantizer fits each 32-weight
	// sub-block with 16 levels.
	x := make([]float32, quant.Q4KBlockWeights)
	for i := range x {
		x[i] = float32(i)/128 - 1
	}
	enc := quant.QuantizeQ4K(nil, x)
	y, err := quant.DequantizeQ4K(nil, enc)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(enc), "bytes")
	fmt.Printf("%.4f %.4f %.4f\n", y[0], y[128], y[255])
	// Output:
	// 144 bytes
	// -0.9959 0.0000 0.9679
}

func ExampleDequantizeQ4K_truncated() {
	_, err := quant.DequantizeQ4K(nil, make([]byte, 200))
	fmt.Println(err)
	// Output:
	// quant: corrupt data at byte 144: truncated Q4_K block: 56 of 144 bytes
}
