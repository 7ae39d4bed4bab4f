package chunk

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

func TestNewLayout(t *testing.T) {
	tests := []struct {
		dt         format.DType
		shape      []uint64
		transposed bool
		view       [2]uint64
		rows, cols int
	}{
		{format.F32, []uint64{8, 4}, false, [2]uint64{8, 4}, 8, 4},
		{format.BF16, []uint64{8, 4}, true, [2]uint64{8, 4}, 4, 8},
		{format.F16, []uint64{6, 4, 3, 3}, false, [2]uint64{6, 36}, 6, 36},
		{format.F64, []uint64{5}, false, [2]uint64{1, 5}, 1, 5},
		{format.F32, []uint64{}, false, [2]uint64{1, 1}, 1, 1},
		{format.F8E4M3, []uint64{0, 3}, false, [2]uint64{0, 3}, 0, 3},
	}
	for _, tt := range tests {
		l, err := NewLayout(tt.dt, tt.shape, tt.transposed)
		if err != nil {
			t.Fatalf("%v %v: %v", tt.dt, tt.shape, err)
		}
		if l.View != tt.view || l.Rows != tt.rows || l.Cols != tt.cols || l.View != codec.DefaultView(tt.shape) {
			t.Errorf("%v %v transposed=%v: %+v", tt.dt, tt.shape, tt.transposed, l)
		}
	}
	for _, bad := range []struct {
		dt         format.DType
		shape      []uint64
		transposed bool
	}{
		{format.I8, []uint64{2, 2}, false},
		{format.Bool, []uint64{2}, false},
		{format.F32, []uint64{2, 2, 2}, true},
		{format.F32, []uint64{4}, true},
		{format.F32, []uint64{1 << 40, 1 << 30}, false},
	} {
		if _, err := NewLayout(bad.dt, bad.shape, bad.transposed); !errors.Is(err, ErrLayout) {
			t.Errorf("%v %v transposed=%v: %v, want ErrLayout", bad.dt, bad.shape, bad.transposed, err)
		}
	}
}

func TestLoadStore(t *testing.T) {
	x := []float32{1, -2, 3.5, 0.25, -0.125, 6, 7, 8, 9, 10, 11, 12}
	for _, dt := range []format.DType{format.F32, format.F64, format.F16, format.BF16} {
		data, err := dtype.FromFloat32(nil, x, dt)
		if err != nil {
			t.Fatal(err)
		}
		for _, transposed := range []bool{false, true} {
			tn := &codec.Tensor{Name: "t", DType: dt, Shape: []uint64{3, 4}, Data: data}
			l, m, err := Load(tn, transposed)
			if err != nil {
				t.Fatal(err)
			}
			want := x
			if transposed {
				// Stored [in=3, out=4]: the coded matrix is 4×3.
				want = []float32{1, -0.125, 9, -2, 6, 10, 3.5, 7, 11, 0.25, 8, 12}
			}
			if !slices.Equal(m, want) || l.Rows*l.Cols != 12 {
				t.Errorf("%s transposed=%v: loaded %v as %d×%d", dt, transposed, m, l.Rows, l.Cols)
			}
			out := make([]byte, len(data))
			if err := l.Store(out, m); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, data) {
				t.Errorf("%s transposed=%v: store did not restore the bytes", dt, transposed)
			}
			if err := l.Store(out[:len(out)-1], m); err == nil {
				t.Errorf("%s: storing into a short buffer succeeded", dt)
			}
			if transposed {
				if err := l.Store(out[:len(out)/2], m[:6]); err == nil {
					t.Errorf("%s: storing part of a transposed matrix succeeded", dt)
				}
			}
		}
	}
	nan := &codec.Tensor{Name: "n", DType: format.F16, Shape: []uint64{2}, Data: []byte{0, 0, 0, 0x7e}}
	if _, _, err := Load(nan, false); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN: %v", err)
	}
	big := &codec.Tensor{Name: "b", DType: format.F64, Shape: []uint64{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x7f - 1}}
	if _, _, err := Load(big, false); !errors.Is(err, ErrNonFinite) {
		t.Errorf("F64 beyond float32: %v", err)
	}
	short := &codec.Tensor{Name: "s", DType: format.F32, Shape: []uint64{2}, Data: make([]byte, 7)}
	if _, _, err := Load(short, false); !errors.Is(err, ErrLayout) {
		t.Errorf("short data: %v", err)
	}
}

