package chunk_test

import (
	"fmt"
	"log"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

func Example() {
	// A tensor stored [in=3, out=20], PaddlePaddle's linear layout: the
	// codecs work on its 20×3 transpose, whose columns are input channels.
	x := make([]float32, 60)
	for i := range x {
		x[i] = float32(i%3+1) * float32(i%5-2)
	}
	data, err := dtype.FromFloat32(nil, x, format.BF16)
	if err != nil {
		log.Fatal(err)
	}
	t := &codec.Tensor{Name: "fc.w_0", DType: format.BF16, Shape: []uint64{3, 20}, Data: data}
	l, m, err := chunk.Load(t, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("view %v, coded as %d×%d\n", l.View, l.Rows, l.Cols)

	scales := chunk.ScaleValues(chunk.Scales(m, l.Rows, l.Cols))
	fmt.Println("column scales", scales)

	// Chunk 1 of column 0 holds rows 16..19, padded with zeros.
	var c [chunk.Rows]float32
	chunk.Gather(&c, m, l.Rows, l.Cols, 1, 0)
	fmt.Println("chunks per column", chunk.Chunks(l.Rows), "last chunk", c)

	groups, err := chunk.GroupRows(l, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("group end rows", groups)
	// Output:
	// view [3 20], coded as 20×3
	// column scales [2.8730469 3.0820312 3.2011719]
	// chunks per column 2 last chunk [-2 0 1 4 0 0 0 0 0 0 0 0 0 0 0 0]
	// group end rows [20]
}
