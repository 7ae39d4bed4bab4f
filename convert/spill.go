package convert

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/internal/atomicfile"
)

// A spill holds what guidance derives per matrix and rate control and the
// final pass read again — corrected targets W* and input Hessians — in a
// temporary file instead of memory, so that memory holds one layer's
// worth whatever the model's size: for the 1.1 B Llama shape they are
// about 10 GB (a float64 dim×dim or hidden×hidden Hessian per group of
// matrices sharing an input, and the targets in the tensors' dtype).
//
// The file is an atomicfile temporary next to the output, never
// committed: the output's file system is the one the user chose to hold
// a file of this size class, while os.TempDir may be a RAM-backed tmpfs
// where a spill would count against the memory it is meant to save; and
// as an atomicfile temporary it is removed on a second interrupt
// (atomicfile.RemovePending) and reported by the next conversion to the
// same output if a killed process left it behind (atomicfile.Leftovers).
//
// Values are stored as their raw bits (float64 Hessians as float64), so
// reading them back gives exactly what was written and the file converted
// is byte for byte the one a conversion holding everything would write.
type spill struct {
	f *atomicfile.File

	mu   sync.Mutex
	end  int64 // bytes written
	hkey *spilledHessian
	hval *calib.Hessian // the one Hessian kept read (hkey's)
}

// span locates bytes in a spill.
type span struct{ off, n int64 }

// spilledHessian locates a Hessian in a spill.
type spilledHessian struct {
	at     span
	n      int
	tokens int64
}

// newSpill starts a spill next to the file out.
func newSpill(ctx context.Context, out string) (*spill, error) {
	f, err := atomicfile.CreateContext(ctx, out)
	if err != nil {
		return nil, fmt.Errorf("convert: spill file: %w", err)
	}
	return &spill{f: f}, nil
}

// remove closes and deletes the spill; it may be called more than once.
func (s *spill) remove() error {
	if s == nil {
		return nil
	}
	return s.f.Abort()
}

// spillChunk is how many bytes a Hessian is converted through at a time,
// so that writing or reading one needs no second copy of it.
const spillChunk = 1 << 20

// put appends b and returns where it is.
func (s *spill) put(b []byte) (span, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := span{s.end, int64(len(b))}
	if _, err := s.f.WriteAt(b, at.off); err != nil {
		return span{}, fmt.Errorf("convert: spill file: %w", err)
	}
	s.end += at.n
	return at, nil
}

// get returns a new copy of the bytes at sp.
func (s *spill) get(sp span) ([]byte, error) {
	b := make([]byte, sp.n)
	if _, err := s.f.ReadAt(b, sp.off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("convert: spill file: %w", err)
	}
	return b, nil
}

// putHessian appends h's values as little-endian float64 bits.
func (s *spill) putHessian(h *calib.Hessian) (*spilledHessian, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &spilledHessian{at: span{s.end, int64(len(h.Data)) * 8}, n: h.N, tokens: h.Tokens}
	buf := make([]byte, 0, spillChunk)
	off := r.at.off
	for i := 0; i < len(h.Data); {
		buf = buf[:0]
		for ; i < len(h.Data) && len(buf) < spillChunk; i++ {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(h.Data[i]))
		}
		if _, err := s.f.WriteAt(buf, off); err != nil {
			return nil, fmt.Errorf("convert: spill file: %w", err)
		}
		off += int64(len(buf))
	}
	s.end = off
	return r, nil
}

// hessian returns the Hessian at r, read back unless it is the one read
// last: the matrices sharing a Hessian are mostly coded one after the
// other, and keeping one bounds what the cache holds to the largest.
func (s *spill) hessian(r *spilledHessian) (*calib.Hessian, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hkey == r {
		return s.hval, nil
	}
	// Drop the old one first: a caller still coding with it keeps it
	// alive, but the cache does not.
	s.hkey, s.hval = nil, nil
	data := make([]float64, r.at.n/8)
	buf := make([]byte, min(spillChunk, r.at.n))
	for i, off := 0, r.at.off; i < len(data); {
		b := buf[:min(int64(len(buf)), int64(len(data)-i)*8)]
		if _, err := s.f.ReadAt(b, off); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("convert: spill file: %w", err)
		}
		for j := 0; j < len(b); j += 8 {
			data[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[j:]))
			i++
		}
		off += int64(len(b))
	}
	s.hkey, s.hval = r, &calib.Hessian{N: r.n, Data: data, Tokens: r.tokens}
	return s.hval, nil
}
