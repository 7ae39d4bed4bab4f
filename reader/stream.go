package reader

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// maxAhead bounds the chunk groups a stream decodes ahead of its reader:
// enough to keep a few cores busy while the consumer copies, few enough
// that a stream holds a handful of groups (a few MiB by default).
const maxAhead = 4

// Open returns a stream of the tensor's elements as little-endian bytes of
// type dt (the tensor's own dtype, or F32, F16 or BF16, converted as in
// DecodeInto). It reads and decodes the chunk groups in order, up to
// min(Options.Concurrency, 4) of them in parallel ahead of the reader, and
// holds no more than those and the one being read. ctx is checked before
// each group; once it is done Read returns its error. The caller must
// Close the stream, which stops decoding; a stream is not safe for
// concurrent use.
func (t *Tensor) Open(ctx context.Context, dt format.DType) (io.ReadCloser, error) {
	if err := t.checkTarget(dt); err != nil {
		return nil, err
	}
	var dec codec.GroupDecoder
	if t.e.NumElements() > 0 {
		var err error
		if dec, err = t.decoder(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	return &stream{
		t: t, ctx: ctx, cancel: cancel, dec: dec, dt: dt,
		ahead: max(1, min(t.r.opts.Concurrency, maxAhead)),
	}, nil
}

type stream struct {
	t      *Tensor
	ctx    context.Context
	cancel context.CancelFunc
	dec    codec.GroupDecoder
	dt     format.DType
	ahead  int

	next    int                // next group to start decoding
	pending []chan groupResult // groups being decoded, in order
	cur     *[]byte            // the group being read, or nil
	off     int                // read position in *cur
	err     error              // sticky: io.EOF, a decode error, os.ErrClosed
	wg      sync.WaitGroup
}

type groupResult struct {
	buf *[]byte
	err error
}

func (s *stream) Read(p []byte) (int, error) {
	for {
		if s.cur != nil {
			if s.off < len(*s.cur) {
				n := copy(p, (*s.cur)[s.off:])
				s.off += n
				return n, nil
			}
			putBuf(s.cur)
			s.cur = nil
		}
		if s.err != nil {
			return 0, s.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		for len(s.pending) < s.ahead && s.next < len(s.t.e.Groups) {
			s.start(s.next)
			s.next++
		}
		if len(s.pending) == 0 {
			s.err = io.EOF
			continue
		}
		r := <-s.pending[0]
		s.pending = s.pending[1:]
		if r.err != nil {
			s.err = r.err
			s.cancel()
			continue
		}
		s.cur, s.off = r.buf, 0
	}
}

// start decodes group i in a goroutine. The channel has room for the
// result, so the goroutine ends even if nobody reads it.
func (s *stream) start(i int) {
	ch := make(chan groupResult, 1)
	s.pending = append(s.pending, ch)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf, err := s.decode(i)
		ch <- groupResult{buf, err}
	}()
}

// decode returns group i as s.dt bytes in a pooled buffer.
func (s *stream) decode(i int) (*[]byte, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	t := s.t
	g := t.e.Groups[i]
	n := g.End - t.e.GroupStart(i)
	size := n * uint64(t.e.DType.Size())
	var buf *[]byte
	var err error
	if t.e.Codec == codec.Raw && g.Length == size {
		buf = getBuf(size)
		err = t.r.readSectionInto(*buf, g.Section, t.groupWhat(i))
	} else {
		var payload *[]byte
		if payload, err = t.readPayload(i); err == nil {
			if err = t.checkGroup(s.dec, i, *payload, n); err == nil {
				buf = getBuf(size)
				err = t.wrap(s.dec.DecodeGroup(i, *payload, *buf), i)
			}
			putBuf(payload)
		}
	}
	if err != nil || s.dt == t.e.DType {
		if err != nil {
			if buf != nil {
				putBuf(buf)
			}
			return nil, err
		}
		return buf, nil
	}
	out := getBuf(n * uint64(s.dt.Size()))
	_, err = dtype.Convert((*out)[:0], s.dt, *buf, t.e.DType)
	putBuf(buf)
	if err != nil {
		putBuf(out)
		return nil, err
	}
	return out, nil
}

// Close stops decoding and waits for the groups in flight. Reads after
// Close return os.ErrClosed.
func (s *stream) Close() error {
	if s.err == os.ErrClosed {
		return nil
	}
	s.cancel()
	for _, ch := range s.pending {
		if r := <-ch; r.buf != nil {
			putBuf(r.buf)
		}
	}
	s.wg.Wait()
	s.pending = nil
	if s.cur != nil {
		putBuf(s.cur)
		s.cur = nil
	}
	s.err = os.ErrClosed
	return nil
}
