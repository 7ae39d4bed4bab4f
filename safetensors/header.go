package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// metadataKey is the reserved top-level header key holding string metadata.
const metadataKey = "__metadata__"

// header is a parsed and validated safetensors header.
type header struct {
	raw     []byte
	meta    map[string]string
	hasMeta bool
	// tensors is in data order, with Offset relative to the data section.
	tensors []TensorInfo
	index   map[string]int
	// dataLen is the data section length the header implies.
	dataLen int64
}

// entry pairs a tensor with the file offset of its header entry, so layout
// errors found after sorting can still point at the offending JSON.
type entry struct {
	TensorInfo
	off int64
}

// headerParser walks the header JSON token by token. encoding/json's
// Unmarshal keeps the last of duplicate keys without complaint; tokens let
// the parser see every key and reject duplicates.
type headerParser struct {
	dec  *json.Decoder
	raw  []byte
	base int64  // file offset of raw[0]
	what string // "header" or "index", for messages
	opts *Options
}

// parseHeader validates raw as a header. base is the file offset of raw[0],
// used only to make error offsets absolute.
func parseHeader(raw []byte, base int64, opts *Options) (*header, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, formatErr(base, "header does not start with '{'")
	}
	if i := invalidUTF8(raw); i >= 0 {
		return nil, formatErr(base+int64(i), "header is not valid UTF-8")
	}
	if i := loneSurrogate(raw); i >= 0 {
		// encoding/json would silently turn it into U+FFFD, changing the
		// name; serde_json rejects it, and so do we.
		return nil, formatErr(base+int64(i), "header contains an unpaired UTF-16 surrogate escape")
	}
	if err := checkStrings(raw, base); err != nil {
		return nil, err
	}
	p := &headerParser{dec: json.NewDecoder(bytes.NewReader(raw)), raw: raw, base: base, what: "header", opts: opts}
	p.dec.UseNumber()

	h := &header{raw: raw, index: make(map[string]int)}
	if err := p.expectDelim('{', "header"); err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var entries []entry
	for p.dec.More() {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, formatErr(p.off(), "duplicate key %s in header", quoted(key))
		}
		seen[key] = true
		if key == metadataKey {
			if h.meta, h.hasMeta, err = p.metadata(); err != nil {
				return nil, err
			}
			continue
		}
		e, err := p.tensor(key)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if err := p.expectDelim('}', "header"); err != nil {
		return nil, err
	}
	end := p.dec.InputOffset()
	for i, c := range raw[end:] {
		if !isSpace(c) {
			return nil, formatErr(base+end+int64(i), "unexpected data after header JSON")
		}
	}

	// The reference implementation checks layout in offset order; ties (only
	// possible between empty tensors) keep header order so the result is
	// deterministic.
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].Offset != entries[j].Offset {
			return entries[i].Offset < entries[j].Offset
		}
		return entries[i].Length < entries[j].Length
	})
	h.tensors = make([]TensorInfo, len(entries))
	var pos int64
	for i, e := range entries {
		switch {
		case e.Offset > pos:
			return nil, formatErr(e.off, "gap in data section before tensor %s", quoted(e.Name))
		case e.Offset < pos:
			return nil, formatErr(e.off, "tensor %s overlaps another tensor", quoted(e.Name))
		}
		pos = e.Offset + e.Length
		h.tensors[i] = e.TensorInfo
		h.index[e.Name] = i
	}
	h.dataLen = pos
	return h, nil
}

func (p *headerParser) off() int64 { return p.base + p.dec.InputOffset() }

func (p *headerParser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, formatErr(p.base+se.Offset, "invalid %s JSON: %v", p.what, se)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, formatErr(p.base+int64(len(p.raw)), "truncated %s JSON", p.what)
	}
	return nil, formatErr(p.off(), "invalid %s JSON: %v", p.what, err)
}

func (p *headerParser) expectDelim(d json.Delim, what string) error {
	off := p.off()
	tok, err := p.token()
	if err != nil {
		return err
	}
	if tok != d {
		return formatErr(off, "%s: expected %q", what, d)
	}
	return nil
}

func (p *headerParser) key() (string, error) {
	tok, err := p.token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		// The decoder only yields strings in key position; this guards
		// against that contract changing.
		return "", formatErr(p.off(), "object key is not a string")
	}
	return s, nil
}

