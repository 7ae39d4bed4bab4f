package nwcenc

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/neural/train"
	"github.com/nwcodec/nwc/format"
)

// benchTensor encodes a 2048×1024 Gaussian matrix of dtype dt, F32 or
// BF16 (2 M weights, 8 groups of 256 rows), with c at about 4 bits per
// weight.
func benchTensor(b *testing.B, c *Encoder, dt format.DType) (*codec.Tensor, *codec.Encoded) {
	r := rand.New(rand.NewPCG(1, 1))
	rows, cols := 2048, 1024
	data := make([]byte, 0, 4*rows*cols)
	for range rows * cols {
		u := math.Float32bits(float32(r.NormFloat64()))
		if dt == format.BF16 {
			data = binary.LittleEndian.AppendUint16(data, uint16(u>>16))
			continue
		}
		data = binary.LittleEndian.AppendUint32(data, u)
	}
	tt := &codec.Tensor{Name: "w", DType: dt, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
	enc, err := c.Encode(tt, &codec.EncodeOptions{Step: 0.25, GroupBytes: 256 * cols * dt.Size()})
	if err != nil {
		b.Fatal(err)
	}
	return tt, enc
}

// benchDecode decodes every group of enc per iteration, spread over
// GOMAXPROCS goroutines as the reader does, and reports weights/s.
func benchDecode(b *testing.B, tt *codec.Tensor, enc *codec.Encoded) {
	ft := specEntry(tt, enc)
	d, err := codec.LookupDecoder(neural.ID)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := d.NewDecoder(ft, specEnv{enc})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, len(tt.Data))
	size := uint64(tt.DType.Size())
	workers := runtime.GOMAXPROCS(0)
	b.SetBytes(int64(len(tt.Data)))
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				var start uint64
				for i, g := range enc.Groups {
					if i%workers == w {
						if err := dec.DecodeGroup(i, g.Data, out[start*size:g.End*size]); err != nil {
							b.Error(err)
						}
					}
					start = g.End
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(tt.NumElements())*float64(b.N)/b.Elapsed().Seconds(), "weights/s")
}

// BenchmarkDecode measures decoding throughput of the default codec with
// its learned transform, of the scalar fallback (also into bfloat16, the
// dtype of most checkpoints, which takes its own store loop), and of a
// paper-size decoder (width 512, 4 residual blocks) for comparison.
func BenchmarkDecode(b *testing.B) {
	def, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	paper, err := train.NewModel(neural.Config{Chunk: 16, Latent: 16, Width: 512, Blocks: 4}, 1)
	if err != nil {
		b.Fatal(err)
	}
	bigCodec, err := train.NewCodec(paper, "paper-size, untrained")
	if err != nil {
		b.Fatal(err)
	}
	big := New(bigCodec)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		c     *Encoder
		force int
		dt    format.DType
	}{
		{"default-learned", def, forceLearned, format.F32},
		{"default-plain", def, forcePlain, format.F32},
		{"default-plain-bf16", def, forcePlain, format.BF16},
		{"paper-512x4", big, forceLearned, format.F32},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := *tc.c
			c.force = tc.force
			tt, enc := benchTensor(b, &c, tc.dt)
			benchDecode(b, tt, enc)
		})
	}
}
