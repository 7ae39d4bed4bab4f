package spec

import (
	"math"
	"testing"
)

func TestMLPForward(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	nan := math.Float32frombits(0xffc00001)
	x1 := float32(1 + 1.0/4096) // (1+2⁻¹²)² rounds to 1+2⁻¹¹ (a tie, to even)
	tests := []struct {
		name   string
		layers []MLPLayer
		embed  [][]float32
		level  int
		x      []float32
		want   []uint32
	}{
		{
			// A fused multiply-add would give 2⁻²⁴ instead of 0.
			name:   "no-fma",
			layers: []MLPLayer{{In: 1, Out: 1, W: []float32{x1}, B: []float32{-(1 + 1.0/2048)}}},
			x:      []float32{x1},
			want:   []uint32{0},
		},
		{
			// Sums run in increasing k: (1e8 + 1) − 1e8 = 0 in float32, while
			// 1e8 − 1e8 + 1 would be 1.
			name:   "order",
			layers: []MLPLayer{{In: 3, Out: 1, W: []float32{1, 1, 1}, B: []float32{0}}},
			x:      []float32{1e8, 1, -1e8},
			want:   []uint32{0},
		},
		{
			name:   "relu",
			layers: []MLPLayer{{In: 1, Out: 4, W: []float32{1, -1, 1, 1}, B: []float32{0, 0, negZero, 0}, ReLU: true}},
			x:      []float32{2},
			want:   []uint32{math.Float32bits(2), 0, math.Float32bits(2), math.Float32bits(2)},
		},
		{
			name:   "relu-nan-and-negative-zero",
			layers: []MLPLayer{{In: 1, Out: 2, W: []float32{1, 0}, B: []float32{0, negZero}, ReLU: true}},
			x:      []float32{nan},
			want:   []uint32{0, 0},
		},
		{
			name:   "canonical-nan",
			layers: []MLPLayer{{In: 1, Out: 1, W: []float32{1}, B: []float32{0}}},
			x:      []float32{nan},
			want:   []uint32{MLPCanonicalNaN},
		},
		{
			name:   "negative-zero-kept",
			layers: []MLPLayer{{In: 1, Out: 1, W: []float32{1}, B: []float32{negZero}}},
			x:      []float32{negZero},
			want:   []uint32{0x80000000},
		},
		{
			// out = (x + ReLU(Wx + b)) · E[level]
			name: "residual-embed",
			layers: []MLPLayer{{In: 2, Out: 2, W: []float32{1, 0, 0, -1}, B: []float32{0.5, 0},
				ReLU: true, Residual: true}},
			embed: [][]float32{{1, 1}, {2, 4}},
			level: 1,
			x:     []float32{1, 3},
			want:  []uint32{math.Float32bits((1 + 1.5) * 2), math.Float32bits(3 * 4)},
		},
		{
			name: "two-layers",
			layers: []MLPLayer{
				{In: 2, Out: 1, W: []float32{0.5, 0.25}, B: []float32{1}},
				{In: 1, Out: 2, W: []float32{2, -2}, B: []float32{0, 1}},
			},
			x:    []float32{2, 4},
			want: []uint32{math.Float32bits(6), math.Float32bits(-5)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MLPForward(tt.layers, tt.embed, tt.level, tt.x)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d outputs, want %d", len(got), len(tt.want))
			}
			for i, v := range got {
				if math.Float32bits(v) != tt.want[i] {
					t.Errorf("output %d = %#08x (%g), want %#08x", i, math.Float32bits(v), v, tt.want[i])
				}
			}
		})
	}
}

func TestMLPForwardLeavesInputAlone(t *testing.T) {
	x := []float32{1, 2}
	MLPForward([]MLPLayer{{In: 2, Out: 2, W: []float32{1, 1, 1, 1}, B: []float32{0, 0}, Residual: true}}, nil, 0, x)
	if x[0] != 1 || x[1] != 2 {
		t.Fatalf("input modified: %v", x)
	}
}

func TestMLPForwardWidthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an input of the wrong width")
		}
	}()
	MLPForward([]MLPLayer{{In: 2, Out: 1, W: []float32{1, 1}, B: []float32{0}}}, nil, 0, []float32{1})
}
