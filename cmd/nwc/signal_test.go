package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// proc is a running nwc (this test binary re-executed as nwc).
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	paused chan struct{}
	done   chan struct{}
}

// startChild runs nwc args with NWC_TEST_PAUSE=pause and returns once it
// has reached the pause (or fails the test after a minute).
func startChild(t *testing.T, pause string, args ...string) *proc {
	t.Helper()
	return startUntil(t, []string{testPauseEnv + "=" + pause}, "nwc: test pause at "+strings.TrimSuffix(pause, "+hold"), args...)
}

// startUntil runs nwc args with env added and returns once it has printed
// the line marker on stderr (which is not kept in its stderr), or at once
// when marker is empty.
func startUntil(t *testing.T, env []string, marker string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asNWC+"=1"), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &proc{cmd: cmd, stderr: new(bytes.Buffer), paused: make(chan struct{}), done: make(chan struct{})}
	if marker == "" {
		close(c.paused)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(pipe)
		seen := false
		for sc.Scan() {
			if !seen && marker != "" && sc.Text() == marker {
				seen = true
				close(c.paused)
				continue
			}
			c.stderr.WriteString(sc.Text() + "\n")
		}
	}()
	select {
	case <-c.paused:
	case <-c.done:
		cmd.Wait()
		t.Fatalf("nwc %s ended before printing %q: %s", strings.Join(args, " "), marker, c.stderr)
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("nwc %s did not print %q in a minute: %s", strings.Join(args, " "), marker, c.stderr)
	}
	return c
}

// wait waits for the child to exit and returns its exit status (-1 when
// a signal killed it) and its stderr.
func (c *proc) wait(t *testing.T) (int, string) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { <-c.done; exited <- c.cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		c.cmd.Process.Kill()
		<-exited
		t.Fatalf("nwc did not exit within a minute of the signal: %s", c.stderr)
	}
	return c.cmd.ProcessState.ExitCode(), strings.TrimSpace(c.stderr.String())
}

// writeBigModel writes a float32 checkpoint of 8 matrices of 512 KiB, so
// that half of it is more than the writer's 1 MiB buffer.
func writeBigModel(t *testing.T, path string) {
	t.Helper()
	h := &safetensors.Header{}
	for i := range 8 {
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: fmt.Sprintf("m%d.weight", i), DType: safetensors.F32, Shape: []int64{256, 512}})
	}
	if err := safetensors.WriteFile(path, h, func(n string) ([]byte, error) {
		b := make([]byte, 4*256*512)
		for i := range 256 * 512 {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(math.Sin(float64(i+len(n))*0.37))*0.02))
		}
		return b, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// temps lists the temporary files in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tempName matches the variable part of temporary file names, for the
// table.
var tempName = regexp.MustCompile(`\.tmp-\d+-\d+`)

