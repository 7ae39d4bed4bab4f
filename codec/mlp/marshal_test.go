package mlp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/nwcodec/nwc/format"
)

func TestMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	shapes := []netShape{
		{[]int{16, 32, 32, 16}, []bool{false, true, false}, []bool{true, true, false}, 4},
		{[]int{1, 1}, []bool{true}, []bool{false}, 256},
		{[]int{3, 5}, []bool{false}, []bool{true}, 0},
	}
	for _, s := range shapes {
		n := randomNet(r, s, odd)
		b, err := n.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var m Net
		if err := m.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		b2, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatal("marshal → unmarshal → marshal changed the bytes")
		}
		// Parse reads a network followed by other data.
		m2, used, err := Parse(append(b, 1, 2, 3))
		if err != nil || used != len(b) || m2.Out() != n.Out() {
			t.Fatalf("Parse with trailing data: used %d of %d, err %v", used, len(b), err)
		}
	}
}

// corrupt returns a copy of the golden network's bytes changed by f.
func corrupt(t *testing.T, f func(b []byte) []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenNet)
	if err != nil {
		t.Fatal(err)
	}
	return f(b)
}

func TestUnmarshalRejects(t *testing.T) {
	// golden.mlp: 4 layers, so the layer headers are bytes 2–21, the level
	// count bytes 22–23 and the parameters start at 24.
	const params = headerLen + 4*layerHeaderLen + levelsLen
	tests := []struct {
		name string
		f    func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"version", func(b []byte) []byte { b[0] = 2; return b }},
		{"no layers", func(b []byte) []byte { b[1] = 0; return b }},
		{"too many layers", func(b []byte) []byte { b[1] = MaxLayers + 1; return b }},
		{"truncated headers", func(b []byte) []byte { return b[:10] }},
		{"zero width", func(b []byte) []byte { b[2], b[3] = 0, 0; return b }},
		{"too wide", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[4:], MaxWidth+1); return b }},
		{"unchained", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[4:], 31); return b }},
		{"unknown flag", func(b []byte) []byte { b[6] |= 4; return b }},
		{"residual not square", func(b []byte) []byte { b[6] |= flagResidual; return b }},
		{"too many levels", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[22:], MaxLevels+1); return b }},
		{"more levels than stored", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[22:], 5); return b }},
		{"no residual for embedding", func(b []byte) []byte { b[11] &^= flagResidual; b[16] &^= flagResidual; return b }},
		{"NaN weight", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[params+40:], 0x7fc00000); return b }},
		{"Inf embedding", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[len(b)-4:], 0xff800000); return b }},
		{"truncated parameters", func(b []byte) []byte { return b[:len(b)-1] }},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }},
		{"huge shape, little data", func(b []byte) []byte {
			return []byte{serialVersion, 2, 0x00, 0x10, 0x00, 0x10, 0, 0x00, 0x10, 0x00, 0x01, 0, 0, 0}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n Net
			err := n.UnmarshalBinary(corrupt(t, tt.f))
			if !errors.Is(err, ErrNet) || !errors.Is(err, format.ErrFormat) {
				t.Fatalf("err = %v, want ErrNet and format.ErrFormat", err)
			}
			var ne *NetError
			if !errors.As(err, &ne) || ne.Offset < 0 {
				t.Fatalf("err = %v, want a *NetError with an offset", err)
			}
			if n.Layers != nil {
				t.Fatal("failed UnmarshalBinary modified the network")
			}
		})
	}
}

// TestUnmarshalEveryTruncation checks that no prefix of a valid network
// parses as a complete one.
func TestUnmarshalEveryTruncation(t *testing.T) {
	b := corrupt(t, func(b []byte) []byte { return b })
	for i := range len(b) {
		if _, _, err := Parse(b[:i]); !errors.Is(err, ErrNet) {
			t.Fatalf("prefix of %d bytes: err = %v", i, err)
		}
	}
}

// TestParseKeepsNegativeZero checks the float bits are stored verbatim.
func TestParseKeepsNegativeZero(t *testing.T) {
	n := &Net{Layers: []Layer{{In: 1, Out: 1, W: []float32{float32(math.Copysign(0, -1))}, B: []float32{1}}}}
	b, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Float32bits(m.Layers[0].W[0]) != 0x80000000 {
		t.Fatalf("weight bits %#08x, want −0", math.Float32bits(m.Layers[0].W[0]))
	}
}
