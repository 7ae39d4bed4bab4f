package spec

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// This file decodes a huff0 4X payload (FORMAT.md §7.2, "huff0 4X"): the
// Huffman coding of Zstandard literals, RFC 8878 §4.2.1 (the tree
// description) followed by §4.2.2 (four bitstreams behind a jump table).

const (
	huffMaxCodeLen    = 11  // RFC 8878: Max_Number_of_Bits <= 11
	huffMaxWeights    = 255 // FSE-compressed weights, at most one per byte value but the last
	huffJumpTableLen  = 6   // three u16 stream sizes
	huffDirectWeights = 128 // header byte >= this: weights stored as nibbles
)

// A huffCode is the decoding table of a Huffman code: with the next log
// bits of a stream as the index (bits past the stream's start read as 0),
// it gives the symbol and how many of those bits its code really takes.
type huffCode struct {
	log    int
	symbol []byte
	nbBits []int
}

// huffTree reads a Huffman_Tree_Description from the start of p and
// returns the code and the rest of p.
func huffTree(p []byte) (*huffCode, []byte, error) {
	if len(p) < 2 {
		return nil, nil, fmt.Errorf("%w: huff0 payload of %d bytes", ErrFormat, len(p))
	}
	h := int(p[0])
	p = p[1:]
	var weights []int
	if h >= huffDirectWeights {
		// h-127 weights, two per byte, the first in the high nibble.
		n := h - 127
		size := (n + 1) / 2
		if size > len(p) {
			return nil, nil, fmt.Errorf("%w: huff0 weights truncated", ErrFormat)
		}
		for i := range n {
			b := p[i/2]
			if i%2 == 0 {
				weights = append(weights, int(b>>4))
			} else {
				weights = append(weights, int(b&15))
			}
		}
		p = p[size:]
	} else {
		// An fse block of h bytes whose symbols are the weights.
		if h > len(p) {
			return nil, nil, fmt.Errorf("%w: huff0 weights truncated", ErrFormat)
		}
		w, err := fseDecode(p[:h], fseMaxWeightLog, huffMaxWeights)
		if err != nil {
			return nil, nil, fmt.Errorf("huff0 weights: %w", err)
		}
		for _, v := range w {
			weights = append(weights, int(v))
		}
		p = p[h:]
	}
	// Weight w > 0 means a code of log+1-w bits; the codes fill the code
	// space exactly, which fixes the weight of the last symbol, not stored.
	total := 0
	for _, w := range weights {
		if w > huffMaxCodeLen {
			return nil, nil, fmt.Errorf("%w: huff0 weight %d", ErrFormat, w)
		}
		if w > 0 {
			total += 1 << (w - 1)
		}
	}
	if total == 0 {
		return nil, nil, fmt.Errorf("%w: huff0 weights all zero", ErrFormat)
	}
	log := bits.Len(uint(total)) // the smallest log with 2^log > total
	if log > huffMaxCodeLen {
		return nil, nil, fmt.Errorf("%w: huff0 code longer than %d bits", ErrFormat, huffMaxCodeLen)
	}
	rest := 1<<log - total
	if rest&(rest-1) != 0 {
		return nil, nil, fmt.Errorf("%w: huff0 weights leave %d, not a power of two", ErrFormat, rest)
	}
	weights = append(weights, bits.Len(uint(rest)))
	// A complete prefix code has an even number, at least 2, of codes of
	// the longest length.
	ones := 0
	for _, w := range weights {
		if w == 1 {
			ones++
		}
	}
	if ones < 2 || ones%2 != 0 {
		return nil, nil, fmt.Errorf("%w: huff0 has %d symbols of weight 1", ErrFormat, ones)
	}
	// Codes are given in order of weight, lowest (longest code) first, and
	// within a weight in order of symbol; counting up from 0, each takes
	// 2^(w-1) consecutive entries of the 2^log table.
	c := &huffCode{log: log, symbol: make([]byte, 1<<log), nbBits: make([]int, 1<<log)}
	next := 0
	for w := 1; w <= log; w++ {
		for s, sw := range weights {
			if sw != w {
				continue
			}
			for range 1 << (w - 1) {
				c.symbol[next] = byte(s)
				c.nbBits[next] = log + 1 - w
				next++
			}
		}
	}
	return c, p, nil
}

// huffStream decodes exactly n symbols from one backward bitstream, which
// they must use up exactly.
func (c *huffCode) huffStream(p []byte, n int, out []byte) error {
	r, err := newBackwardBits(p)
	if err != nil {
		return err
	}
	for i := range n {
		k := r.peek(c.log)
		if _, err := r.read(c.nbBits[k]); err != nil {
			return err
		}
		out[i] = c.symbol[k]
	}
	if r.left != 0 {
		return fmt.Errorf("%w: huff0 stream has %d bits left after %d symbols", ErrFormat, r.left, n)
	}
	return nil
}

// huff0Decode4X decodes a huff0 4X payload into exactly m bytes.
func huff0Decode4X(p []byte, m int) ([]byte, error) {
	code, p, err := huffTree(p)
	if err != nil {
		return nil, err
	}
	// Streams 1-3 each hold (m+3)/4 symbols and stream 4 the rest; their
	// byte sizes are in the jump table but for stream 4, which takes all
	// that is left and, like the others, must not be empty.
	per := (m + 3) / 4
	if 3*per > m {
		return nil, fmt.Errorf("%w: huff0 4X cannot code %d bytes", ErrFormat, m)
	}
	if len(p) < huffJumpTableLen {
		return nil, fmt.Errorf("%w: huff0 jump table truncated", ErrFormat)
	}
	var streams [4][]byte
	start := huffJumpTableLen
	for i := range 3 {
		size := int(binary.LittleEndian.Uint16(p[2*i:]))
		if start+size >= len(p) {
			return nil, fmt.Errorf("%w: huff0 stream %d of %d bytes does not fit", ErrFormat, i+1, size)
		}
		streams[i] = p[start : start+size]
		start += size
	}
	streams[3] = p[start:]
	out := make([]byte, m)
	for i, s := range streams {
		n := per
		if i == 3 {
			n = m - 3*per
		}
		if err := code.huffStream(s, n, out[i*per:i*per+n]); err != nil {
			return nil, fmt.Errorf("huff0 stream %d: %w", i+1, err)
		}
	}
	return out, nil
}
