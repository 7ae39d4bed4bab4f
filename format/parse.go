package format

import (
	"math/bits"
	"sort"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Limits bound what a reader accepts from a file, so that hostile input
// cannot make it allocate or work without bound. The zero value of each
// field selects its default: the limits of FORMAT.md §5.4, within which
// every reader must accept a file and no writer may go. Raising one
// accepts files other readers may refuse.
type Limits struct {
	MaxTensors     int    // tensor entries; default 1<<20
	MaxRank        int    // dimensions per tensor; default 32
	MaxNameLen     int    // bytes per tensor name; default 4096
	MaxIndexSize   int64  // bytes of the msgpack index; default 256 MiB
	MaxTensorBytes uint64 // decoded bytes of one tensor; default 64 GiB
}

// Default limits (FORMAT.md §5.4).
const (
	DefaultMaxTensors     = 1 << 20
	DefaultMaxRank        = 32
	DefaultMaxNameLen     = 4096 // tensor names; source names always
	DefaultMaxIndexSize   = 256 << 20
	DefaultMaxTensorBytes = 64 << 30
)

// Fixed limits of FORMAT.md §5.4 that Limits does not configure.
const (
	MaxIDLen  = 64      // bytes of a dtype or codec id
	MaxKeyLen = 1 << 16 // bytes of a key of a map read by name
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxTensors <= 0 {
		l.MaxTensors = DefaultMaxTensors
	}
	if l.MaxRank <= 0 {
		l.MaxRank = DefaultMaxRank
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = DefaultMaxNameLen
	}
	if l.MaxIndexSize <= 0 {
		l.MaxIndexSize = DefaultMaxIndexSize
	}
	if l.MaxTensorBytes == 0 {
		l.MaxTensorBytes = DefaultMaxTensorBytes
	}
	return l
}

// Minimum encoded sizes, used to bound counts by the bytes that remain.
const (
	minTensorEntry  = 20 // a map with the six required keys cannot be shorter
	minSectionEntry = 4  // [offset, length, crc]
	minGroupEntry   = 5  // [end, offset, length, crc]
)

// ParseIndex decodes an index. base is the file offset of b[0], used in
// error messages. It checks types, required fields and limits; the layout
// rules that need the whole file are checked by Validate.
func ParseIndex(b []byte, base int64, lim Limits) (*Index, error) {
	lim = lim.WithDefaults()
	m := NewMsgReader(b, base)
	x := &Index{}
	haveTensors := false
	err := m.MapKeys("index", func(k string) error {
		switch k {
		case keyMetadata:
			return parseMetadata(m, x)
		case keySources:
			return parseSources(m, x)
		case keyBlobs:
			return parseBlobs(m, x)
		case keyTensors:
			haveTensors = true
			return parseTensors(m, x, lim)
		}
		return m.Skip("index field " + k) // a newer minor version's field
	})
	if err != nil {
		return nil, err
	}
	if !haveTensors {
		return nil, Errorf(base, "index has no %q field", keyTensors)
	}
	if m.Remaining() != 0 {
		return nil, m.Errorf("%d bytes after the index map", m.Remaining())
	}
	return x, nil
}

func parseMetadata(m *MsgReader, x *Index) error {
	x.Metadata = map[string]string{}
	return m.MapKeys("metadata", func(k string) error {
		v, err := m.String("metadata value", 0)
		if err != nil {
			return err
		}
		x.Metadata[k] = v
		return nil
	})
}

func parseSection(m *MsgReader, what string) (Section, error) {
	n, err := m.ArrayLen(what, 1)
	if err != nil {
		return Section{}, err
	}
	if n != 3 {
		return Section{}, m.Errorf("%s: section has %d fields, want 3", what, n)
	}
	var s Section
	if s.Offset, err = m.Uint(what + " offset"); err != nil {
		return s, err
	}
	if s.Length, err = m.Uint(what + " length"); err != nil {
		return s, err
	}
	crc, err := m.Uint(what + " crc32c")
	if err != nil {
		return s, err
	}
	if crc > 1<<32-1 {
		return s, m.Errorf("%s: crc32c %d does not fit 32 bits", what, crc)
	}
	s.CRC = uint32(crc)
	return s, nil
}

func parseSources(m *MsgReader, x *Index) error {
	n, err := m.ArrayLen("sources", minSectionEntry)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		var s Source
		var haveHeader bool
		err := m.MapKeys("source", func(k string) error {
			var err error
			switch k {
			case keyName:
				s.Name, err = m.String("source name", DefaultMaxNameLen)
			case keyHeader:
				haveHeader = true
				s.Header, err = parseSection(m, "source header")
			default:
				err = m.Skip("source field " + k)
			}
			return err
		})
		if err != nil {
			return err
		}
		if !haveHeader || s.Name == "" {
			return m.Errorf("source %d lacks its name or header", i)
		}
		x.Sources = append(x.Sources, s)
	}
	return nil
}

