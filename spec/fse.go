package spec

import (
	"fmt"
	"math/bits"
)

// This file decodes an fse block (FORMAT.md §7.2, "fse"): a table of
// normalized symbol counts followed by a tANS bitstream read by two
// interleaved states. The same block codes the lossless method 2 and the
// compressed Huffman weights of a huff0 payload (RFC 8878 §4.2.1.2), with
// different limits.

// The accuracy log (log2 of the table size) of an fse block.
const (
	fseMinAccuracyLog = 5  // the smallest the 4-bit header field can say
	fseMaxAccuracyLog = 12 // lossless method 2
	fseMaxWeightLog   = 6  // Huffman weights, RFC 8878 §4.2.1.2
	fseMaxSymbol      = 255
	// fseMinBlockLen is the shortest fse block. Readers in the lineage of
	// FSE_readNCount load the header 4 bytes at a time and reject shorter
	// input outright, whatever it holds.
	fseMinBlockLen = 4
)

// forwardBits reads a little-endian bit string from the start of p: bit i
// is bit i%8 of p[i/8], and a value of n bits takes its least significant
// bit first. The normalized-count header is read this way.
type forwardBits struct {
	p   []byte
	pos int // bits read so far
}

// read returns the next n bits, or an error when p does not hold them.
func (r *forwardBits) read(n int) (int, error) {
	if r.pos+n > 8*len(r.p) {
		return 0, fmt.Errorf("%w: fse header runs past the end of the block", ErrFormat)
	}
	v := 0
	for i := range n {
		bit := int(r.p[(r.pos+i)/8]>>((r.pos+i)%8)) & 1
		v |= bit << i
	}
	r.pos += n
	return v, nil
}

// backwardBits reads a bitstream written forwards and read from its end,
// as FSE and Huffman streams are (RFC 8878 §4.1): the last byte's highest
// set bit is padding that marks where the stream starts, the bits below it
// are read first, and a value of n bits takes its most significant bit
// first. With bit i being bit i%8 of p[i/8], the unread bits are 0..left-1
// and reading takes them from the top.
type backwardBits struct {
	p    []byte
	left int // bits not yet read
}

// newBackwardBits prepares to read p, which must end in a non-zero byte.
func newBackwardBits(p []byte) (*backwardBits, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: empty bitstream", ErrFormat)
	}
	last := p[len(p)-1]
	if last == 0 {
		return nil, fmt.Errorf("%w: bitstream's last byte is 0 (no padding bit)", ErrFormat)
	}
	// The padding bit itself and the zeros above it are not data.
	return &backwardBits{p: p, left: 8*(len(p)-1) + bits.Len8(last) - 1}, nil
}

// bit returns bit i of the stream, 0 below the start.
func (r *backwardBits) bit(i int) int {
	if i < 0 {
		return 0
	}
	return int(r.p[i/8]>>(i%8)) & 1
}

// peek returns the next n bits without consuming them; bits past the
// beginning of the stream read as 0.
func (r *backwardBits) peek(n int) int {
	v := 0
	for i := range n {
		v = v<<1 | r.bit(r.left-1-i)
	}
	return v
}

// read consumes the next n bits, which must all be there.
func (r *backwardBits) read(n int) (int, error) {
	if n > r.left {
		return 0, fmt.Errorf("%w: bitstream overread (%d bits wanted, %d left)", ErrFormat, n, r.left)
	}
	v := r.peek(n)
	r.left -= n
	return v, nil
}

// fseCounts reads the normalized-count header at the start of p (RFC 8878
// §4.1.1) and returns the accuracy log, the count of every symbol up to the
// last one listed (-1 meaning "less than one", which takes a single table
// cell) and the header's length in whole bytes.
func fseCounts(p []byte, maxLog int) (log int, counts []int, n int, err error) {
	r := &forwardBits{p: p}
	v, err := r.read(4)
	if err != nil {
		return 0, nil, 0, err
	}
	log = v + fseMinAccuracyLog
	if log > maxLog {
		return 0, nil, 0, fmt.Errorf("%w: fse accuracy log %d > %d", ErrFormat, log, maxLog)
	}
	// remaining is one more than the table cells not yet given to a
	// symbol; the value of the next count lies in [0, remaining] and takes
	// nbBits-1 or nbBits bits, threshold = 2^(nbBits-1) being the power of
	// two with threshold <= remaining < 2*threshold.
	remaining := 1<<log + 1
	threshold := 1 << log
	nbBits := log + 1
	previous0 := false
	for remaining > 1 {
		if previous0 {
			// A count of 0 is followed by 2-bit flags saying how many more
			// symbols also have count 0; 3 means "3, and another flag".
			for {
				rep, err := r.read(2)
				if err != nil {
					return 0, nil, 0, err
				}
				for range rep {
					counts = append(counts, 0)
				}
				if len(counts) > fseMaxSymbol+1 {
					return 0, nil, 0, fmt.Errorf("%w: fse header lists a symbol past %d", ErrFormat, fseMaxSymbol)
				}
				if rep < 3 {
					break
				}
			}
		}
		if len(counts) > fseMaxSymbol {
			return 0, nil, 0, fmt.Errorf("%w: fse header lists a symbol past %d", ErrFormat, fseMaxSymbol)
		}
		max := 2*threshold - 1 - remaining
		v, err := r.read(nbBits - 1)
		if err != nil {
			return 0, nil, 0, err
		}
		if v >= max {
			hi, err := r.read(1)
			if err != nil {
				return 0, nil, 0, err
			}
			v += hi << (nbBits - 1)
			if v >= threshold {
				v -= max
			}
		}
		count := v - 1
		if count == -1 {
			remaining--
		} else {
			remaining -= count
		}
		counts = append(counts, count)
		previous0 = count == 0
		for remaining < threshold {
			nbBits--
			threshold >>= 1
		}
	}
	// Each count is at most remaining-1, so the counts now fill the table
	// exactly. A lone symbol would need no bits at all and cannot be coded
	// by two states that must read bits to stop.
	nonzero := 0
	for _, c := range counts {
		if c != 0 {
			nonzero++
		}
	}
	if nonzero < 2 {
		return 0, nil, 0, fmt.Errorf("%w: fse table with %d symbols", ErrFormat, nonzero)
	}
	return log, counts, (r.pos + 7) / 8, nil
}

