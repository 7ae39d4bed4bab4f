package progress_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nwcodec/nwc/internal/progress"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLogLines(t *testing.T) {
	var b strings.Builder
	c := &clock{t: time.Unix(1000, 0)}
	l := progress.NewWithClock(&b, false, c.now)
	l.Start("decode", 4, "tensors", 400e6)
	c.t = c.t.Add(time.Second)
	l.Set(1, 100e6) // within the log interval: nothing printed
	if b.Len() != 0 {
		t.Fatalf("printed %q before the interval", b.String())
	}
	c.t = c.t.Add(progress.LogInterval)
	l.Set(2, 200e6)
	got := b.String()
	want := "decode: 2/4 tensors, 200.0 M/400.0 M weights, 33.3 M weights/s, ETA 6s, 6s elapsed\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	c.t = c.t.Add(time.Second)
	l.Set(4, 400e6)
	l.Finish()
	l.Finish() // once only
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "decode: 4/4 tensors") || strings.Contains(lines[1], "ETA") {
		t.Errorf("final lines %q", lines)
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("carriage return in a log")
	}
}

func TestTerminalRedraw(t *testing.T) {
	var b strings.Builder
	c := &clock{t: time.Unix(0, 0)}
	l := progress.NewWithClock(&b, true, c.now)
	l.Start("verify", 10, "tensors", 0)
	for i := 1; i <= 10; i++ {
		c.t = c.t.Add(progress.TerminalInterval)
		l.Add(1, 0)
	}
	l.Start("next", 0, "", 0) // finishes "verify" with a newline
	out := b.String()
	if n := strings.Count(out, "\r\x1b[K"); n != 11 {
		t.Errorf("%d redraws, want 10 updates and the final one", n)
	}
	if !strings.Contains(out, "verify: 10/10 tensors, 2s elapsed\n") {
		t.Errorf("no final line in %q", out)
	}
	if !strings.Contains(out, "ETA") {
		t.Errorf("no ETA from item counts in %q", out)
	}
}

func TestNilAndConcurrent(t *testing.T) {
	var l *progress.Line
	l.Start("x", 1, "y", 1)
	l.Add(1, 1)
	l.Set(1, 1)
	l.Finish()

	var b strings.Builder
	l = progress.New(&b, false)
	l.Start("convert", 1000, "tensors", 1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 125 {
				l.Add(1, 1)
			}
		}()
	}
	wg.Wait()
	l.Finish()
	if !strings.Contains(b.String(), "convert: 1000/1000 tensors") {
		t.Errorf("got %q", b.String())
	}
}
