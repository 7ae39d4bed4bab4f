//go:build unix

package atomicfile

import (
	"errors"
	"syscall"
)

// processExists reports whether a process with id pid exists: signal 0
// checks without sending anything, and EPERM means it exists but belongs
// to another user.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
