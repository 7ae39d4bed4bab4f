package calib_test

import (
	"fmt"
	"log"
	"path/filepath"

	"github.com/nwcodec/nwc/calib"
)

func Example() {
	s, err := calib.ReadHessians(filepath.Join("testdata", "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range s.Weights() {
		h, _ := s.Hessian(w)
		under, _ := s.StoredUnder(w)
		fmt.Printf("%s: %dx%d over %d tokens, stored under %s, diag %v\n", w, h.N, h.N, h.Tokens, under, h.Diag())
	}
	// Output:
	// a.weight: 3x3 over 10 tokens, stored under a.weight, diag [4 2 3]
	// b.weight: 2x2 over 7 tokens, stored under b.weight, diag [0 0.25]
	// c.weight: 3x3 over 10 tokens, stored under a.weight, diag [4 2 3]
}

func ExampleLevels() {
	diag := make([]float64, 1000)
	for i := range diag {
		diag[i] = float64(i % 97)
	}
	levels := calib.Levels(diag, calib.DefaultThresholds)
	var count [4]int
	for _, l := range levels {
		count[l]++
	}
	fmt.Println("columns at levels 0..3:", count)
	// Output:
	// columns at levels 0..3: [889 100 10 1]
}