func TestScales(t *testing.T) {
	const rows = 4
	m := []float32{
		// RMS: 2, 0, saturates, below fp16, 0.1 (rounded to fp16)
		2, 0, 1e30, 1e-9, 0.1,
		-2, 0, 1e30, 0, 0.1,
		2, 0, -1e30, 0, -0.1,
		-2, 0, 1e30, 0, 0.1,
	}
	h := Scales(m, rows, 5)
	want := []uint16{0x4000, 0, maxScaleBits, 0, float16.Fromfloat32(0.1).Bits()}
	if !slices.Equal(h, want) {
		t.Errorf("scales %#04x, want %#04x", h, want)
	}
	aux, err := AppendScales(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseScales(aux, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s, ScaleValues(h)) || s[0] != 2 || s[2] != MaxScale {
		t.Errorf("parsed %v", s)
	}
	for _, bad := range []struct {
		name string
		h    []uint16
		cols int
	}{
		{"negative", []uint16{0x8000}, 1},
		{"infinite", []uint16{0x7c00}, 1},
		{"NaN", []uint16{0x7e00}, 1},
		{"count", []uint16{1, 2}, 3},
	} {
		b, _ := AppendScales(nil, bad.h)
		if _, err := ParseScales(b, bad.cols); !errors.Is(err, format.ErrFormat) {
			t.Errorf("%s: %v", bad.name, err)
		}
	}
	if _, err := ParseScales(aux[:len(aux)-1], 5); !errors.Is(err, format.ErrFormat) {
		t.Errorf("truncated: %v", err)
	}
}

func TestLevels(t *testing.T) {
	for cols := 1; cols <= 9; cols++ {
		lv := make([]uint8, cols)
		for j := range lv {
			lv[j] = uint8(j*5+1) % 4
		}
		if err := CheckLevels(lv, cols); err != nil {
			t.Fatal(err)
		}
		b := AppendLevels([]byte{0xaa}, lv)
		if len(b) != 1+(cols+3)/4 {
			t.Fatalf("%d columns: %d bytes", cols, len(b)-1)
		}
		got, err := ParseLevels(b[1:], cols)
		if err != nil || !slices.Equal(got, lv) {
			t.Errorf("%d columns: %v, %v", cols, got, err)
		}
	}
	if b := AppendLevels(nil, []uint8{1, 2, 3, 0, 3}); !bytes.Equal(b, []byte{0x39, 0x03}) {
		t.Errorf("packing % x, want 39 03", b)
	}
	for _, bad := range []struct {
		b    []byte
		cols int
	}{
		{[]byte{0x39}, 5},       // short
		{[]byte{0x39, 3, 0}, 5}, // long
		{[]byte{0x39, 0x07}, 5}, // padding bit
		{[]byte{0, 0}, 5},       // all zero
	} {
		if _, err := ParseLevels(bad.b, bad.cols); !errors.Is(err, format.ErrFormat) {
			t.Errorf("% x: %v", bad.b, err)
		}
	}
	if err := CheckLevels([]uint8{0, 4}, 2); !errors.Is(err, ErrLevels) || !errors.Is(err, codec.ErrOptions) {
		t.Errorf("level 4: %v, want ErrLevels wrapping codec.ErrOptions", err)
	}
	if err := CheckLevels([]uint8{0}, 2); !errors.Is(err, ErrLevels) || !errors.Is(err, codec.ErrOptions) {
		t.Errorf("count: %v, want ErrLevels wrapping codec.ErrOptions", err)
	}
	if err := CheckLevels(nil, 2); err != nil {
		t.Errorf("nil: %v", err)
	}
}

func TestGroupRows(t *testing.T) {
	tests := []struct {
		dt         format.DType
		shape      []uint64
		transposed bool
		groupBytes int
		want       []int
	}{
		{format.F32, []uint64{100, 40}, false, 5000, []int{16, 32, 48, 64, 80, 96, 100}},
		{format.F32, []uint64{100, 40}, false, 1, []int{16, 32, 48, 64, 80, 96, 100}},
		{format.BF16, []uint64{100, 40}, false, 2560, []int{32, 64, 96, 100}},
		{format.F32, []uint64{100, 40}, false, 0, []int{100}},
		{format.F32, []uint64{100, 40}, true, 1, []int{40}},
		{format.F32, []uint64{0, 40}, false, 1, nil},
		{format.F32, []uint64{7}, false, 1, []int{1}},
	}
	for _, tt := range tests {
		l, err := NewLayout(tt.dt, tt.shape, tt.transposed)
		if err != nil {
			t.Fatal(err)
		}
		got, err := GroupRows(l, tt.groupBytes)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%v %v transposed=%v bytes=%d: %v %v, want %v", tt.dt, tt.shape, tt.transposed, tt.groupBytes, got, err, tt.want)
		}
		e := &format.Tensor{Name: "t", Codec: "x", DType: tt.dt, Shape: tt.shape, View: l.View}
		for _, r := range got {
			// A transposed matrix's one group ends at its last element.
			e.Groups = append(e.Groups, format.Group{End: uint64(r * l.Cols)})
		}
		back, err := CheckGroups(e, l)
		if err != nil || !slices.Equal(back, got) {
			t.Errorf("CheckGroups of %v: %v %v", got, back, err)
		}
	}
	wide, _ := NewLayout(format.F32, []uint64{32, 1 << 25}, false)
	if _, err := GroupRows(wide, 0); !errors.Is(err, ErrLayout) {
		t.Errorf("16 rows over the group limit: %v", err)
	}
}

