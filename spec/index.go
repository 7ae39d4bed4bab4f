package spec

import (
	"fmt"
	"math/bits"
	"sort"
)

// The limits of FORMAT.md §5.4.
const (
	MaxTensors     = 1 << 20
	MaxRank        = 32
	MaxNameLen     = 4096
	MaxIndexSize   = 256 << 20
	MaxTensorBytes = 64 << 30
	// maxIDLen bounds dtype, tensor codec and blob codec strings.
	maxIDLen = 64
	// maxGroupElements is the most elements one group may hold (§5.2).
	maxGroupElements = 1 << 28
)

// A section is a run of file bytes referenced by the index (§1).
type section struct {
	off, length uint64
	crc         uint32
	what        string // for messages
}

type source struct {
	name   string
	header section
}

type blob struct {
	codec string
	sum   [32]byte
	sec   *section // nil: a built-in blob
}

type group struct {
	end uint64
	section
}

type aux struct {
	name   string
	inline []byte // non-nil for inline data
	sec    section
}

type tensorEntry struct {
	name, dtype, codec string
	shape              []uint64
	params             []byte // the raw msgpack value; nil when absent
	blob               int    // −1 when absent
	view               [2]uint64
	groups             []group
	aux                []aux // sorted by name
	n                  uint64
}

type index struct {
	metadata map[string]string
	sources  []source
	blobs    []blob
	tensors  []tensorEntry
}

// dtypeSize returns the element size of a safetensors dtype (§5.2), or 0.
func dtypeSize(dt string) int {
	switch dt {
	case "F64", "I64", "U64", "C64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I8", "U8", "BOOL":
		return 1
	}
	return 0
}

// parseIndex parses the msgpack index (§5, §5.1, §5.2), checking types
// and the limits that apply while reading.
func parseIndex(b []byte) (*index, error) {
	m := &msgReader{b: b}
	x := &index{}
	haveTensors := false
	err := m.mapKeys("index", func(k string) error {
		switch k {
		case "metadata":
			x.metadata = map[string]string{}
			return m.mapKeys("metadata", func(k string) error {
				v, err := m.str("metadata value", 0)
				x.metadata[k] = v
				return err
			})
		case "sources":
			n, err := m.arrayLen("sources", 4)
			if err != nil {
				return err
			}
			for i := range n {
				var s source
				haveHeader := false
				err := m.mapKeys("source", func(k string) error {
					var err error
					switch k {
					case "name":
						s.name, err = m.str("source name", MaxNameLen)
					case "header":
						haveHeader = true
						s.header, err = parseSection(m, fmt.Sprintf("source %d header", i))
					default:
						err = m.skip("source field", 0)
					}
					return err
				})
				if err != nil {
					return err
				}
				if !haveHeader || s.name == "" {
					return formatErr("source %d lacks its name or header", i)
				}
				x.sources = append(x.sources, s)
			}
			return nil
		case "blobs":
			n, err := m.arrayLen("blobs", 4)
			if err != nil {
				return err
			}
			for i := range n {
				var bl blob
				haveSum := false
				err := m.mapKeys("blob", func(k string) error {
					switch k {
					case "codec":
						c, err := m.str("blob codec", maxIDLen)
						bl.codec = c
						return err
					case "sha256":
						sum, err := m.bin("blob sha256")
						if err != nil {
							return err
						}
						if len(sum) != 32 {
							return formatErr("blob %d: sha256 of %d bytes", i, len(sum))
						}
						copy(bl.sum[:], sum)
						haveSum = true
						return nil
					case "section":
						s, err := parseSection(m, fmt.Sprintf("blob %d", i))
						bl.sec = &s
						return err
					}
					return m.skip("blob field", 0)
				})
				if err != nil {
					return err
				}
				if bl.codec == "" || !haveSum {
					return formatErr("blob %d lacks its codec or sha256", i)
				}
				x.blobs = append(x.blobs, bl)
			}
			return nil
		case "tensors":
			haveTensors = true
			n, err := m.arrayLenMax("tensor count", 20, MaxTensors)
			if err != nil {
				return err
			}
			for range n {
				t, err := parseTensor(m)
				if err != nil {
					return err
				}
				x.tensors = append(x.tensors, t)
			}
			return nil
		}
		return m.skip("index field "+k, 0) // a newer minor version's field
	})
	if err != nil {
		return nil, err
	}
	if !haveTensors {
		return nil, formatErr("index has no tensors field")
	}
	if m.remaining() != 0 {
		return nil, formatErr("%d bytes after the index map", m.remaining())
	}
	return x, nil
}

