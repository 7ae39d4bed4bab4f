package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nwcodec/nwc/internal/atomicfile"
)

// Interrupts. The first SIGINT or SIGTERM cancels the context of a command
// that watches it (commandContext): the command stops at its next check,
// its deferred cleanup removes the temporary output, and nwc exits with
// 128 + the signal number (130, 143) and one line on stderr. A second
// signal, or the first one to a command that does not watch its context,
// removes the temporary files at once and exits with the same status.
var interrupts struct {
	sync.Mutex
	ctx     context.Context // Background until catchSignals
	got     os.Signal       // the first signal caught
	watched bool            // the running command stops on ctx
	command string          // the running command's name, for messages
}

func init() { interrupts.ctx = context.Background() }

// catchSignals installs the interrupt handling described above; main
// calls it, tests running commands in-process do not.
func catchSignals(stderr io.Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	// On a terminal the message must not land on the progress line.
	newline := ""
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		newline = "\n"
	}
	interrupts.Lock()
	interrupts.ctx = ctx
	interrupts.Unlock()
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range ch {
			interrupts.Lock()
			first := interrupts.got == nil
			if first {
				interrupts.got = s
			}
			watched, name := interrupts.watched, interrupts.command
			interrupts.Unlock()
			if first && watched {
				cancel()
				continue
			}
			removed := atomicfile.RemovePending()
			what := "; exiting at once"
			if !first {
				what = " again; exiting at once"
			}
			if len(removed) > 0 {
				what += ", removed " + strings.Join(removed, ", ")
			}
			fmt.Fprintf(stderr, "%s%s: interrupted by %s%s\n", newline, prog(name), signalName(s), what)
			os.Exit(signalStatus(s))
		}
	}()
}

// commandContext returns the context a long command passes down to stop
// on an interrupt, and tells the signal handler that the command stops
// by itself: the first signal cancels it instead of exiting.
func commandContext() context.Context {
	interrupts.Lock()
	defer interrupts.Unlock()
	interrupts.watched = true
	return interrupts.ctx
}

// startCommand records the running command's name for messages.
func startCommand(name string) {
	interrupts.Lock()
	defer interrupts.Unlock()
	interrupts.command = name
}

// interrupted returns the first signal caught, or nil.
func interrupted() os.Signal {
	interrupts.Lock()
	defer interrupts.Unlock()
	return interrupts.got
}

// interruptedMessage is the one line printed when a command ends after a
// signal; err is what the command returned.
func interruptedMessage(s os.Signal, err error) string {
	switch {
	case err == nil:
		return fmt.Sprintf("interrupted by %s after finishing: the output is complete", signalName(s))
	case errors.Is(err, context.Canceled):
		return fmt.Sprintf("interrupted by %s; stopped, leaving no partial output", signalName(s))
	}
	return fmt.Sprintf("interrupted by %s; stopped with: %v", signalName(s), err)
}

// signalStatus is the shell's exit status for a process ended by s.
func signalStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

func prog(command string) string {
	if command == "" {
		return "nwc"
	}
	return "nwc " + command
}

// reportLeftovers tells the user about temporary files next to the output
// target: those of killed runs can be deleted (nwc does not delete them:
// it cannot be sure they are not someone's evidence or in use by a process
// it cannot see), those of running processes are about to be replaced.
func reportLeftovers(stderr io.Writer, command, target string) {
	ls, err := atomicfile.Leftovers(target)
	if err != nil {
		return // the write itself reports an unreadable directory
	}
	for _, l := range ls {
		switch {
		case l.Live:
			fmt.Fprintf(stderr, "%s: warning: %s (%d bytes) is being written by process %d, which is also writing %s; whichever finishes last wins\n",
				prog(command), l.Name, l.Size, l.PID, target)
		case l.PID > 0:
			fmt.Fprintf(stderr, "%s: %s (%d bytes) is left over from an interrupted run (process %d is gone) and can be deleted\n",
				prog(command), l.Name, l.Size, l.PID)
		default:
			fmt.Fprintf(stderr, "%s: %s (%d bytes) is left over from an interrupted run of an older nwc and can be deleted once no nwc is writing %s\n",
				prog(command), l.Name, l.Size, target)
		}
	}
}

// Test pauses. NWC_TEST_PAUSE=POINT makes nwc stop at POINT, print
// "nwc: test pause at POINT" on stderr and wait for the command's context
// to be cancelled (the first interrupt), then go on as it would have
// there; POINT+hold waits forever, so only a second signal or SIGKILL
// ends it. The points: before-output (input read and checked, nothing
// written), mid-write (the temporary output is half written: convert
// after half its tensors, decode after half its weights) and
// before-rename (the temporary file complete and synced). Tests in
// cmd/nwc kill a child nwc at each to check what is left on disk.
const testPauseEnv = "NWC_TEST_PAUSE"

var pauseOnce sync.Once

func testPause(point string) {
	v := os.Getenv(testPauseEnv)
	if v == "" {
		return
	}
	p, hold := strings.CutSuffix(v, "+hold")
	if p != point {
		return
	}
	pauseOnce.Do(func() {
		fmt.Fprintf(os.Stderr, "nwc: test pause at %s\n", point)
		if hold {
			for {
				time.Sleep(time.Hour)
			}
		}
		interrupts.Lock()
		ctx := interrupts.ctx
		interrupts.Unlock()
		<-ctx.Done()
	})
}

// installTestHooks arms the before-rename pause.
func installTestHooks() {
	if os.Getenv(testPauseEnv) != "" {
		atomicfile.BeforeRename = func(string) { testPause("before-rename") }
	}
}
