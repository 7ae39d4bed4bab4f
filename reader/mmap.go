package reader

import (
	"errors"
	"io"
	"os"
	"sync"
)

// A mapping is a read-only memory map of a whole file. As an io.ReaderAt
// its reads fail, rather than fault, once it is closed.
type mapping struct {
	mu   sync.RWMutex
	data []byte // nil once closed
}

func (m *mapping) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, errors.New("nwc: negative offset")
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// bytes returns the mapped bytes [off, off+n), or nil once closed. The
// caller checked the range against the file size.
func (m *mapping) bytes(off, n uint64) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return nil
	}
	return m.data[off : off+n : off+n]
}

func (m *mapping) closed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.data == nil
}

func (m *mapping) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return nil
	}
	err := munmap(m.data)
	m.data = nil
	return err
}
