package ldlq_test

import (
	"fmt"
	"log"
	"math"

	"github.com/nwcodec/nwc/ldlq"
)

// A codec quantizes blocks of columns; Run hands it each block with the
// error of the earlier blocks already compensated.
func Example() {
	// Two strongly correlated inputs: the second column can make up for
	// the rounding error of the first.
	h := []float64{1, 0.9, 0.9, 1}
	f, err := ldlq.Factorize(h, 2, ldlq.DefaultDamp)
	if err != nil {
		log.Fatal(err)
	}
	w := []float32{0.4, 0.4} // one row, two input columns
	m := append([]float32(nil), w...)
	err = ldlq.Run(m, 1, 2, f, 1, func(c0, c1 int) error {
		fmt.Printf("block [%d, %d): target %.3f\n", c0, c1, m[c0])
		for j := c0; j < c1; j++ {
			m[j] = float32(math.Round(float64(m[j])))
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	rtn := []float32{0, 0}
	l1, _ := ldlq.ProxyLoss(h, 2, w, rtn, 1)
	l2, _ := ldlq.ProxyLoss(h, 2, w, m, 1)
	fmt.Printf("decoded %v: loss %.3f, rounding alone %.3f\n", m, l2, l1)
	// Output:
	// block [0, 1): target 0.400
	// block [1, 2): target 0.756
	// decoded [0 1]: loss 0.088, rounding alone 0.608
}