// parseSection reads [offset, length, crc32c].
func parseSection(m *msgReader, what string) (section, error) {
	s := section{what: what}
	n, err := m.arrayLen(what, 1)
	if err != nil {
		return s, err
	}
	if n != 3 {
		return s, formatErr("%s: section of %d fields", what, n)
	}
	if s.off, err = m.uint(what + " offset"); err != nil {
		return s, err
	}
	if s.length, err = m.uint(what + " length"); err != nil {
		return s, err
	}
	crc, err := m.uint(what + " crc32c")
	if err != nil {
		return s, err
	}
	if crc >= 1<<32 {
		return s, formatErr("%s: crc32c %d ≥ 2^32", what, crc)
	}
	s.crc = uint32(crc)
	return s, nil
}

func parseTensor(m *msgReader) (tensorEntry, error) {
	t := tensorEntry{blob: -1}
	have := map[string]bool{}
	err := m.mapKeys("tensor", func(k string) error {
		have[k] = true
		var err error
		switch k {
		case "name":
			t.name, err = m.str("tensor name", MaxNameLen)
		case "dtype":
			t.dtype, err = m.str("tensor dtype", maxIDLen)
		case "codec":
			t.codec, err = m.str("tensor codec", maxIDLen)
		case "shape":
			n, err := m.arrayLenMax("tensor rank", 1, MaxRank)
			if err != nil {
				return err
			}
			t.shape = make([]uint64, n)
			for i := range t.shape {
				if t.shape[i], err = m.uint("tensor dimension"); err != nil {
					return err
				}
			}
		case "params":
			t.params, err = m.raw("tensor params")
		case "blob":
			var v uint64
			if v, err = m.uint("tensor blob"); err == nil {
				if v > 1<<31 {
					return formatErr("tensor blob %d out of range", v)
				}
				t.blob = int(v)
			}
		case "view":
			n, err := m.arrayLen("tensor view", 1)
			if err != nil {
				return err
			}
			if n != 2 {
				return formatErr("tensor view of %d dimensions", n)
			}
			if t.view[0], err = m.uint("view rows"); err != nil {
				return err
			}
			t.view[1], err = m.uint("view cols")
		case "groups":
			n, err := m.arrayLen("tensor groups", 5)
			if err != nil {
				return err
			}
			for i := range n {
				k, err := m.arrayLen("group", 1)
				if err != nil {
					return err
				}
				if k != 4 {
					return formatErr("group of %d fields", k)
				}
				g := group{section: section{what: fmt.Sprintf("group %d", i)}}
				if g.end, err = m.uint("group end"); err != nil {
					return err
				}
				if g.off, err = m.uint("group offset"); err != nil {
					return err
				}
				if g.length, err = m.uint("group length"); err != nil {
					return err
				}
				crc, err := m.uint("group crc32c")
				if err != nil {
					return err
				}
				if crc >= 1<<32 {
					return formatErr("group crc32c %d ≥ 2^32", crc)
				}
				g.crc = uint32(crc)
				t.groups = append(t.groups, g)
			}
		case "aux":
			err = m.mapKeys("tensor aux", func(name string) error {
				if _, err := m.peek("aux " + name); err != nil {
					return err
				}
				if m.isBin() {
					b, err := m.bin("aux " + name)
					if b == nil {
						b = []byte{}
					}
					t.aux = append(t.aux, aux{name: name, inline: b})
					return err
				}
				s, err := parseSection(m, "aux "+name)
				t.aux = append(t.aux, aux{name: name, sec: s})
				return err
			})
			sort.Slice(t.aux, func(i, j int) bool { return t.aux[i].name < t.aux[j].name })
		default:
			err = m.skip("tensor field "+k, 0)
		}
		return err
	})
	if err != nil {
		return t, err
	}
	for _, k := range []string{"name", "dtype", "shape", "codec", "view", "groups"} {
		if !have[k] {
			return t, formatErr("tensor %q lacks the field %q", t.name, k)
		}
	}
	for i := range t.groups {
		t.groups[i].what = fmt.Sprintf("tensor %q group %d", t.name, i)
	}
	for i := range t.aux {
		t.aux[i].sec.what = fmt.Sprintf("tensor %q aux %q", t.name, t.aux[i].name)
	}
	return t, nil
}