// TestSignals runs convert and decode in a child process, stops it at
// each point where an interrupt can land (input read but nothing written,
// output half written, output complete but not yet renamed) and sends
// SIGINT, SIGTERM or SIGKILL. Afterwards the input is untouched and the
// previous output intact; the temporary file is gone except after SIGKILL,
// and then the next run names it as deletable without deleting it.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 processes")
	}
	shared := t.TempDir()
	in := filepath.Join(shared, "m.safetensors")
	writeBigModel(t, in)
	nwcIn := filepath.Join(shared, "m.nwc")
	runOK(t, "convert", in, "-o", nwcIn, "--codec", "raw", "--quiet")
	inputs := map[string][32]byte{in: fileHash(t, in), nwcIn: fileHash(t, nwcIn)}

	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}
	var table []string
	for _, command := range []string{"convert", "decode"} {
		for _, point := range []string{"before-output", "mid-write", "before-rename"} {
			for _, sig := range sigs {
				name := fmt.Sprintf("%s %s at %s", command, sigName(sig), point)
				t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
					dir := t.TempDir()
					out := filepath.Join(dir, "out.nwc")
					args := []string{"convert", in, "-o", out, "--codec", "raw", "--force", "--quiet"}
					if command == "decode" {
						out = filepath.Join(dir, "out.safetensors")
						args = []string{"decode", nwcIn, "-o", out, "--force", "--quiet"}
					}
					if err := os.WriteFile(out, []byte("the previous output"), 0o644); err != nil {
						t.Fatal(err)
					}
					before := snapshot(t, dir)
					c := startChild(t, point, args...)
					// What is on disk at the pause.
					tmp := temps(t, dir)
					switch {
					case point == "before-output" && len(tmp) != 0:
						t.Errorf("temporary files before any output: %v", tmp)
					case point != "before-output" && len(tmp) != 1:
						t.Fatalf("temporary files at %s: %v, want one", point, tmp)
					case point == "mid-write":
						if fi, err := os.Stat(tmp[0]); err != nil || fi.Size() == 0 {
							t.Errorf("temporary file at mid-write: %v, %v; want a partly written file", fi, err)
						}
					}
					if err := c.cmd.Process.Signal(sig); err != nil {
						t.Fatal(err)
					}
					code, msg := c.wait(t)
					after := snapshot(t, dir)
					d := diff(before, after)
					for p, h := range inputs {
						if fileHash(t, p) != h {
							t.Errorf("input %s changed", p)
						}
					}
					if b, _ := os.ReadFile(out); string(b) != "the previous output" {
						t.Errorf("the previous output was replaced")
					}
					left := temps(t, dir)
					if sig == syscall.SIGKILL {
						if code != -1 || msg != "" {
							t.Errorf("SIGKILL: exit %d, stderr %q", code, msg)
						}
						if len(left) != len(tmp) {
							t.Errorf("after SIGKILL: temporary files %v, want %v", left, tmp)
						}
					} else {
						want := fmt.Sprintf("nwc %s: interrupted by %s; stopped, leaving no partial output", command, sigName(sig))
						if code != 128+int(sig) || msg != want {
							t.Errorf("exit %d, stderr %q; want %d, %q", code, msg, 128+int(sig), want)
						}
						if d != "unchanged" {
							t.Errorf("disk: %s, want unchanged", d)
						}
					}
					if code == -1 {
						msg = "(killed; none)"
					}
					row := fmt.Sprintf("| %s | %d | %s | %s |", name, code, msg, tempName.ReplaceAllString(d, ".tmp-PID-N"))
					if len(left) > 0 {
						row = strings.TrimSuffix(row, " |") + "; " + leftoverChecks(t, command, left[0], point, args) + " |"
					}
					table = append(table, row)
				})
			}
		}
	}
	t.Log("\n| scenario | exit | message | disk afterwards (besides the unchanged input and previous output) |\n|---|---|---|---|\n" + strings.Join(table, "\n"))
}

// leftoverChecks checks a temporary file left by a killed run: a half
// written .nwc is refused by the reader; the next run tells the user the
// file can be deleted, names it and leaves it alone. It returns what it
// found, for the table.
func leftoverChecks(t *testing.T, command, left, point string, args []string) string {
	t.Helper()
	var found []string
	if command == "convert" {
		r, err := reader.Open(left, nil)
		switch {
		case point == "mid-write" && err == nil:
			r.Close()
			t.Errorf("the reader opened a half-written %s", left)
		case point == "mid-write":
			if format.Class(err) != "format" {
				t.Errorf("half-written file: %v, want a format error", err)
			}
			found = append(found, "reader refuses it ("+format.Class(err)+")")
		case err == nil:
			r.Close()
			found = append(found, "complete and valid, but only under its temporary name")
		}
	}
	if command == "decode" && point == "mid-write" {
		// A half-written safetensors file is shorter than its header
		// says. (One killed while writing its last tensor can have its
		// full length with zeros in the gaps; only its temporary name
		// tells it apart.)
		if f, err := safetensors.Open(left); err == nil {
			f.Close()
			t.Errorf("the safetensors reader opened a half-written %s", left)
		} else {
			found = append(found, "safetensors reader refuses it")
		}
	}
	before := fileHash(t, left)
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	msg := stderr.String()
	if code != 0 || !strings.Contains(msg, left+" (") || !strings.Contains(msg, "is left over from an interrupted run") || !strings.Contains(msg, "can be deleted") {
		t.Errorf("next run: exit %d, stderr %q; want 0 and a note that %s can be deleted", code, msg, left)
	}
	if _, err := os.Stat(left); err != nil || fileHash(t, left) != before {
		t.Errorf("the next run touched the leftover %s: %v", left, err)
	}
	line, _, _ := strings.Cut(msg, "\n")
	found = append(found, "next run says: "+tempName.ReplaceAllString(filepath.Base(line), ".tmp-PID-N"))
	return strings.Join(found, "; ")
}

