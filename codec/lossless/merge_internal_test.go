package lossless

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// mergeBF16Ref is the element-by-element BF16 merge the fast loop must
// match.
func mergeBF16Ref(dst, planes []byte, m int) {
	e, sm := planes[:m], planes[m:2*m]
	for i := range m {
		v := uint16(e[i])<<7 | uint16(sm[i]&0x80)<<8 | uint16(sm[i]&0x7f)
		dst[2*i], dst[2*i+1] = byte(v), byte(v>>8)
	}
}

func TestMergeBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range []int{0, 1, 3, 4, 5, 7, 8, 9, 63, 64, 1000, 4097} {
		planes := make([]byte, 2*m)
		for i := range planes {
			planes[i] = byte(rng.Uint32())
		}
		want, got := make([]byte, 2*m), make([]byte, 2*m)
		mergeBF16Ref(want, planes, m)
		merge(elemFormat{size: 2, layout: layoutBF16}, got, planes, m)
		if !bytes.Equal(got, want) {
			t.Errorf("m=%d: merge differs from the element loop", m)
		}
	}
}

func BenchmarkMergeBF16(b *testing.B) {
	const m = 1 << 19
	planes := make([]byte, 2*m)
	for i := range planes {
		planes[i] = byte(i * 7)
	}
	dst := make([]byte, 2*m)
	b.SetBytes(2 * m)
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			merge(elemFormat{size: 2, layout: layoutBF16}, dst, planes, m)
		}
	})
	b.Run("ref", func(b *testing.B) {
		for range b.N {
			mergeBF16Ref(dst, planes, m)
		}
	})
}
