package spec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/fse"

	"github.com/nwcodec/nwc/codec/lossless"
)

// bitWriter writes little-endian bit strings, least significant bit first,
// as the normalized-count header is laid out.
type bitWriter struct {
	b []byte
	n int
}

func (w *bitWriter) write(v, n int) {
	for i := range n {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[w.n/8] |= byte(v>>i&1) << (w.n % 8)
		w.n++
	}
}

// TestFSEDecodeMatchesKlauspost compares fseDecode with fse.Decompress on
// blocks of every accuracy log the writer can choose.
func TestFSEDecodeMatchesKlauspost(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	blocks := 0
	for _, p := range []float64{0.02, 0.3, 0.6, 0.9, 0.97} {
		for _, n := range []int{2, 5, 64, 1000, 40000} {
			in := make([]byte, n)
			for i := range in {
				for in[i] < 255 && r.Float64() < p {
					in[i]++
				}
			}
			for log := uint8(5); log <= 12; log++ {
				b, err := fse.Compress(in, &fse.Scratch{TableLog: log})
				if err != nil {
					continue
				}
				blocks++
				got, err := fseDecode(b, fseMaxAccuracyLog, n)
				if err != nil || !bytes.Equal(got, in) {
					t.Fatalf("p=%v n=%d log=%d: %v", p, n, log, err)
				}
				// The block decodes to exactly n symbols: one fewer allowed
				// is an error.
				if _, err := fseDecode(b, fseMaxAccuracyLog, n-1); !errors.Is(err, ErrFormat) {
					t.Fatalf("limit n-1: %v", err)
				}
			}
		}
	}
	if blocks < 50 {
		t.Fatalf("only %d blocks coded", blocks)
	}
}

// fseTwoSymbolHeader writes the header of accuracy log 5 giving symbols 0
// and 1 16 cells each.
func fseTwoSymbolHeader() *bitWriter {
	w := &bitWriter{}
	w.write(0, 4) // log 5
	// remaining 33, threshold 32, max 30: value 17 (count 16) < max takes
	// 5 bits.
	w.write(17, 5)
	// remaining 17, threshold 16, max 14: value 17 >= threshold is written
	// as 17+max in 5 bits.
	w.write(17+14, 5)
	return w
}

// TestFSEHeader checks header rules on hand-made headers.
func TestFSEHeader(t *testing.T) {
	w := fseTwoSymbolHeader()
	w.write(0, 7)
	log, counts, n, err := fseCounts(w.b, fseMaxAccuracyLog)
	if err != nil || log != 5 || len(counts) != 2 || counts[0] != 16 || counts[1] != 16 || n != 2 {
		t.Fatalf("got log %d counts %v len %d err %v", log, counts, n, err)
	}

	// A single symbol owning the whole table is invalid.
	w = &bitWriter{}
	w.write(0, 4)
	w.write(33+30, 6) // value 33 >= max 30: 6 bits, 63 >= 32 -> 63-30 = 33
	if _, _, _, err := fseCounts(append(w.b, 0, 0), fseMaxAccuracyLog); !errors.Is(err, ErrFormat) {
		t.Fatalf("one symbol: %v", err)
	}

	// Accuracy logs above the limit.
	for log := 13; log <= 20; log++ {
		if _, _, _, err := fseCounts([]byte{byte(log - 5), 0, 0, 0}, fseMaxAccuracyLog); !errors.Is(err, ErrFormat) {
			t.Fatalf("log %d: %v", log, err)
		}
	}
	if _, _, _, err := fseCounts([]byte{2, 0, 0, 0}, fseMaxWeightLog); !errors.Is(err, ErrFormat) {
		t.Fatalf("weights log 7: %v", err)
	}
	// Zero-run flags that push past symbol 255.
	w = &bitWriter{}
	w.write(0, 4)
	w.write(1, 5) // symbol 0 count 0
	for range 90 {
		w.write(3, 2)
	}
	w.write(0, 2)
	if _, _, _, err := fseCounts(append(w.b, 0, 0, 0), fseMaxAccuracyLog); !errors.Is(err, ErrFormat) {
		t.Fatalf("symbol past 255: %v", err)
	}
}

// log13Block returns an fse block with accuracy log 13, which
// fse.Decompress accepts and the format does not: symbol 0 has count -1,
// symbol 1 the other 8191 cells. Its bitstream holds just the two initial
// states, 8000 each, which walk down through cells that read no bits.
func log13Block() []byte {
	w := &bitWriter{}
	w.write(13-5, 4)
	w.write(0, 13)                            // remaining 8193, threshold 8192, max 8190: value 0 (count -1)
	w.write(8192+8191, 14)                    // remaining 8192, max 8191: value 8192 (count 8191)
	stream := uint32(1<<26 | 8000<<13 | 8000) // padding bit above 26 bits
	return append(w.b, byte(stream), byte(stream>>8), byte(stream>>16), byte(stream>>24))
}

// TestFSEAccuracyLogAbove12 is the regression test for codec/lossless
// accepting fse blocks with accuracy logs 13 to 15.
func TestFSEAccuracyLogAbove12(t *testing.T) {
	b := log13Block()
	out, err := fse.Decompress(b, nil)
	if err != nil {
		t.Fatalf("fse.Decompress rejects the block, so the test shows nothing: %v", err)
	}
	if len(out) <= len(b) {
		t.Fatalf("block decodes to %d bytes, not more than its %d", len(out), len(b))
	}
	if _, err := fseDecode(b, 15, len(out)); err != nil {
		t.Fatalf("with limit 15 the reference decoder rejects it too: %v", err)
	}
	if _, err := fseDecode(b, fseMaxAccuracyLog, len(out)); !errors.Is(err, ErrFormat) {
		t.Fatalf("reference decoder: %v", err)
	}
	frame := []byte{1, 0, 1}
	frame = appendUvarint(frame, uint64(len(out)))
	frame = append(frame, losslessFSE)
	frame = appendUvarint(frame, uint64(len(b)))
	frame = append(frame, b...)
	if _, err := Lossless("U8", uint64(len(out)), frame); !errors.Is(err, ErrFormat) {
		t.Fatalf("spec: %v", err)
	}
	if _, err := lossless.Decompress(nil, frame, "U8", len(out)); !errors.Is(err, lossless.ErrCorrupt) {
		t.Fatalf("codec/lossless: %v", err)
	}
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestFSEShortStreams covers bitstreams too short for both states, which
// decode to 2 or 3 symbols rather than failing, as fse.Decompress does.
func TestFSEShortStreams(t *testing.T) {
	head := fseTwoSymbolHeader().b
	for _, tail := range [][]byte{{0x01}, {0x02}, {0x3f}, {0xff, 0x01}, {0x12, 0x34, 0x01}, {0x00}} {
		b := append(bytes.Clone(head), tail...)
		if len(b) < fseMinBlockLen {
			b = append(bytes.Clone(head), append([]byte{0x12, 0x34}, tail...)...)
		}
		want, kerr := fse.Decompress(b, nil)
		got, err := fseDecode(b, fseMaxAccuracyLog, 1000)
		if (err == nil) != (kerr == nil) || !bytes.Equal(got, want) {
			t.Errorf("tail %x: spec %v %v, fse %v %v", tail, got, err, want, kerr)
		}
	}
}
