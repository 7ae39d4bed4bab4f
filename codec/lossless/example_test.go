package lossless_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"math"

	"github.com/nwcodec/nwc/codec/lossless"
)

func Example() {
	// 4096 BF16 weights spread like a trained layer: the exponents take few
	// values while the mantissas look random.
	raw := make([]byte, 2*4096)
	for i := range 4096 {
		w := float32(0.02 * math.Sin(float64(i)*1.7) * math.Cos(float64(i)*0.37))
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(math.Float32bits(w)>>16))
	}

	z, err := lossless.Compress(nil, raw, "BF16")
	if err != nil {
		log.Fatal(err)
	}
	back, err := lossless.Decompress(nil, z, "BF16", 4096)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("raw %d bytes, compressed %d bytes, identical: %v\n", len(raw), len(z), bytes.Equal(back, raw))
	// Output:
	// raw 8192 bytes, compressed 5011 bytes, identical: true
}

func ExampleDecompress_errors() {
	z, err := lossless.Compress(nil, []byte{0x80, 0x3f}, "BF16")
	if err != nil {
		log.Fatal(err)
	}
	// Asking for a different dtype or element count than was compressed is
	// reported, like any damage, as corrupt input.
	_, err = lossless.Decompress(nil, z, "F16", 1)
	fmt.Println(errors.Is(err, lossless.ErrCorrupt))
	_, err = lossless.Decompress(nil, append(z, 0), "BF16", 1)
	fmt.Println(err)
	// Output:
	// true
	// lossless: corrupt input at offset 8: payloads take 2 bytes, 3 remain
}
