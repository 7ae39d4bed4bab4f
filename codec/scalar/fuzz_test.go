package scalar

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
)

var (
	fuzzIDs    = []string{ECSQ, RTN, Q4K, TCQ}
	fuzzDTypes = []format.DType{format.F32, format.F16, format.BF16}
)

// addGoldenSeeds adds one seed per rank-2 tensor of testdata/scalar.nwc:
// its params, aux sections and first group, with the shape cut to that
// group's rows.
func addGoldenSeeds(f *testing.F) {
	file, err := os.ReadFile(filepath.Join("testdata", "scalar.nwc"))
	if err != nil {
		f.Fatal(err)
	}
	rd, err := goldenIndex(file)
	if err != nil {
		f.Fatal(err)
	}
	sec := func(s format.Section) []byte { return file[s.Offset : s.Offset+s.Length] }
	for _, t := range rd.Tensors {
		if len(t.Shape) != 2 {
			continue
		}
		id := uint8(bytes.Index([]byte("erqt"), []byte(t.Codec[:1])))
		dt := uint8(0)
		for i, d := range fuzzDTypes {
			if d == t.DType {
				dt = uint8(i)
			}
		}
		aux := map[string][]byte{}
		for _, a := range t.Aux {
			aux[a.Name] = auxBytes(file, a)
		}
		rows, cols := t.Shape[0], t.Shape[1]
		if len(t.Groups) > 1 {
			rows = t.Groups[0].End / cols
		}
		f.Add(id, dt, uint16(rows), uint16(cols), t.Params, aux["scales"], aux["levels"], aux["table"], sec(t.Groups[0].Section))
	}
}

// FuzzDecode feeds arbitrary params, aux sections and a one-group payload
// to each codec's decoder: it must never panic, must report bad data as
// format errors (or limit errors, for params over FORMAT.md's fixed limits),
// must decode deterministically, and a decoder that checks
// payloads before decoding (codec.GroupChecker) must accept what decodes.
func FuzzDecode(f *testing.F) {
	addGoldenSeeds(f)
	f.Add(uint8(0), uint8(0), uint16(1), uint16(1), []byte{0x80}, []byte{}, []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, id, dt uint8, rows, cols uint16, params, scales, levels, table, payload []byte) {
		n := uint64(rows) * uint64(cols)
		if n > 1<<14 {
			return // large matrices only slow the fuzzer down
		}
		c, _ := codec.LookupDecoder(fuzzIDs[int(id)%len(fuzzIDs)])
		shape := []uint64{uint64(rows), uint64(cols)}
		e := &format.Tensor{
			Name: "f", DType: fuzzDTypes[int(dt)%len(fuzzDTypes)], Shape: shape,
			Codec: fuzzIDs[int(id)%len(fuzzIDs)], Params: params, Blob: -1, View: codec.DefaultView(shape),
		}
		if n > 0 {
			e.Groups = []format.Group{{End: n, Section: format.Section{Length: uint64(len(payload))}}}
		}
		env := memEnv{}
		for _, a := range []struct {
			name string
			b    []byte
		}{{"levels", levels}, {"scales", scales}, {"table", table}} {
			if len(a.b) > 0 {
				env[a.name] = a.b
				e.Aux = append(e.Aux, format.NamedSection{Name: a.name, Section: format.Section{Length: uint64(len(a.b))}})
			}
		}
		dec, err := c.NewDecoder(e, env)
		if err != nil {
			// A params key or string over its fixed limit is a limit
			// error however few bytes follow it (FORMAT.md §5.4, §6).
			if !errors.Is(err, format.ErrFormat) && !errors.Is(err, format.ErrLimit) {
				t.Fatalf("NewDecoder error %v is neither a format nor a limit error", err)
			}
			return
		}
		if n == 0 {
			return
		}
		size := uint64(e.DType.Size())
		dst := make([]byte, n*size)
		err = dec.DecodeGroup(0, payload, dst)
		if err != nil {
			if !errors.Is(err, format.ErrFormat) {
				t.Fatalf("DecodeGroup error %v is not a format error", err)
			}
			return
		}
		again := make([]byte, len(dst))
		if err := dec.DecodeGroup(0, payload, again); err != nil || !bytes.Equal(dst, again) {
			t.Fatalf("second decode differs (%v)", err)
		}
		// A reader asks first whether the payload can hold the group: a
		// payload that decodes must never be refused.
		if ch, ok := dec.(codec.GroupChecker); ok {
			if err := ch.CheckGroup(0, payload, n); err != nil {
				t.Fatalf("CheckGroup refuses a payload that decodes: %v", err)
			}
		}
	})
}