// metadata parses the __metadata__ value, which the reference implementation
// types as an optional string-to-string map.
func (p *headerParser) metadata() (map[string]string, bool, error) {
	off := p.off()
	tok, err := p.token()
	if err != nil {
		return nil, false, err
	}
	if tok == nil {
		return nil, false, nil
	}
	if tok != json.Delim('{') {
		return nil, false, formatErr(off, "__metadata__ is not an object")
	}
	m := make(map[string]string)
	for p.dec.More() {
		k, err := p.key()
		if err != nil {
			return nil, false, err
		}
		if _, dup := m[k]; dup {
			return nil, false, formatErr(p.off(), "duplicate key %s in __metadata__", quoted(k))
		}
		voff := p.off()
		tok, err := p.token()
		if err != nil {
			return nil, false, err
		}
		v, ok := tok.(string)
		if !ok {
			return nil, false, formatErr(voff, "__metadata__ value for %s is not a string", quoted(k))
		}
		m[k] = v
	}
	if err := p.expectDelim('}', "__metadata__"); err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// tensor parses one tensor entry and checks it in isolation; layout checks
// that involve other tensors happen in parseHeader.
func (p *headerParser) tensor(name string) (entry, error) {
	e := entry{off: p.off(), TensorInfo: TensorInfo{Name: name}}
	qn := quoted(name)
	tok, err := p.token()
	if err != nil {
		return e, err
	}
	if tok != json.Delim('{') {
		return e, formatErr(e.off, "tensor %s: entry is not an object", qn)
	}
	var haveDType, haveShape, haveOffsets bool
	var begin, end int64
	for p.dec.More() {
		k, err := p.key()
		if err != nil {
			return e, err
		}
		koff := p.off()
		switch k {
		case "dtype":
			if haveDType {
				return e, formatErr(koff, "tensor %s: duplicate key %s", qn, quoted(k))
			}
			haveDType = true
			tok, err := p.token()
			if err != nil {
				return e, err
			}
			s, ok := tok.(string)
			if !ok {
				return e, formatErr(koff, "tensor %s: dtype is not a string", qn)
			}
			e.DType = DType(s)
			if !e.DType.Valid() {
				msg := "dtype " + quoted(s) + " of tensor " + qn
				if bits := e.DType.Bits(); bits > 0 {
					msg += " (" + strconv.Itoa(bits) + "-bit elements; only types of whole bytes are supported)"
				}
				return e, &UnsupportedError{Off: koff, Msg: msg}
			}
		case "shape":
			if haveShape {
				return e, formatErr(koff, "tensor %s: duplicate key %s", qn, quoted(k))
			}
			haveShape = true
			if e.Shape, err = p.shape(qn); err != nil {
				return e, err
			}
		case "data_offsets":
			if haveOffsets {
				return e, formatErr(koff, "tensor %s: duplicate key %s", qn, quoted(k))
			}
			haveOffsets = true
			if begin, end, err = p.offsets(qn); err != nil {
				return e, err
			}
		default:
			return e, formatErr(koff, "tensor %s: unknown key %s", qn, quoted(k))
		}
	}
	if err := p.expectDelim('}', "tensor "+qn); err != nil {
		return e, err
	}
	switch {
	case !haveDType:
		return e, formatErr(e.off, "tensor %s: missing dtype", qn)
	case !haveShape:
		return e, formatErr(e.off, "tensor %s: missing shape", qn)
	case !haveOffsets:
		return e, formatErr(e.off, "tensor %s: missing data_offsets", qn)
	case begin > end:
		return e, formatErr(e.off, "tensor %s: data_offsets begin %d > end %d", qn, begin, end)
	}
	size, ok := byteSize(e.DType, e.Shape)
	if !ok {
		return e, formatErr(e.off, "tensor %s: size of shape %v overflows", qn, e.Shape)
	}
	if end-begin != size {
		return e, formatErr(e.off, "tensor %s: data_offsets span %d bytes, dtype and shape need %d", qn, end-begin, size)
	}
	e.Offset, e.Length = begin, size
	return e, nil
}

func (p *headerParser) shape(qn string) ([]int64, error) {
	if err := p.expectDelim('[', "tensor "+qn+" shape"); err != nil {
		return nil, err
	}
	shape := []int64{}
	max := p.opts.maxRank()
	for p.dec.More() {
		if len(shape) >= max {
			return nil, &LimitError{Off: p.off(), What: "rank of tensor " + qn, Value: int64(len(shape) + 1), Limit: int64(max)}
		}
		d, err := p.uint(qn)
		if err != nil {
			return nil, err
		}
		shape = append(shape, d)
	}
	if err := p.expectDelim(']', "tensor "+qn+" shape"); err != nil {
		return nil, err
	}
	return shape, nil
}

func (p *headerParser) offsets(qn string) (begin, end int64, err error) {
	what := "tensor " + qn + " data_offsets"
	if err := p.expectDelim('[', what); err != nil {
		return 0, 0, err
	}
	var v [2]int64
	for i := range v {
		if !p.dec.More() {
			return 0, 0, formatErr(p.off(), "%s: need 2 elements", what)
		}
		if v[i], err = p.uint(qn); err != nil {
			return 0, 0, err
		}
	}
	if p.dec.More() {
		return 0, 0, formatErr(p.off(), "%s: need 2 elements", what)
	}
	if err := p.expectDelim(']', what); err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

// uint reads a JSON number that must be a plain non-negative integer, as a
// Rust usize is: no sign, fraction or exponent.
func (p *headerParser) uint(qn string) (int64, error) {
	off := p.off()
	tok, err := p.token()
	if err != nil {
		return 0, err
	}
	num, ok := tok.(json.Number)
	if !ok {
		return 0, formatErr(off, "tensor %s: expected a non-negative integer", qn)
	}
	s := string(num)
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, formatErr(off, "tensor %s: %s is not a non-negative integer", qn, s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, formatErr(off, "tensor %s: integer %s out of range", qn, s)
	}
	return n, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// invalidUTF8 returns the index of the first byte of b that is not part of a
// valid UTF-8 sequence, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// loneSurrogate returns the index of the first \u escape in b that encodes
// an unpaired UTF-16 surrogate, or -1. Backslashes outside strings are JSON
// syntax errors reported elsewhere, so escapes can be found without tracking
// string boundaries as long as each escape is consumed whole.
func loneSurrogate(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] != 'u' {
			i++ // skip the escaped character, which may itself be a backslash
			continue
		}
		r, ok := hex4(b, i+2)
		switch {
		case !ok || !utf16.IsSurrogate(r):
		case r >= 0xdc00:
			return i
		default:
			lo, ok := hex4(b, i+8)
			if !ok || i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' || lo < 0xdc00 || lo > 0xdfff {
				return i
			}
			i += 6
		}
		i += 5
	}
	return -1
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// encodeHeader returns the canonical header for tensors, whose Offset fields
// must already hold offsets relative to the data section. The layout matches
// the reference serializer: __metadata__ first, then the tensors in the given
// order with keys dtype, shape, data_offsets, no insignificant whitespace,
// and space padding to a multiple of 8 bytes so the data section is aligned.
// Metadata keys are sorted because the reference iterates a hash map, which
// is not deterministic.
func encodeHeader(meta map[string]string, tensors []TensorInfo) []byte {
	b := []byte{'{'}
	if meta != nil {
		b = appendJSONString(b, metadataKey)
		b = append(b, ':', '{')
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, meta[k])
		}
		b = append(b, '}')
	}
	for i, t := range tensors {
		if i > 0 || meta != nil {
			b = append(b, ',')
		}
		b = appendJSONString(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendJSONString(b, string(t.DType))
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, t.Offset, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, t.Offset+t.Length, 10)
		b = append(b, ']', '}')
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	return b
}

