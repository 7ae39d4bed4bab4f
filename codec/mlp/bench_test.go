package mlp

import (
	"math/rand/v2"
	"testing"
	"time"
)

// benchShapes are the decoders measured: the codec's default size, a wider
// variant and the paper's decoder (width 512, four residual blocks).
var benchShapes = []struct {
	name  string
	shape netShape
}{
	{"16-32r32-16", netShape{[]int{16, 32, 32, 16}, []bool{false, true, false}, []bool{true, true, false}, 4}},
	{"16-64r64-16", netShape{[]int{16, 64, 64, 16}, []bool{false, true, false}, []bool{true, true, false}, 4}},
	{"16-512r512x4-16", netShape{
		[]int{16, 512, 512, 512, 512, 512, 16},
		[]bool{false, true, true, true, true, false},
		[]bool{true, true, true, true, true, false}, 4}},
}

// BenchmarkForward measures decoding throughput in weights per second (a
// sample is a 16-weight chunk). Run with -cpu 1,2: b.RunParallel gives each
// goroutine its own Scratch and batch.
func BenchmarkForward(b *testing.B) {
	for _, bs := range benchShapes {
		for name, kern := range kernels() {
			b.Run(bs.name+"/"+name, func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				p := Pack(randomNet(r, bs.shape, plain))
				batch := 4096
				if bs.shape.widths[1] >= 512 {
					batch = 64
				}
				src := randomInputs(r, batch, p.In(), false)
				levels := make([]uint8, batch)
				for i := range levels {
					levels[i] = uint8(r.IntN(4))
				}
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					var s Scratch
					dst := make([]float32, batch*p.Out())
					for pb.Next() {
						if err := p.forward(dst, src, levels, batch, &s, kern); err != nil {
							b.Error(err)
							return
						}
					}
				})
				sec := time.Since(start).Seconds()
				b.ReportMetric(float64(b.N)*float64(batch)*16/sec, "weights/s")
			})
		}
	}
}
