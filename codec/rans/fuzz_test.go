package rans

import (
	"encoding/binary"
	"slices"
	"testing"
)

// fuzzTables returns the table sets FuzzDecode selects from: one table, two
// tables of different precision, and a narrow table at the top of int32.
func fuzzTables() [][]*Table {
	mk := func(min int32, freqs []uint32, esc uint32, prec uint) *Table {
		t, err := NewTable(min, freqs, esc, prec)
		if err != nil {
			panic(err)
		}
		return t
	}
	a := mk(-3, []uint32{100, 300, 1000, 2000, 500, 0, 100}, 4096-4000, 12)
	b := mk(0, []uint32{1, 1, 1, 1020}, 1, 10)
	c := mk(1<<31-2, []uint32{60000, 5535}, 1, 16)
	return [][]*Table{{a}, {a, b}, {c}, {b, c, a, b, a}}
}

// fuzzDecodeInput packs a FuzzDecode input: table set, symbol count, stream.
func fuzzDecodeInput(set int, n int, stream []byte) []byte {
	b := []byte{byte(set)}
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	return append(b, stream...)
}

func FuzzDecode(f *testing.F) {
	// Seeds from testdata/fuzz/FuzzDecode plus a few generated here.
	sets := fuzzTables()
	for set, tabs := range sets {
		for _, n := range []int{0, 1, 5, 40} {
			syms := make([]int32, n)
			for i := range syms {
				syms[i] = int32(i*i*7919) % 9
			}
			enc, err := Encode(nil, syms, tabs)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(fuzzDecodeInput(set, n, enc))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		tabs := sets[int(data[0])%len(sets)]
		dst := make([]int32, binary.LittleEndian.Uint16(data[1:]))
		src := data[3:]
		if err := Decode(src, tabs, dst); err != nil {
			return
		}
		// Accepted input must be the canonical encoding of its decoding.
		re, err := Encode(nil, dst, tabs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(re, src) {
			t.Fatalf("accepted % x, but it decodes to %v which encodes to % x", src, dst, re)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(12), uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0x80, 1, 1, 1, 1}, uint8(10), uint8(1))
	f.Add([]byte{}, uint8(14), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, prec, ntab uint8) {
		// Bytes become small values, with every fourth a full int32, so
		// streams mix table hits and escapes.
		var syms []int32
		for i := 0; i < len(data); i++ {
			if i%4 == 3 && i+4 <= len(data) {
				syms = append(syms, int32(binary.LittleEndian.Uint32(data[i:])))
				i += 3
				continue
			}
			syms = append(syms, int32(int8(data[i]))/8)
		}
		p := MinPrecision + uint(prec)%(MaxPrecision-MinPrecision+1)
		k := 1 + int(ntab)%5
		tabs := make([]*Table, k)
		for j := range tabs {
			var sample []int32
			for i := j; i < len(syms); i += k {
				sample = append(sample, syms[i])
			}
			if len(sample) == 0 {
				sample = []int32{int32(j)}
			}
			var err error
			if tabs[j], err = Build(sample, p); err != nil {
				t.Fatal(err)
			}
			raw, _ := tabs[j].MarshalBinary()
			u, n, err := ParseTable(raw)
			if err != nil || n != len(raw) || !u.Equal(tabs[j]) {
				t.Fatalf("table does not survive serialization: %v", err)
			}
		}
		enc, err := Encode(nil, syms, tabs)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int32, len(syms))
		if err := Decode(enc, tabs, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, syms) {
			t.Fatalf("decoded %v, want %v", got, syms)
		}
	})
}

func FuzzParseTable(f *testing.F) {
	f.Add([]byte{10, 6, 3, 0, 1, 5, 0xe8, 0x07, 0, 0, 10})
	f.Add([]byte{16, 1, 0, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, n, err := ParseTable(data)
		if err != nil {
			return
		}
		// Serialization is canonical: re-marshalling gives the parsed bytes.
		raw, _ := tab.MarshalBinary()
		if !slices.Equal(raw, data[:n]) {
			t.Fatalf("parsed % x, marshals to % x", data[:n], raw)
		}
	})
}
