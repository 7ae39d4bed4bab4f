package convert_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// Convert a safetensors file to .nwc losslessly, read a tensor back, and
// decode the whole file to the original safetensors bytes.
func ExampleToNWC() {
	dir, _ := os.MkdirTemp("", "nwc-example")
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "model.safetensors")
	h := &safetensors.Header{Metadata: map[string]string{"format": "pt"},
		Tensors: []safetensors.TensorInfo{{Name: "w", DType: safetensors.F32, Shape: []int64{2, 2}}}}
	w := []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40} // 1 2 3 4
	if err := safetensors.WriteFile(in, h, func(string) ([]byte, error) { return w, nil }); err != nil {
		fmt.Println(err)
		return
	}

	src, err := safetensors.Open(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	out := filepath.Join(dir, "model.nwc")
	st, err := convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: codec.Lossless})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("tensors:", st.Tensors)

	r, err := reader.Open(out, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	t, _ := r.Tensor("w")
	vals, _ := t.Float32()
	fmt.Println(t.Shape(), vals, r.Metadata()["format"])

	back := filepath.Join(dir, "back.safetensors")
	if err := convert.ToSafetensors(r.Reader, back, ""); err != nil {
		fmt.Println(err)
		return
	}
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(back)
	fmt.Println("same bytes:", bytes.Equal(a, b))
	// Output:
	// tensors: 1
	// [2 2] [1 2 3 4] pt
	// same bytes: true
}
