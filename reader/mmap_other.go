//go:build !unix

package reader

import (
	"errors"
	"os"
)

// mmapFile reports that mapping is not available; Open then reads through
// the file.
func mmapFile(f *os.File, size int64) (*mapping, error) { return nil, errors.ErrUnsupported }

func munmap(b []byte) error { return nil }
