package format

import (
	"errors"
	"testing"
)

func TestMsgReaderRejectsHostileCounts(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		read func(m *MsgReader) error
	}{
		{"array claims 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, func(m *MsgReader) error { _, err := m.ArrayLen("a", 1); return err }},
		{"map claims 65535", []byte{0xde, 0xff, 0xff, 0x01, 0x01}, func(m *MsgReader) error { _, err := m.MapLen("m"); return err }},
		{"bin claims more than remains", []byte{0xc5, 0x10, 0x00, 0x01}, func(m *MsgReader) error { _, err := m.Bytes("b"); return err }},
		{"string not UTF-8", []byte{0xa2, 0xff, 0xfe}, func(m *MsgReader) error { _, err := m.String("s", 0); return err }},
		{"string too long", []byte{0xa3, 'a', 'b', 'c'}, func(m *MsgReader) error { _, err := m.String("s", 2); return err }},
		{"negative uint", []byte{0xff}, func(m *MsgReader) error { _, err := m.Uint("u"); return err }},
		{"int8 negative as uint", []byte{0xd0, 0x80}, func(m *MsgReader) error { _, err := m.Uint("u"); return err }},
		{"wrong type", []byte{0xc0}, func(m *MsgReader) error { _, err := m.Uint("u"); return err }},
		{"truncated uint32", []byte{0xce, 0x01}, func(m *MsgReader) error { _, err := m.Uint("u"); return err }},
		{"reserved code 0xc1", []byte{0xc1}, func(m *MsgReader) error { return m.Skip("x") }},
		{"duplicate map key", []byte{0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02}, func(m *MsgReader) error {
			return m.MapKeys("m", func(string) error { _, err := m.Uint("v"); return err })
		}},
	}
	for _, c := range cases {
		err := c.read(NewMsgReader(c.b, 100))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if Class(err) == "" {
			t.Errorf("%s: unclassified error %v", c.name, err)
		}
	}
}

func TestSkipDepthLimit(t *testing.T) {
	b := make([]byte, 0, 100)
	for i := 0; i < 40; i++ {
		b = append(b, 0x91) // array of one element
	}
	b = append(b, 0x01)
	if err := NewMsgReader(b, -1).Skip("deep"); !errors.Is(err, ErrFormat) {
		t.Fatalf("40 levels of nesting: %v", err)
	}
	b = b[len(b)-10:]
	if err := NewMsgReader(b, -1).Skip("shallow"); err != nil {
		t.Fatalf("9 levels: %v", err)
	}
}

func TestMsgRoundTrip(t *testing.T) {
	w := NewMsgWriter()
	w.MapLen(6)
	w.String("u")
	w.Uint(1 << 40)
	w.String("i")
	w.Int(-5)
	w.String("f")
	w.Float64(0.25)
	w.String("b")
	w.Bool(true)
	w.String("bin")
	w.Bin([]byte{1, 2})
	w.String("raw")
	w.Raw([]byte{0x92, 0x01, 0x02})
	m := NewMsgReader(w.Bytes(), -1)
	got := map[string]any{}
	err := m.MapKeys("m", func(k string) error {
		var v any
		var err error
		switch k {
		case "u":
			v, err = m.Uint(k)
		case "i":
			v, err = m.Int(k)
		case "f":
			v, err = m.Float(k)
		case "b":
			v, err = m.Bool(k)
		case "bin":
			var b []byte
			b, err = m.Bytes(k)
			v = string(b)
		case "raw":
			var b []byte
			b, err = m.Raw(k)
			v = string(b)
		}
		got[k] = v
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"u": uint64(1 << 40), "i": int64(-5), "f": 0.25, "b": true, "bin": "\x01\x02", "raw": "\x92\x01\x02"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %#v, want %#v", k, got[k], v)
		}
	}
	if m.Remaining() != 0 {
		t.Errorf("%d bytes left", m.Remaining())
	}
}

