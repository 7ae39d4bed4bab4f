package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// build assembles a file from a header string and a data section of
// dataLen bytes (filled with a recognizable pattern).
func build(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for i := range dataLen {
		b = append(b, byte(i*7+1))
	}
	return b
}

// withLen returns an 8-byte prefix claiming n header bytes followed by rest.
func withLen(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func parseBytes(b []byte, opts *Options) (*File, error) {
	return NewReader(bytes.NewReader(b), int64(len(b)), opts)
}

func TestReaderRejects(t *testing.T) {
	const f32x2 = `"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	tests := []struct {
		name string
		file []byte
		opts *Options
		want error
		msg  string // substring expected in the error text
	}{
		{"empty file", nil, nil, ErrFormat, "too short"},
		{"short prefix", []byte{1, 0, 0}, nil, ErrFormat, "too short"},
		{"header over default cap", withLen(DefaultMaxHeaderSize+1, "{}"), nil, ErrTooLarge, "header size"},
		{"header over custom cap", build("{"+f32x2+"}", 8), &Options{MaxHeaderSize: 16}, ErrTooLarge, "limit 16"},
		{"header length near 2^64", withLen(1<<64-1, "{}"), nil, ErrTooLarge, "header size"},
		{"header longer than file", withLen(100, "{}"), nil, ErrFormat, "exceeds"},
		{"zero-length header", build("", 0), nil, ErrFormat, "does not start"},
		{"leading space", build(" {}", 0), nil, ErrFormat, "does not start"},
		{"top-level array", build("[]", 0), nil, ErrFormat, "does not start"},
		{"invalid UTF-8", build("{\"\xff\":1}", 0), nil, ErrFormat, "UTF-8"},
		{"truncated JSON", build(`{"t":{"dtype":"F32"`, 0), nil, ErrFormat, "truncated"},
		{"bad JSON", build(`{"t" 1}`, 0), nil, ErrFormat, "invalid header JSON"},
		{"trailing garbage", build(`{} x`, 0), nil, ErrFormat, "after header"},
		{"second object", build(`{}{}`, 0), nil, ErrFormat, "after header"},
		{"duplicate tensor", build("{"+f32x2+","+f32x2+"}", 8), nil, ErrFormat, `duplicate key "t"`},
		{"duplicate tensor via escape", build(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\u0074":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 16), nil, ErrFormat, "duplicate"},
		{"duplicate metadata", build(`{"__metadata__":{},"__metadata__":{}}`, 0), nil, ErrFormat, "duplicate"},
		{"metadata value number", build(`{"__metadata__":{"a":1}}`, 0), nil, ErrFormat, "not a string"},
		{"metadata value object", build(`{"__metadata__":{"a":{}}}`, 0), nil, ErrFormat, "not a string"},
		{"metadata not object", build(`{"__metadata__":"x"}`, 0), nil, ErrFormat, "not an object"},
		{"metadata duplicate key", build(`{"__metadata__":{"a":"1","a":"2"}}`, 0), nil, ErrFormat, "duplicate"},
		{"unknown dtype", build(`{"t":{"dtype":"F5","shape":[2],"data_offsets":[0,1]}}`, 1), nil, ErrUnsupported, `"F5"`},
		{"sub-byte dtype F4", build(`{"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 1), nil, ErrUnsupported, `"F4" of tensor "t" (4-bit elements`},
		{"sub-byte dtype F6", build(`{"t":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[0,3]}}`, 3), nil, ErrUnsupported, "6-bit elements"},
		{"dtype not string", build(`{"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "dtype is not a string"},
		{"negative dim", build(`{"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "non-negative"},
		{"fractional dim", build(`{"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "non-negative"},
		{"exponent dim", build(`{"t":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "non-negative"},
		{"string dim", build(`{"t":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "non-negative"},
		{"dim out of range", build(`{"t":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "out of range"},
		{"shape not array", build(`{"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "expected"},
		{"rank over default", build(`{"t":{"dtype":"U8","shape":[`+strings.Repeat("1,", 64)+`1],"data_offsets":[0,1]}}`, 1), nil, ErrTooLarge, "rank"},
		{"rank over custom", build(`{"t":{"dtype":"U8","shape":[1,1,1],"data_offsets":[0,1]}}`, 1), &Options{MaxRank: 2}, ErrTooLarge, "rank"},
		{"one offset", build(`{"t":{"dtype":"U8","shape":[0],"data_offsets":[0]}}`, 0), nil, ErrFormat, "2 elements"},
		{"three offsets", build(`{"t":{"dtype":"U8","shape":[0],"data_offsets":[0,0,0]}}`, 0), nil, ErrFormat, "2 elements"},
		{"begin after end", build(`{"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4), nil, ErrFormat, "begin 4 > end 0"},
		{"numel overflow", build(`{"t":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0), nil, ErrFormat, "overflows"},
		{"bytes overflow", build(`{"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, 0), nil, ErrFormat, "overflows"},
		{"size mismatch", build(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,7]}}`, 7), nil, ErrFormat, "need 8"},
		{"gap at start", build(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), nil, ErrFormat, "gap"},
		{"gap between", build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}`, 5), nil, ErrFormat, "gap"},
		{"overlap", build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, 3), nil, ErrFormat, "overlaps"},
		{"data section too long", build("{"+f32x2+"}", 9), nil, ErrFormat, "data section has 9"},
		{"data section too short", build("{"+f32x2+"}", 7), nil, ErrFormat, "data section has 7"},
		{"missing dtype", build(`{"t":{"shape":[2],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "missing dtype"},
		{"missing shape", build(`{"t":{"dtype":"F32","data_offsets":[0,8]}}`, 8), nil, ErrFormat, "missing shape"},
		{"missing offsets", build(`{"t":{"dtype":"F32","shape":[2]}}`, 8), nil, ErrFormat, "missing data_offsets"},
		{"unknown field", build(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, 8), nil, ErrFormat, `unknown key "x"`},
		{"duplicate field", build(`{"t":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), nil, ErrFormat, "duplicate key"},
		{"entry not object", build(`{"t":[1]}`, 0), nil, ErrFormat, "not an object"},
		{"entry null", build(`{"t":null}`, 0), nil, ErrFormat, "not an object"},
		{"lone high surrogate", build(`{"\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), nil, ErrFormat, "surrogate"},
		{"lone low surrogate", build(`{"\udc00x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), nil, ErrFormat, "surrogate"},
		{"offset out of range", build(`{"t":{"dtype":"U8","shape":[0],"data_offsets":[0,99999999999999999999]}}`, 0), nil, ErrFormat, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBytes(tt.file, tt.opts)
			if err == nil {
				t.Fatalf("parsed successfully: %v", f.Tensors())
			}
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %q does not match %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			var fe *FormatError
			if errors.As(err, &fe) && (fe.Off < 0 || fe.Off > int64(len(tt.file))) {
				t.Errorf("FormatError offset %d outside the %d-byte file", fe.Off, len(tt.file))
			}
		})
	}
}

func TestReaderAccepts(t *testing.T) {
	tests := []struct {
		name    string
		file    []byte
		tensors []string // names in expected data order
		meta    map[string]string
		hasMeta bool
	}{
		{"no tensors", build("{}", 0), nil, nil, false},
		{"padded with spaces", build("{}      ", 0), nil, nil, false},
		{"padded with JSON whitespace", build("{}\n\t\r ", 0), nil, nil, false},
		{"empty metadata", build(`{"__metadata__":{}}`, 0), nil, map[string]string{}, true},
		{"null metadata", build(`{"__metadata__":null}`, 0), nil, nil, false},
		{"metadata escapes", build(`{"__metadata__":{"k\n":"v\u00e9\ud83d\ude00"}}`, 0), nil, map[string]string{"k\n": "vé😀"}, true},
		{"0-d tensor", build(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, 8), []string{"s"}, nil, false},
		{"empty tensor", build(`{"e":{"dtype":"F32","shape":[3,0],"data_offsets":[0,0]}}`, 0), []string{"e"}, nil, false},
		{"empty tensors share offsets", build(`{"b":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"c":{"dtype":"I8","shape":[0],"data_offsets":[2,2]},"d":{"dtype":"BOOL","shape":[1],"data_offsets":[2,3]}}`, 3),
			[]string{"a", "b", "c", "d"}, nil, false},
		{"header order differs from data order", build(`{"y":{"dtype":"U16","shape":[1],"data_offsets":[2,4]},"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, 4), []string{"x", "y"}, nil, false},
		{"keys in any order", build(`{"t":{"data_offsets":[0,2],"shape":[1],"dtype":"BF16"}}`, 2), []string{"t"}, nil, false},
		{"every dtype", build(`{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},`+
			`"c":{"dtype":"F16","shape":[1],"data_offsets":[12,14]},"d":{"dtype":"BF16","shape":[1],"data_offsets":[14,16]},`+
			`"e":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[16,17]},"f":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[17,18]},`+
			`"g":{"dtype":"I64","shape":[1],"data_offsets":[18,26]},"h":{"dtype":"I32","shape":[1],"data_offsets":[26,30]},`+
			`"i":{"dtype":"I16","shape":[1],"data_offsets":[30,32]},"j":{"dtype":"I8","shape":[1],"data_offsets":[32,33]},`+
			`"k":{"dtype":"U64","shape":[1],"data_offsets":[33,41]},"l":{"dtype":"U32","shape":[1],"data_offsets":[41,45]},`+
			`"m":{"dtype":"U16","shape":[1],"data_offsets":[45,47]},"n":{"dtype":"U8","shape":[1],"data_offsets":[47,48]},`+
			`"o":{"dtype":"BOOL","shape":[1],"data_offsets":[48,49]}}`, 49),
			strings.Split("abcdefghijklmno", ""), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBytes(tt.file, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ti := range f.Tensors() {
				got = append(got, ti.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.tensors, ",") {
				t.Errorf("tensors = %q, want %q", got, tt.tensors)
			}
			if f.HasMetadata() != tt.hasMeta {
				t.Errorf("HasMetadata = %v, want %v", f.HasMetadata(), tt.hasMeta)
			}
			m := f.Metadata()
			if (m == nil) != (tt.meta == nil) || len(m) != len(tt.meta) {
				t.Fatalf("Metadata = %#v, want %#v", m, tt.meta)
			}
			for k, v := range tt.meta {
				if m[k] != v {
					t.Errorf("Metadata[%q] = %q, want %q", k, m[k], v)
				}
			}
			if want := tt.file[8:f.DataOffset()]; !bytes.Equal(f.RawHeader(), want) {
				t.Errorf("RawHeader = %q, want %q", f.RawHeader(), want)
			}
		})
	}
}

func TestDTypeSize(t *testing.T) {
	tests := []struct {
		d    DType
		size int
	}{
		{F64, 8}, {F32, 4}, {F16, 2}, {BF16, 2}, {F8E4M3, 1}, {F8E5M2, 1},
		{I64, 8}, {I32, 4}, {I16, 2}, {I8, 1}, {U64, 8}, {U32, 4}, {U16, 2}, {U8, 1},
		{Bool, 1}, {"f32", 0}, {"", 0}, {"F4", 0},
	}
	for _, tt := range tests {
		if got := tt.d.Size(); got != tt.size {
			t.Errorf("%q.Size() = %d, want %d", tt.d, got, tt.size)
		}
		if got := tt.d.Valid(); got != (tt.size != 0) {
			t.Errorf("%q.Valid() = %v", tt.d, got)
		}
	}
}

func TestNumElements(t *testing.T) {
	tests := []struct {
		shape []int64
		want  int64
	}{
		{nil, 1}, {[]int64{}, 1}, {[]int64{0}, 0}, {[]int64{3, 4}, 12}, {[]int64{-1}, -1},
		{[]int64{1 << 32, 1 << 31}, -1}, {[]int64{0, 1 << 62, 1 << 62}, 0},
	}
	for _, tt := range tests {
		if got := (TensorInfo{Shape: tt.shape}).NumElements(); got != tt.want {
			t.Errorf("NumElements(%v) = %d, want %d", tt.shape, got, tt.want)
		}
	}
}

func TestLoneSurrogate(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`"abc"`, -1},
		{`"\ud83d\ude00"`, -1},
		{`"\\ud800"`, -1}, // an escaped backslash, not an escape
		{`"\\\ud800"`, 3},
		{`"\ud800"`, 1},
		{`"\ud800\u0041"`, 1},
		{`"\udfff"`, 1},
		{`"\u00e9\ud83d"`, 7},
		{`"\uZZZZ"`, -1},
		{`\`, -1},
	}
	for _, tt := range tests {
		if got := loneSurrogate([]byte(tt.in)); got != tt.want {
			t.Errorf("loneSurrogate(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestLongStrings checks the bound on one JSON string of a header: names
// and metadata values up to maxStringLen bytes as written are read, longer
// ones are refused with ErrTooLarge before the JSON decoder copies them.
func TestLongStrings(t *testing.T) {
	name := func(n int) string { return strings.Repeat("w", n) }
	entry := func(name string) string {
		return `{"` + name + `":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`
	}
	tests := []struct {
		name   string
		header string
		tooBig bool
	}{
		{"name at the limit", entry(name(maxStringLen)), false},
		{"name over the limit", entry(name(maxStringLen + 1)), true},
		{"escapes count as written", entry(name(maxStringLen-2) + `\"`), false},
		{"escaped quote does not end it", entry(name(maxStringLen-1) + `\"`), true},
		{"metadata value over the limit", `{"__metadata__":{"k":"` + name(maxStringLen+1) + `"}}`, true},
		{"unterminated", `{"` + name(maxStringLen+1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBytes(build(tt.header, 1), nil)
			if got := errors.Is(err, ErrTooLarge); got != tt.tooBig {
				t.Fatalf("ErrTooLarge %v, want %v (error %.200v)", got, tt.tooBig, err)
			}
			if !tt.tooBig && err != nil {
				t.Fatalf("refused: %.200v", err)
			}
		})
	}
}
