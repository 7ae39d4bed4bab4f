package nwcenc

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// peakHeap runs f and returns the most heap memory held by objects while
// it ran, above what was held before, sampled every half millisecond.
// The collector runs at GOGC 10 meanwhile, so that garbage is reclaimed
// soon and the peak is close to what f keeps live.
func peakHeap(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(s); return s[0].Value.Uint64() }
	base := read()
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			peak = max(peak, read())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	return max(peak, read()) - min(base, peak)
}

// TestEncodePeakMemory checks that the encoder, given ReleaseInput, codes
// a BF16 matrix large enough to stream (see encodeStreamed) in about the
// source bytes and one byte per weight of latents at its peak, on each
// of its paths. Slabs are a sixteenth of the matrix here, as they are a
// sliver of the matrices that bound a conversion's memory. The bound of 6
// bytes per weight allows for the source (2), the packed latents (1), the
// slab's buffers (12 per weight of a slab), the encoded groups and the
// codings of the choice's sample (about 1.5 on this 4 Mi-weight matrix,
// nothing on a large one: 8192×4096 peaks at 3.5–3.7); loaded whole, the
// matrix peaked at about 11 (the normalized chunks and the int32
// latents, 8, with the source not yet collected).
func TestEncodePeakMemory(t *testing.T) {
	rows, cols := 2048, 2048
	if v, err := strconv.Atoi(os.Getenv("NWC_MEM_ROWS")); err == nil {
		rows = v
	}
	if v, err := strconv.Atoi(os.Getenv("NWC_MEM_COLS")); err == nil {
		cols = v
	}
	n := float64(rows * cols)
	defer func(w int) { slabWeights = w }(slabWeights)
	slabWeights = rows * cols / 16
	for _, k := range []struct {
		name  string
		force int
		round bool
	}{
		{"trellis", forcePlain, false},
		{"round", forcePlain, true},
		{"learned", forceLearned, false},
	} {
		t.Run(k.name, func(t *testing.T) {
			c := forced(t, k.force)
			c.roundPlain = k.round
			// Warm the model outside the measurement.
			if _, err := c.Encode(bf16Tensor(64, 64, 1), nil); err != nil {
				t.Fatal(err)
			}
			tn := bf16Tensor(rows, cols, 5)
			var err error
			peak := peakHeap(func() {
				_, err = c.Encode(tn, &codec.EncodeOptions{Step: 0.25, ReleaseInput: true})
			})
			if err != nil {
				t.Fatal(err)
			}
			// The source bytes were held before the call.
			perWeight := float64(peak)/n + 2
			t.Logf("%d×%d: peak %.2f bytes per weight, the BF16 source included", rows, cols, perWeight)
			if perWeight > 6 {
				t.Errorf("peak %.2f bytes per weight, want at most 6", perWeight)
			}
		})
	}
}

// bf16Tensor returns a rows×cols BF16 tensor of Gaussian values with
// column scales spread over two orders of magnitude.
func bf16Tensor(rows, cols int, seed uint64) *codec.Tensor {
	r := rand.New(rand.NewPCG(seed, 9))
	scale := make([]float64, cols)
	for j := range scale {
		scale[j] = 0.002 + 0.2*r.Float64()
	}
	data := make([]byte, 2*rows*cols)
	for i := range rows {
		for j := range cols {
			binary.LittleEndian.PutUint16(data[2*(i*cols+j):], dtype.BF16FromFloat32(float32(r.NormFloat64()*scale[j])))
		}
	}
	return &codec.Tensor{Name: "w", DType: format.BF16, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
}