// appendJSONString quotes s the way serde_json does: only '"', '\\' and
// control characters are escaped, so non-ASCII text and characters such as
// '<' stay literal (encoding/json would escape them and break byte equality
// with files written by the reference implementation).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// maxQuoted bounds how much of a name, key or value an error message
// quotes: a header may hold strings of many megabytes, and every message
// that quoted one whole would copy it again.
const maxQuoted = 256

// quoted returns s quoted for a message, cut to maxQuoted bytes.
func quoted(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuoted]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// maxStringLen bounds the bytes of one JSON string of a header or index,
// escapes included. encoding/json holds a string token several times over
// while decoding it (its read buffer, grown by doubling, and the decoded
// copy), so a header made of one huge name would cost several times its
// size; real names and metadata values are far shorter, and a .nwc file
// cannot store a name over 4096 bytes anyway.
const maxStringLen = 1 << 20

// checkStrings rejects raw, which starts at file offset base, if a JSON
// string in it is longer than maxStringLen. It only pairs quotes, skipping
// escaped characters; the JSON decoder checks everything else.
func checkStrings(raw []byte, base int64) error {
	for i := 0; i < len(raw); {
		q := bytes.IndexByte(raw[i:], '"')
		if q < 0 {
			return nil
		}
		start := i + q
		j := start + 1
		for j < len(raw) {
			k := bytes.IndexAny(raw[j:], "\"\\")
			if k < 0 {
				j = len(raw)
				break
			}
			j += k
			if raw[j] == '"' {
				break
			}
			j += 2 // an escape and the character it escapes
		}
		if n := int64(min(j, len(raw)) - start - 1); n > maxStringLen {
			return &LimitError{Off: base + int64(start), What: "JSON string length", Value: n, Limit: maxStringLen}
		}
		i = j + 1
	}
	return nil
}