func parseBlobs(m *MsgReader, x *Index) error {
	n, err := m.ArrayLen("blobs", minSectionEntry)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		var b Blob
		var haveSum bool
		err := m.MapKeys("blob", func(k string) error {
			switch k {
			case keyCodec:
				c, err := m.String("blob codec", MaxIDLen)
				b.Codec = c
				return err
			case keySHA256:
				sum, err := m.Bytes("blob sha256")
				if err != nil {
					return err
				}
				if len(sum) != 32 {
					return m.Errorf("blob sha256 has %d bytes, want 32", len(sum))
				}
				copy(b.SHA256[:], sum)
				haveSum = true
				return nil
			case keySection:
				s, err := parseSection(m, "blob section")
				b.Section = &s
				return err
			}
			return m.Skip("blob field " + k)
		})
		if err != nil {
			return err
		}
		if b.Codec == "" || !haveSum {
			return m.Errorf("blob %d lacks its codec or sha256", i)
		}
		x.Blobs = append(x.Blobs, b)
	}
	return nil
}

func parseTensors(m *MsgReader, x *Index, lim Limits) error {
	n, err := m.ArrayLenMax("tensor count", minTensorEntry, lim.MaxTensors)
	if err != nil {
		return err
	}
	x.Tensors = make([]Tensor, 0, n) // n is bounded by the index size above
	for i := 0; i < n; i++ {
		t, err := parseTensor(m, lim)
		if err != nil {
			return err
		}
		x.Tensors = append(x.Tensors, t)
	}
	return nil
}

func parseTensor(m *MsgReader, lim Limits) (Tensor, error) {
	t := Tensor{Blob: -1}
	start := m.Off()
	have := map[string]bool{}
	err := m.MapKeys("tensor", func(k string) error {
		have[k] = true
		var err error
		switch k {
		case keyName:
			t.Name, err = m.String("tensor name", lim.MaxNameLen)
		case keyDType:
			var s string
			s, err = m.String("tensor dtype", MaxIDLen)
			t.DType = DType(s)
		case keyShape:
			var n int
			if n, err = m.ArrayLenMax("tensor rank", 1, lim.MaxRank); err != nil {
				return err
			}
			t.Shape = make([]uint64, n)
			for i := range t.Shape {
				if t.Shape[i], err = m.Uint("tensor dimension"); err != nil {
					return err
				}
			}
		case keyCodec:
			t.Codec, err = m.String("tensor codec", MaxIDLen)
		case keyParams:
			t.Params, err = m.Raw("tensor params")
		case keyBlob:
			var v uint64
			if v, err = m.Uint("tensor blob"); err == nil {
				if v > 1<<31 {
					return m.Errorf("tensor blob %d out of range", v)
				}
				t.Blob = int(v)
			}
		case keyView:
			var n int
			if n, err = m.ArrayLen("tensor view", 1); err != nil {
				return err
			}
			if n != 2 {
				return m.Errorf("tensor view has %d dimensions, want 2", n)
			}
			if t.View[0], err = m.Uint("view rows"); err != nil {
				return err
			}
			t.View[1], err = m.Uint("view cols")
		case keyGroups:
			err = parseGroups(m, &t)
		case keyAux:
			err = m.MapKeys("tensor aux", func(name string) error {
				c, err := m.d.PeekCode()
				if err != nil {
					return m.wrap(err, "aux "+name)
				}
				if c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32 {
					b, err := m.Bytes("aux " + name)
					if b == nil {
						b = []byte{}
					}
					t.Aux = append(t.Aux, NamedSection{Name: name, Inline: b})
					return err
				}
				s, err := parseSection(m, "aux section "+name)
				t.Aux = append(t.Aux, NamedSection{Name: name, Section: s})
				return err
			})
			sort.Slice(t.Aux, func(i, j int) bool { return t.Aux[i].Name < t.Aux[j].Name })
		default:
			err = m.Skip("tensor field " + k)
		}
		return err
	})
	if err != nil {
		return t, err
	}
	for _, k := range []string{keyName, keyDType, keyShape, keyCodec, keyView, keyGroups} {
		if !have[k] {
			return t, TensorErrorf(t.Name, start, "entry lacks the required field %q", k)
		}
	}
	return t, nil
}

func parseGroups(m *MsgReader, t *Tensor) error {
	n, err := m.ArrayLen("tensor groups", minGroupEntry)
	if err != nil {
		return err
	}
	t.Groups = make([]Group, 0, n) // bounded by the index size
	for i := 0; i < n; i++ {
		k, err := m.ArrayLen("group", 1)
		if err != nil {
			return err
		}
		if k != 4 {
			return m.Errorf("group has %d fields, want 4", k)
		}
		var g Group
		if g.End, err = m.Uint("group end"); err != nil {
			return err
		}
		if g.Offset, err = m.Uint("group offset"); err != nil {
			return err
		}
		if g.Length, err = m.Uint("group length"); err != nil {
			return err
		}
		crc, err := m.Uint("group crc32c")
		if err != nil {
			return err
		}
		if crc > 1<<32-1 {
			return m.Errorf("group crc32c %d does not fit 32 bits", crc)
		}
		g.CRC = uint32(crc)
		t.Groups = append(t.Groups, g)
	}
	return nil
}

// mulCheck multiplies with overflow detection.
func mulCheck(a, b uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	return lo, hi == 0
}