// An fseEntry is one state of a decoding table: the symbol it emits and how
// the next state is formed, base + the next nbBits bits of the stream.
type fseEntry struct {
	symbol byte
	nbBits int
	base   int
}

// fseTable builds the decoding table of 2^log states from the counts.
func fseTable(log int, counts []int) []fseEntry {
	size := 1 << log
	table := make([]fseEntry, size)
	// Symbols of count -1 take the highest cells, one each, in symbol
	// order from the top down.
	high := size - 1
	for s, c := range counts {
		if c == -1 {
			table[high].symbol = byte(s)
			high--
		}
	}
	// The others are spread: their cells are visited with a fixed odd step
	// (so every cell of the table in turn), skipping the cells taken above.
	step := size>>1 + size>>3 + 3
	pos := 0
	for s, c := range counts {
		for range c {
			table[pos].symbol = byte(s)
			pos = (pos + step) & (size - 1)
			for pos > high {
				pos = (pos + step) & (size - 1)
			}
		}
	}
	// A symbol of count c (1 for -1) owns c cells; taken in increasing
	// order, they get the numbers c, c+1, ..., 2c-1, and the cell numbered
	// x reads enough bits to bring x into [size, 2*size).
	next := make([]int, len(counts))
	for s, c := range counts {
		next[s] = max(c, 1)
	}
	for u := range table {
		x := next[table[u].symbol]
		next[table[u].symbol]++
		nb := log - (bits.Len(uint(x)) - 1)
		table[u].nbBits = nb
		table[u].base = x<<nb - size
	}
	return table
}

// fseDecode decodes the fse block p, whose accuracy log may be at most
// maxLog, and returns its symbols. More than limit symbols is an error.
func fseDecode(p []byte, maxLog, limit int) ([]byte, error) {
	if len(p) < fseMinBlockLen {
		return nil, fmt.Errorf("%w: fse block of %d bytes", ErrFormat, len(p))
	}
	log, counts, hlen, err := fseCounts(p, maxLog)
	if err != nil {
		return nil, err
	}
	table := fseTable(log, counts)
	r, err := newBackwardBits(p[hlen:])
	if err != nil {
		return nil, err
	}
	// The two states are read in turn, state 1 first. A stream with no bits
	// left at all starts a state at 0 (a stream too short to hold both
	// states then decodes to 2 or 3 symbols); a stream that runs out in
	// the middle of a state is an error.
	var state [2]int
	for i := range state {
		if r.left > 0 {
			if state[i], err = r.read(log); err != nil {
				return nil, err
			}
		}
	}
	// States 1 and 2 take turns. Each emits its symbol and reads the bits
	// of its next state, except that when the stream is used up and the
	// state would need bits, decoding ends: it emits its symbol and then
	// the other state's.
	var out []byte
	emit := func(s byte) error {
		if len(out) == limit {
			return fmt.Errorf("%w: fse block decodes to more than %d symbols", ErrFormat, limit)
		}
		out = append(out, s)
		return nil
	}
	for i := 0; ; i ^= 1 {
		e := table[state[i]]
		if r.left == 0 && e.nbBits > 0 {
			if err := emit(e.symbol); err != nil {
				return nil, err
			}
			if err := emit(table[state[i^1]].symbol); err != nil {
				return nil, err
			}
			return out, nil
		}
		if err := emit(e.symbol); err != nil {
			return nil, err
		}
		low, err := r.read(e.nbBits)
		if err != nil {
			return nil, err
		}
		state[i] = e.base + low
	}
}