// TestSecondSignal: a command that does not stop at the first signal (here
// held at a test pause) exits at the second, removing its temporary file.
func TestSecondSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	writeBigModel(t, in)
	sum := fileHash(t, in)
	out := filepath.Join(dir, "out.nwc")
	c := startChild(t, "mid-write+hold", "convert", in, "-o", out, "--codec", "raw", "--quiet")
	tmp := temps(t, dir)
	if len(tmp) != 1 {
		t.Fatalf("temporary files %v, want one", tmp)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	select {
	case <-c.done:
		t.Fatal("exited at the first signal while held")
	default:
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	code, msg := c.wait(t)
	want := "nwc convert: interrupted by SIGINT again; exiting at once, removed " + tmp[0]
	if code != 130 || msg != want {
		t.Errorf("exit %d, stderr %q; want 130 and %q", code, msg, want)
	}
	if left := temps(t, dir); len(left) != 0 {
		t.Errorf("left %v", left)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output: %v, want none", err)
	}
	if fileHash(t, in) != sum {
		t.Error("input changed")
	}
	t.Logf("| convert SIGTERM then SIGINT at mid-write (held) | %d | %s | no output, no temporary file |", code, tempName.ReplaceAllString(strings.ReplaceAll(msg, dir+"/", ""), ".tmp-PID-N"))
}

// TestSignalTrain: an interrupt stops training between steps; the codec
// file keeps the last checkpoint, whole, and no temporary file is left.
func TestSignalTrain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	writeModel(t, in)
	sum := fileHash(t, in)
	out := filepath.Join(dir, "c.nwcc")
	c := startUntil(t, nil, "", "train", in, "-o", out, "--steps", "1000000", "--eval-every", "2", "--batch", "8", "--width", "8", "--blocks", "1")
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(out); err == nil {
			break
		}
		if time.Since(start) > time.Minute {
			c.cmd.Process.Kill()
			c.wait(t)
			t.Fatal("no checkpoint within a minute")
		}
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	code, msg := c.wait(t)
	msg = msg[strings.LastIndexByte(msg, '\n')+1:] // after "training on N chunks"
	want := "nwc train: interrupted by SIGINT; stopped, leaving no partial output"
	if code != 130 || msg != want {
		t.Errorf("exit %d, last line of stderr %q; want 130, %q", code, msg, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := neural.ParseCodec(b); err != nil {
		t.Errorf("the checkpoint left by an interrupted train: %v", err)
	}
	if left := temps(t, dir); len(left) != 0 {
		t.Errorf("left %v", left)
	}
	if fileHash(t, in) != sum {
		t.Error("input changed")
	}
	t.Logf("| train SIGINT between steps | %d | %s | c.nwcc holds the last checkpoint (parses); no temporary file |", code, msg)
}

// TestSignalUnwatched: a command that does not stop by itself on an
// interrupt (eval, here blocked reading a fifo) exits at the first signal.
func TestSignalUnwatched(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	f := stories(t)
	fifo := filepath.Join(t.TempDir(), "text")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no fifo:", err)
	}
	c := startUntil(t, nil, "", "eval", "ppl", "--model", f.st, "--tokenizer", f.tok, "--text", fifo)
	// Opening the fifo for writing returns once eval has opened it for
	// reading: it is running, its signal handler installed, and blocked
	// reading the text.
	opened := make(chan *os.File, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		}
		opened <- w
	}()
	select {
	case w := <-opened:
		defer w.Close()
	case <-c.done:
		code, msg := c.wait(t)
		t.Fatalf("eval ended (exit %d, %q) before reading its text", code, msg)
	case <-time.After(time.Minute):
		c.cmd.Process.Kill()
		c.wait(t)
		t.Fatal("eval did not open its text within a minute")
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	code, msg := c.wait(t)
	if want := "nwc eval: interrupted by SIGINT; exiting at once"; code != 130 || msg != want {
		t.Errorf("exit %d, stderr %q; want 130, %q", code, msg, want)
	}
	t.Logf("| eval SIGINT (reading its text) | %d | %s | nothing written |", code, msg)
}

func sigName(s syscall.Signal) string {
	if s == syscall.SIGKILL {
		return "SIGKILL"
	}
	return signalName(s)
}
