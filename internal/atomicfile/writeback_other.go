//go:build !linux

package atomicfile

import "os"

// startWriteback does nothing: only Linux has sync_file_range.
func startWriteback(*os.File, int64, int64) {}
