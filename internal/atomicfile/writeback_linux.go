//go:build linux

package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

func startWriteback(f *os.File, off, n int64) {
	c, err := f.SyscallConn()
	if err != nil {
		return
	}
	c.Control(func(fd uintptr) {
		// SYNC_FILE_RANGE_WRITE alone queues the range's dirty pages
		// for writing and returns: it neither waits for them nor
		// promises durability (Commit's fsync does).
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
