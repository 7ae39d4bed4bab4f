package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"
	"math"

	"github.com/nwcodec/nwc/safetensors"
)

// Example writes a small checkpoint to memory and reads it back.
func Example() {
	h := &safetensors.Header{
		Metadata: map[string]string{"format": "pt"},
		Tensors: []safetensors.TensorInfo{
			{Name: "weight", DType: safetensors.F32, Shape: []int64{2}},
			{Name: "step", DType: safetensors.I64, Shape: []int64{}},
		},
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, h)
	if err != nil {
		log.Fatal(err)
	}
	weight := binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.5))
	weight = binary.LittleEndian.AppendUint32(weight, math.Float32bits(-2))
	if err := w.WriteTensor("weight", weight); err != nil {
		log.Fatal(err)
	}
	if err := w.WriteTensor("step", binary.LittleEndian.AppendUint64(nil, 1000)); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("header: %s\n", bytes.TrimRight(buf.Bytes()[8:buf.Len()-16], " "))

	f, err := safetensors.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("metadata:", f.Metadata())
	for _, t := range f.Tensors() {
		data, err := f.ReadTensor(t.Name)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s %v %d bytes at %d: %x\n", t.Name, t.DType, t.Shape, t.Length, t.Offset, data)
	}
	// Output:
	// header: {"__metadata__":{"format":"pt"},"weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"step":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}
	// metadata: map[format:pt]
	// weight F32 [2] 8 bytes at 160: 0000c03f000000c0
	// step I64 [] 8 bytes at 168: e803000000000000
}

// ExampleNewWriterRaw copies a file through a Writer, reproducing it byte for
// byte while holding only one tensor at a time. The stored header lists the
// tensors out of data order, which the copy preserves.
func ExampleNewWriterRaw() {
	header := `{"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`
	in := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	in = append(in, header+"xyz"...)

	f, err := safetensors.NewReader(bytes.NewReader(in), int64(len(in)), nil)
	if err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	w, err := safetensors.NewWriterRaw(&out, f.RawHeader())
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range f.Tensors() {
		r, err := f.Open(t.Name)
		if err != nil {
			log.Fatal(err)
		}
		if err := w.WriteTensorFrom(t.Name, r); err != nil {
			log.Fatal(err)
		}
		fmt.Println("copied", t.Name)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("identical:", bytes.Equal(in, out.Bytes()))
	// Output:
	// copied a
	// copied b
	// identical: true
}