// TestCorrupt damages the golden tensors in ways each decoder must notice
// before decoding, or while decoding, with a format error.
func TestCorrupt(t *testing.T) {
	file, err := os.ReadFile(filepath.Join("testdata", "scalar.nwc"))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := goldenIndex(file)
	if err != nil {
		t.Fatal(err)
	}
	sec := func(s format.Section) []byte { return bytes.Clone(file[s.Offset : s.Offset+s.Length]) }
	mutations := []struct {
		name  string
		codec string // "" for all
		apply func(e *format.Tensor, env memEnv, groups [][]byte)
	}{
		{"no params", "", func(e *format.Tensor, _ memEnv, _ [][]byte) { e.Params = nil }},
		{"params not a map", "", func(e *format.Tensor, _ memEnv, _ [][]byte) { e.Params = []byte{0x90} }},
		{"trailing params", "", func(e *format.Tensor, _ memEnv, _ [][]byte) { e.Params = append(bytes.Clone(e.Params), 0) }},
		{"unknown key", "", func(e *format.Tensor, _ memEnv, _ [][]byte) {
			p := bytes.Clone(e.Params)
			p[0]++ // one more pair
			e.Params = append(p, 0xa1, 'x', 0x01)
		}},
		{"missing key", "", func(e *format.Tensor, _ memEnv, _ [][]byte) { e.Params = []byte{0x80} }},
		{"transposed not bool", "", func(e *format.Tensor, _ memEnv, _ [][]byte) {
			i := bytes.Index(e.Params, []byte("transposed"))
			e.Params = bytes.Clone(e.Params)
			e.Params[i+len("transposed")] = 0x01
		}},
		{"step as float32", ECSQ, func(e *format.Tensor, _ memEnv, _ [][]byte) {
			i := bytes.Index(e.Params, []byte("step")) + 4
			p := append(bytes.Clone(e.Params[:i]), 0xca, 0x3e, 0x80, 0, 0)
			e.Params = append(p, e.Params[i+9:]...)
		}},
		{"step zero", ECSQ, func(e *format.Tensor, _ memEnv, _ [][]byte) {
			i := bytes.Index(e.Params, []byte("step")) + 4
			e.Params = bytes.Clone(e.Params)
			copy(e.Params[i+1:i+9], make([]byte, 8))
		}},
		{"offset too large", ECSQ, func(e *format.Tensor, _ memEnv, _ [][]byte) {
			i := bytes.Index(e.Params, []byte("offset")) + 6
			e.Params = bytes.Clone(e.Params)
			e.Params[i] = 0xcc
			e.Params = append(e.Params[:i+1], append([]byte{200}, e.Params[i+1:]...)...)
		}},
		{"rtn bits 9", RTN, func(e *format.Tensor, _ memEnv, _ [][]byte) {
			i := bytes.Index(e.Params, []byte("bits")) + 4
			e.Params = bytes.Clone(e.Params)
			e.Params[i] = 9
		}},
		{"extra aux", "", func(e *format.Tensor, env memEnv, _ [][]byte) {
			e.Aux = append(e.Aux, format.NamedSection{Name: "zzz", Section: format.Section{Length: 1}})
			env["zzz"] = []byte{0}
		}},
		{"no scales", ECSQ, func(e *format.Tensor, env memEnv, _ [][]byte) { dropAux(e, env, "scales") }},
		{"no table", ECSQ, func(e *format.Tensor, env memEnv, _ [][]byte) { dropAux(e, env, "table") }},
		{"table trailing byte", ECSQ, func(_ *format.Tensor, env memEnv, _ [][]byte) { env["table"] = append(env["table"], 0) }},
		{"table truncated", ECSQ, func(_ *format.Tensor, env memEnv, _ [][]byte) { env["table"] = env["table"][:len(env["table"])-1] }},
		{"scales truncated", ECSQ, func(_ *format.Tensor, env memEnv, _ [][]byte) { env["scales"] = env["scales"][:len(env["scales"])-1] }},
		{"group payload truncated", "", func(_ *format.Tensor, _ memEnv, g [][]byte) { g[0] = g[0][:len(g[0])-1] }},
		{"group payload extended", "", func(_ *format.Tensor, _ memEnv, g [][]byte) { g[0] = append(g[0], 0) }},
		{"group not whole rows", "", func(e *format.Tensor, _ memEnv, _ [][]byte) {
			if len(e.Groups) > 1 {
				e.Groups[0].End--
			} else {
				e.View = [2]uint64{e.View[1], e.View[0]}
			}
		}},
	}
	for _, tn := range rd.Tensors {
		for _, m := range mutations {
			if m.codec != "" && m.codec != tn.Codec {
				continue
			}
			e := tn
			e.Groups = append([]format.Group(nil), tn.Groups...)
			e.Aux = append([]format.NamedSection(nil), tn.Aux...)
			env := memEnv{}
			for _, a := range tn.Aux {
				env[a.Name] = bytes.Clone(auxBytes(file, a))
			}
			groups := make([][]byte, len(tn.Groups))
			for i, g := range tn.Groups {
				groups[i] = sec(g.Section)
			}
			m.apply(&e, env, groups)
			err := decodeEntry(&e, env, groups)
			if !errors.Is(err, format.ErrFormat) {
				t.Errorf("%s, %s: %v, want a format error", tn.Name, m.name, err)
			}
		}
	}
}