// validate checks the rules of §5.2–§5.4 that span the index, then the
// packing rule of §1 given the preamble's alignment and the index offset.
func (x *index) validate(alignLog2 uint8, indexOff uint64) error {
	names := map[string]bool{}
	for i := range x.tensors {
		t := &x.tensors[i]
		if names[t.name] {
			return formatErr("duplicate tensor name %q", t.name)
		}
		names[t.name] = true
		if err := t.validate(len(x.blobs)); err != nil {
			return err
		}
	}
	return x.checkPacking(alignLog2, indexOff)
}

func (t *tensorEntry) validate(nblobs int) error {
	bad := func(f string, args ...any) error {
		return formatErr("tensor %q: %s", t.name, fmt.Sprintf(f, args...))
	}
	if t.name == "" {
		return bad("empty name")
	}
	size := dtypeSize(t.dtype)
	if size == 0 {
		return fmt.Errorf("%w: tensor %q: dtype %q", ErrUnsupported, t.name, t.dtype)
	}
	n := uint64(1)
	for _, d := range t.shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return bad("shape %v overflows 64 bits", t.shape)
		}
		n = lo
	}
	// A byte count over 64 bits is certainly over the limit too.
	if hi, b := bits.Mul64(n, uint64(size)); hi != 0 || b > MaxTensorBytes {
		return fmt.Errorf("%w: tensor %q of shape %v %s exceeds %d bytes", ErrLimit, t.name, t.shape, t.dtype, uint64(MaxTensorBytes))
	}
	t.n = n
	if t.codec == "" {
		return bad("empty codec id")
	}
	if t.blob >= nblobs {
		return bad("blob %d out of range (%d blobs)", t.blob, nblobs)
	}
	if hi, v := bits.Mul64(t.view[0], t.view[1]); hi != 0 || v != n {
		return bad("view %v does not hold %d elements", t.view, n)
	}
	if n == 0 && len(t.groups) != 0 {
		return bad("empty tensor with groups")
	}
	var prev uint64
	for i, g := range t.groups {
		if g.end <= prev || g.end-prev > maxGroupElements {
			return bad("group %d covers [%d, %d)", i, prev, g.end)
		}
		prev = g.end
	}
	if prev != n {
		return bad("groups cover %d of %d elements", prev, n)
	}
	for i, a := range t.aux {
		if a.name == "" || (i > 0 && t.aux[i-1].name == a.name) {
			return bad("aux names must be non-empty and unique")
		}
		if a.inline != nil && len(a.inline) == 0 {
			return bad("inline aux %q is empty", a.name)
		}
	}
	return nil
}

// sections lists every section of the file (§1) in index order.
func (x *index) sections() []section {
	var out []section
	for _, s := range x.sources {
		out = append(out, s.header)
	}
	for _, b := range x.blobs {
		if b.sec != nil {
			out = append(out, *b.sec)
		}
	}
	for _, t := range x.tensors {
		for _, g := range t.groups {
			out = append(out, g.section)
		}
		for _, a := range t.aux {
			if a.inline == nil {
				out = append(out, a.sec)
			}
		}
	}
	return out
}

// checkPacking checks the packing rule (§1): sorted by offset, the first
// section starts at up(32), each next one at up(end of the previous), the
// index at up(end of the last); every section is at least one byte.
func (x *index) checkPacking(alignLog2 uint8, indexOff uint64) error {
	a := uint64(1) << alignLog2
	up := func(v uint64) uint64 { return (v + a - 1) / a * a }
	secs := x.sections()
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].off < secs[j].off })
	next := up(32)
	for _, s := range secs {
		if s.length == 0 {
			return formatErr("%s is empty", s.what)
		}
		if s.off != next {
			return formatErr("%s starts at %d, the packing rule puts it at %d", s.what, s.off, next)
		}
		end := s.off + s.length
		if end < s.off || end > indexOff {
			return formatErr("%s (length %d) runs past the index at %d", s.what, s.length, indexOff)
		}
		next = up(end)
	}
	if indexOff != next {
		return formatErr("index starts at %d, the packing rule puts it at %d", indexOff, next)
	}
	return nil
}
