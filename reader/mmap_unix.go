//go:build unix

package reader

import (
	"errors"
	"os"
	"syscall"
)

// mmapFile maps the whole file read-only.
func mmapFile(f *os.File, size int64) (*mapping, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, errors.New("nwc: file size cannot be mapped")
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &mapping{data: b}, nil
}

func munmap(b []byte) error { return syscall.Munmap(b) }
