package scalarenc

import (
	"fmt"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
)

// benchShape is a mid-sized linear layer: 1 M weights.
var benchShape = []uint64{1024, 1024}

func BenchmarkEncode(b *testing.B) {
	for _, id := range []string{scalar.ECSQ, scalar.TCQ, scalar.RTN, scalar.Q4K} {
		b.Run(id, func(b *testing.B) {
			tn := gaussian("w", 1, benchShape, 0.02, format.BF16)
			c, _ := codec.LookupEncoder(id)
			b.SetBytes(int64(len(tn.Data)))
			for b.Loop() {
				if _, err := c.Encode(tn, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(tn.NumElements())/b.Elapsed().Seconds()/1e6, "Mweights/s")
		})
	}
}

// BenchmarkDecode decodes every group of a tensor on one goroutine (the
// reader decodes groups in parallel on top of this).
func BenchmarkDecode(b *testing.B) {
	for _, id := range []string{scalar.ECSQ, scalar.TCQ, scalar.RTN, scalar.Q4K} {
		for _, dt := range []format.DType{format.BF16, format.F32} {
			b.Run(fmt.Sprintf("%s/%s", id, dt), func(b *testing.B) {
				tn := gaussian("w", 1, benchShape, 0.02, dt)
				c, _ := codec.LookupEncoder(id)
				enc, err := c.Encode(tn, nil)
				if err != nil {
					b.Fatal(err)
				}
				e, env := entry(id, tn, enc)
				d, err := codec.LookupDecoder(id)
				if err != nil {
					b.Fatal(err)
				}
				dec, err := d.NewDecoder(e, env)
				if err != nil {
					b.Fatal(err)
				}
				size := uint64(dt.Size())
				out := make([]byte, len(tn.Data))
				b.SetBytes(int64(len(tn.Data)))
				for b.Loop() {
					for i, g := range enc.Groups {
						if err := dec.DecodeGroup(i, g.Data, out[e.GroupStart(i)*size:g.End*size]); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)*float64(tn.NumElements())/b.Elapsed().Seconds()/1e6, "Mweights/s")
			})
		}
	}
}
