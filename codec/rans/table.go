package rans

import (
	"math"
	"slices"
	"strconv"
	"sync"
)

// A Table is an immutable integer probability model: a frequency for each
// value in [Min, Min+Len) plus an escape frequency, summing to 1<<Precision.
//
// Higher precision models skewed distributions more finely but costs a
// larger decoding table (2<<P bytes) and, because the coder's 32-bit state
// leaves fewer bits of headroom, about 0.005 bits per symbol at P = 16
// against 0.0003 at P = 14.
//
// A Table is safe for concurrent use. The decoding lookup table (1<<Precision
// entries) is built on first use by [Decode], so tables used only for
// encoding or cost estimation never pay for it.
type Table struct {
	min       int32
	precision uint
	freq      []uint32 // len n+1; freq[n] is the escape frequency
	enc       []encSym // len n+1; zero-frequency values alias the escape
	cost      []uint32 // len n+1; ideal code length in 1/costOne bits

	decOnce sync.Once
	dec     *decTables
}

// encSym holds what the encoder needs for one symbol.
type encSym struct {
	xmax uint32 // the state is renormalized while x >= xmax
	freq uint32
	cum  uint32
	esc  bool // the value is coded as the escape symbol
}

// NewTable returns a table for the values [min, min+len(freqs)), where
// freqs[i] is the frequency of min+i, and escape is the frequency of the
// escape symbol. A value with frequency zero is coded through the escape.
//
// The frequencies must sum to exactly 1<<precision, escape must be at least 1,
// at least one in-range frequency must be nonzero, len(freqs) must be in
// [1, MaxSymbols] and the range must not overflow int32. Use [Normalize] to
// derive valid frequencies from counts.
func NewTable(min int32, freqs []uint32, escape uint32, precision uint) (*Table, error) {
	if err := checkTable(min, freqs, escape, precision); err != nil {
		return nil, err
	}
	return newTable(min, freqs, escape, precision), nil
}

func checkTable(min int32, freqs []uint32, escape uint32, precision uint) error {
	if precision < MinPrecision || precision > MaxPrecision {
		return tableErr(-1, "precision "+strconv.FormatUint(uint64(precision), 10)+" out of range")
	}
	if len(freqs) == 0 || len(freqs) > MaxSymbols {
		return tableErr(-1, "symbol count "+strconv.Itoa(len(freqs))+" out of range")
	}
	if int64(min)+int64(len(freqs))-1 > math.MaxInt32 {
		return tableErr(-1, "value range overflows int32")
	}
	if escape == 0 {
		return tableErr(-1, "escape frequency is zero")
	}
	total := uint64(escape)
	for _, f := range freqs {
		total += uint64(f) // cannot overflow: at most 4097 terms below 1<<32
	}
	if total != 1<<precision {
		return tableErr(-1, "frequencies sum to "+strconv.FormatUint(total, 10)+", want "+strconv.FormatUint(1<<precision, 10))
	}
	if escape == 1<<precision {
		return tableErr(-1, "no in-range value has a nonzero frequency")
	}
	return nil
}

// newTable builds a table from frequencies already validated by checkTable.
func newTable(min int32, freqs []uint32, escape uint32, precision uint) *Table {
	n := len(freqs)
	t := &Table{
		min:       min,
		precision: precision,
		freq:      make([]uint32, n+1),
		enc:       make([]encSym, n+1),
		cost:      make([]uint32, n+1),
	}
	copy(t.freq, freqs)
	t.freq[n] = escape
	var cum uint32
	for i, f := range t.freq {
		if f != 0 {
			t.enc[i] = encSym{
				// The state after encoding must stay below 1<<32, which
				// bounds the state before encoding by (1<<(32-P))*f.
				xmax: (1 << (32 - precision)) * f,
				freq: f,
				cum:  cum,
			}
			t.cost[i] = uint32(precision)*costOne - log2Fixed(f)
		}
		cum += f
	}
	t.enc[n].esc = true
	for i, f := range freqs {
		if f == 0 {
			t.enc[i] = t.enc[n]
			t.cost[i] = t.cost[n]
		}
	}
	return t
}

// Min returns the smallest value the table covers directly.
func (t *Table) Min() int32 { return t.min }

// Len returns the number of values [Min, Min+Len) the table covers.
func (t *Table) Len() int { return len(t.freq) - 1 }

// Precision returns P: the frequencies sum to 1<<P.
func (t *Table) Precision() uint { return t.precision }

// Freqs returns a copy of the in-range frequencies; element i belongs to
// value Min+i.
func (t *Table) Freqs() []uint32 { return slices.Clone(t.freq[:len(t.freq)-1]) }

// EscapeFreq returns the frequency of the escape symbol.
func (t *Table) EscapeFreq() uint32 { return t.freq[len(t.freq)-1] }

// Freq returns the frequency of v, or 0 if v is coded through the escape.
func (t *Table) Freq(v int32) uint32 {
	i := t.index(v)
	if i == t.Len() {
		return 0
	}
	return t.freq[i]
}

// Equal reports whether t and u describe the same model.
func (t *Table) Equal(u *Table) bool {
	return t.min == u.min && t.precision == u.precision && slices.Equal(t.freq, u.freq)
}

// index maps v to its symbol index in [0, Len()], Len() meaning out of range.
func (t *Table) index(v int32) int {
	n := uint32(len(t.freq) - 1)
	i := uint32(v) - uint32(t.min) // wraps for v < min, landing above n
	if i >= n {
		return int(n)
	}
	return int(i)
}

// decTables is the decoder's view of a table. slots maps each of the
// 1<<precision slots to the index of the symbol owning it, and info packs,
// per symbol index s:
//
//	bits  0..15  cum(s), the first slot of s
//	bits 16..31  freq(s)
//	bits 32..63  the decoded value, or the escape sentinel Min+Len
//
// A frequency never exceeds (1<<16)-1 because the escape frequency is at
// least 1, so 16-bit fields suffice at MaxPrecision. Two small arrays beat
// one array of packed per-slot entries: at precision 14 the slot array is
// 32 KiB and stays in the L1 cache.
type decTables struct {
	slots []uint16
	info  []uint64
}

func (t *Table) decTable() *decTables {
	t.decOnce.Do(func() {
		d := &decTables{
			slots: make([]uint16, 1<<t.precision),
			info:  make([]uint64, len(t.freq)),
		}
		var cum uint32
		for i, f := range t.freq {
			d.info[i] = uint64(uint32(t.min)+uint32(i))<<32 | uint64(f)<<16 | uint64(cum)
			for j := cum; j < cum+f; j++ {
				d.slots[j] = uint16(i)
			}
			cum += f
		}
		t.dec = d
	})
	return t.dec
}

// sentinel is the value the decoding table yields for the escape symbol. It
// wraps for tables ending at MaxInt32 and is never an in-range value.
func (t *Table) sentinel() int32 { return int32(uint32(t.min) + uint32(len(t.freq)-1)) }