func dropAux(e *format.Tensor, env memEnv, name string) {
	delete(env, name)
	var kept []format.NamedSection
	for _, a := range e.Aux {
		if a.Name != name {
			kept = append(kept, a)
		}
	}
	e.Aux = kept
}

// decodeEntry decodes every group of an entry whose group lengths may no
// longer match the payloads: the decoder sees the lengths the entry
// declares, as a reader would, and the payloads as given.
func decodeEntry(e *format.Tensor, env memEnv, groups [][]byte) error {
	c, err := codec.LookupDecoder(e.Codec)
	if err != nil {
		return err
	}
	dec, err := c.NewDecoder(e, env)
	if err != nil {
		return err
	}
	size := uint64(e.DType.Size())
	for i, g := range e.Groups {
		dst := make([]byte, (g.End-e.GroupStart(i))*size)
		if err := dec.DecodeGroup(i, groups[i], dst); err != nil {
			return err
		}
	}
	return nil
}

// goldenIndex parses the index of a .nwc file with the format package
// alone: package reader imports this one to register the codecs, so the
// in-package tests cannot use it.
func goldenIndex(file []byte) (*format.Index, error) {
	toff := int64(len(file)) - format.TrailerLen
	if toff < 0 {
		return nil, errors.New("golden file too short")
	}
	tr, err := format.ParseTrailer(file[toff:], toff, int64(len(file)))
	if err != nil {
		return nil, err
	}
	ix, err := format.DecompressIndex(file[tr.IndexOffset:tr.IndexOffset+tr.IndexLength], int64(tr.IndexOffset), format.DefaultMaxIndexSize)
	if err != nil {
		return nil, err
	}
	return format.ParseIndex(ix, -1, format.Limits{})
}

// auxBytes returns the data of an aux entry of file, inline or not.
func auxBytes(file []byte, a format.NamedSection) []byte {
	if a.Inline != nil {
		return a.Inline
	}
	return file[a.Offset : a.Offset+a.Length]
}

// memEnv serves a tensor's aux sections from memory.
type memEnv map[string][]byte

func (e memEnv) Aux(name string) ([]byte, error) {
	b, ok := e[name]
	if !ok {
		return nil, format.Errorf(-1, "no aux %q", name)
	}
	return b, nil
}

func (memEnv) Blob(func([]byte) (any, error)) (any, error) {
	return nil, format.Errorf(-1, "no blob")
}