func TestCheckGroupsErrors(t *testing.T) {
	l, _ := NewLayout(format.F32, []uint64{40, 10}, false)
	lt, _ := NewLayout(format.F32, []uint64{40, 10}, true)
	for _, tt := range []struct {
		name string
		l    Layout
		ends []uint64
	}{
		{"mid-row", l, []uint64{165, 400}},
		{"not 16 rows", l, []uint64{150, 400}},
		{"short", l, []uint64{160, 320}},
		{"transposed split", lt, []uint64{160, 400}},
		{"none", l, nil},
	} {
		e := &format.Tensor{Name: "t", Codec: "x"}
		for _, end := range tt.ends {
			e.Groups = append(e.Groups, format.Group{End: end})
		}
		if _, err := CheckGroups(e, tt.l); !errors.Is(err, format.ErrFormat) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	e := &format.Tensor{Name: "t", Codec: "x", Aux: []format.NamedSection{{Name: AuxLevels}, {Name: "zz"}}}
	if err := CheckAux(e, AuxLevels, AuxScales); !errors.Is(err, format.ErrFormat) {
		t.Errorf("unknown aux: %v", err)
	}
	if err := CheckAux(e, AuxLevels, "zz"); err != nil {
		t.Errorf("known aux: %v", err)
	}
}

func TestChunks(t *testing.T) {
	const rows, cols = 21, 3
	m := make([]float32, rows*cols)
	for i := range m {
		m[i] = float32(i + 1)
	}
	if Chunks(rows) != 2 || Chunks(16) != 1 || Chunks(0) != 0 {
		t.Fatalf("Chunks: %d %d %d", Chunks(rows), Chunks(16), Chunks(0))
	}
	var c [Rows]float32
	Gather(&c, m, rows, cols, 1, 2)
	for i, v := range c {
		want := float32(0)
		if 16+i < rows {
			want = m[(16+i)*cols+2]
		}
		if v != want {
			t.Fatalf("chunk row %d = %v, want %v", i, v, want)
		}
	}
	back := make([]float32, len(m))
	for b := range Chunks(rows) {
		for j := range cols {
			Gather(&c, m, rows, cols, b, j)
			Scatter(back, rows, cols, b, j, &c)
		}
	}
	if !slices.Equal(back, m) {
		t.Error("gather/scatter did not reproduce the matrix")
	}

	x := []float32{2, 0, 3, 4, 5, 6}
	s := []float32{2, 0, 0.5}
	Normalize(x, 3, s)
	if !slices.Equal(x, []float32{1, 0, 6, 2, 0, 12}) {
		t.Errorf("normalized %v", x)
	}
	Denormalize(x, 3, s)
	if !slices.Equal(x, []float32{2, 0, 3, 4, 0, 6}) {
		t.Errorf("denormalized %v", x)
	}
	if math.IsNaN(float64(x[1])) {
		t.Error("zero scale produced NaN")
	}
}
