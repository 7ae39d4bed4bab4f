//go:build unix

package nwcenc_test

import (
	"syscall"
	"time"
)

// cpuTime returns the process's user and system CPU time so far, which
// unlike wall time does not count the time other processes of a busy
// machine take from it.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &u) != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
