package spec_test

import (
	"fmt"
	"log"
	"os"

	"github.com/nwcodec/nwc/spec"
)

// Decode checks a whole file and decodes every tensor; the error of a bad
// file names its class.
func ExampleDecode() {
	b, err := os.ReadFile("../conformance/testdata/golden/raw_dtypes.nwc")
	if err != nil {
		log.Fatal(err)
	}
	f, err := spec.Decode(b, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range f.Tensors[:3] {
		fmt.Println(t.Name, t.DType, t.Shape, len(t.Data))
	}
	b[100] ^= 1 // damage a section
	_, err = spec.Decode(b, nil)
	fmt.Println(spec.Class(err))
	// Output:
	// dtype.F64 F64 [7 33] 1848
	// dtype.F32 F32 [7 33] 924
	// dtype.F16 F16 [7 33] 462
	// checksum
}
