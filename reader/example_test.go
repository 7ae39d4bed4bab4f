package reader_test

import (
	"bytes"
	"fmt"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// Write a file with two tensors to memory, then read one row of one tensor
// back lazily.
func Example() {
	var buf bytes.Buffer
	w, _ := writer.New(&buf, nil)
	w.SetMetadata(map[string]string{"format": "pt"})
	data := make([]byte, 0, 6*4)
	for i := 0; i < 6; i++ {
		data = append(data, 0, byte(i), 0, 0) // little-endian int32 i·256
	}
	w.WriteTensor(&codec.Tensor{Name: "w", DType: format.I32, Shape: []uint64{3, 2}, Data: data}, codec.Lossless, nil)
	w.WriteTensor(&codec.Tensor{Name: "b", DType: format.U8, Shape: []uint64{3}, Data: []byte{7, 8, 9}}, codec.Raw, nil)
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}

	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range r.Tensors() {
		fmt.Println(t.Name(), t.DType(), t.Shape(), t.Codec())
	}
	t, _ := r.Tensor("w")
	row, _ := t.RowFloat32(1, 2)
	fmt.Println(row, r.Metadata()["format"])
	// Output:
	// w I32 [3 2] lossless
	// b U8 [3] raw
	// [512 768] pt
}