func TestIndexRoundTrip(t *testing.T) {
	x := &Index{
		Metadata: map[string]string{"b": "2", "a": "1"},
		Sources:  []Source{{Name: "m.safetensors", Header: Section{64, 10, 7}}},
		Blobs:    []Blob{{Codec: "nwc", SHA256: [32]byte{1}, Section: &Section{128, 5, 9}}, {Codec: "nwc", SHA256: [32]byte{2}}},
		Tensors: []Tensor{{Name: "t", DType: F32, Shape: []uint64{2, 3}, Codec: "raw", Params: []byte{0x80}, Blob: 1,
			View: [2]uint64{2, 3}, Groups: []Group{{End: 6, Section: Section{192, 24, 3}}},
			Aux: []NamedSection{{Name: "levels", Inline: []byte{7}}, {Name: "scales", Section: Section{256, 2, 4}}}}},
	}
	b := x.Marshal()
	y, err := ParseIndex(b, 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(y.Marshal()) != string(b) {
		t.Fatal("index does not round-trip")
	}
	if s, ok := y.Tensors[0].AuxEntry("scales"); !ok || s.Len() != 2 || s.Inline != nil {
		t.Fatal("aux section lost")
	}
	if s, ok := y.Tensors[0].AuxEntry("levels"); !ok || string(s.Inline) != "\x07" {
		t.Fatal("inline aux lost")
	}
}

func TestIndexCompression(t *testing.T) {
	x := &Index{}
	for i := 0; i < 50; i++ {
		x.Tensors = append(x.Tensors, Tensor{Name: "layers.weight", DType: F32, Shape: []uint64{4}, Codec: "raw", Blob: -1, View: [2]uint64{1, 4}})
	}
	raw := x.Marshal()
	c := CompressIndex(raw)
	if !IndexCompressed(c) || len(c) >= len(raw)/2 {
		t.Fatalf("compressed %d → %d bytes", len(raw), len(c))
	}
	got, err := DecompressIndex(c, 0, int64(len(raw)))
	if err != nil || string(got) != string(raw) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := DecompressIndex(c, 0, int64(len(raw)-1)); Class(err) != "limit" {
		t.Errorf("index over the limit: %v", err)
	}
	tiny := (&Index{}).Marshal()
	if s := CompressIndex(tiny); IndexCompressed(s) {
		t.Error("an index zstd cannot shorten was compressed")
	}
	if _, err := DecompressIndex(append(c[:len(c):len(c)], 0x28, 0xb5, 0x2f, 0xfd, 0), 0, 1<<20); Class(err) != "format" {
		t.Errorf("trailing frame accepted: %v", err)
	}
}

// TestFloatExactIntegers checks that Float accepts an integer only when
// float64 holds it exactly, and floats of either width.
func TestFloatExactIntegers(t *testing.T) {
	enc := func(write func(w *MsgWriter)) []byte {
		w := NewMsgWriter()
		write(w)
		return w.Bytes()
	}
	for _, c := range []struct {
		b    []byte
		want float64
		ok   bool
	}{
		{enc(func(w *MsgWriter) { w.Float64(0.25) }), 0.25, true},
		{[]byte{0xca, 0x3e, 0x80, 0, 0}, 0.25, true}, // float 32
		{enc(func(w *MsgWriter) { w.Uint(3) }), 3, true},
		{enc(func(w *MsgWriter) { w.Int(-5) }), -5, true},
		{enc(func(w *MsgWriter) { w.Uint(1 << 60) }), 1 << 60, true},
		{enc(func(w *MsgWriter) { w.Uint(1<<60 + 1) }), 0, false},
		{enc(func(w *MsgWriter) { w.Uint(1<<64 - 1) }), 0, false},
		{enc(func(w *MsgWriter) { w.Int(-(1<<62 + 1)) }), 0, false},
		{enc(func(w *MsgWriter) { w.Int(1<<63 - 1) }), 0, false},
		{enc(func(w *MsgWriter) { w.String("1") }), 0, false},
	} {
		got, err := NewMsgReader(c.b, -1).Float("x")
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("% x: %v, %v; want %v (ok %v)", c.b, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Errorf("% x: %v is not a format error", c.b, err)
		}
	}
}

// TestCountLimitBeforeFit checks that a count over its limit is a limit
// error even when the elements could not fit in what follows (FORMAT.md
// §6, step 6), and that a count within the limit that cannot fit is a
// format error.
func TestCountLimitBeforeFit(t *testing.T) {
	w := NewMsgWriter()
	w.MapLen(1)
	w.String("tensors")
	w.ArrayLen(DefaultMaxTensors + 1)
	if _, err := ParseIndex(w.Bytes(), 0, Limits{}); !errors.Is(err, ErrLimit) {
		t.Errorf("2^20+1 tensors in a few bytes: %v, want a limit error", err)
	}
	w = NewMsgWriter()
	w.MapLen(1)
	w.String("tensors")
	w.ArrayLen(1000)
	if _, err := ParseIndex(w.Bytes(), 0, Limits{}); !errors.Is(err, ErrFormat) || errors.Is(err, ErrLimit) {
		t.Errorf("1000 tensors in a few bytes: %v, want a format error", err)
	}
	// A name whose header claims 5000 bytes, with 40 bytes after it.
	for _, c := range []struct {
		n    uint16
		want error
	}{{5000, ErrLimit}, {4000, ErrFormat}} {
		w = NewMsgWriter()
		w.MapLen(1)
		w.String("tensors")
		w.ArrayLen(1)
		w.MapLen(6)
		w.String("name")
		w.Raw([]byte{0xda, byte(c.n >> 8), byte(c.n)}) // str 16
		w.Raw(make([]byte, 40))
		_, err := ParseIndex(w.Bytes(), 0, Limits{})
		if !errors.Is(err, c.want) || (c.want == ErrFormat && errors.Is(err, ErrLimit)) {
			t.Errorf("a name claiming %d bytes in 40: %v, want %v", c.n, err, c.want)
		}
	}
}
