// Package progress draws the progress line of long commands on stderr:
// phase, items done of total, weights per second and the time left. On a
// terminal the line is redrawn in place; elsewhere (a log, CI) one line is
// printed every few seconds so the output stays readable. Library packages
// never print: they report through callbacks in their options, and the
// commands forward those to a Line.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Redraw intervals: a terminal line is cheap to redraw, a log line is not.
const (
	TerminalInterval = 200 * time.Millisecond
	LogInterval      = 5 * time.Second
)

// A Line reports the progress of one phase after another. All methods are
// safe for concurrent use and do nothing on a nil *Line, so a command that
// was asked to be quiet passes nil.
type Line struct {
	w        io.Writer
	terminal bool
	now      func() time.Time
	interval time.Duration

	mu       sync.Mutex
	phase    string
	unit     string
	items    int
	total    int
	weights  int64
	wtotal   int64
	start    time.Time
	last     time.Time
	drawn    bool // a terminal line is on screen and needs a newline
	finished bool
}

// New returns a Line writing to w, redrawn in place if terminal is set.
func New(w io.Writer, terminal bool) *Line {
	l := &Line{w: w, terminal: terminal, now: time.Now, interval: LogInterval}
	if terminal {
		l.interval = TerminalInterval
	}
	return l
}

// NewWithClock is New with a clock, for tests.
func NewWithClock(w io.Writer, terminal bool, now func() time.Time) *Line {
	l := New(w, terminal)
	l.now = now
	return l
}

// Start begins a phase of total items (counted in unit, e.g. "tensors")
// holding weights weights in all; either total may be 0 when unknown. The
// previous phase, if any, is finished first.
func (l *Line) Start(phase string, total int, unit string, weights int64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finishLocked()
	t := l.now()
	l.phase, l.unit, l.total, l.wtotal = phase, unit, total, weights
	l.items, l.weights = 0, 0
	l.start, l.last = t, t
	l.finished = false
}

// Set records items and weights done so far in the phase and redraws the
// line if the interval has passed.
func (l *Line) Set(items int, weights int64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items, l.weights = items, weights
	l.maybeDraw()
}

// Add counts items and weights more done.
func (l *Line) Add(items int, weights int64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items += items
	l.weights += weights
	l.maybeDraw()
}

// Finish prints the phase's final line.
func (l *Line) Finish() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finishLocked()
}

func (l *Line) finishLocked() {
	if l.phase == "" || l.finished {
		return
	}
	l.draw(l.now())
	if l.terminal {
		fmt.Fprintln(l.w)
	}
	l.drawn = false
	l.finished = true
}

func (l *Line) maybeDraw() {
	if l.phase == "" || l.finished {
		return
	}
	t := l.now()
	if t.Sub(l.last) < l.interval {
		return
	}
	l.draw(t)
}

func (l *Line) draw(t time.Time) {
	l.last = t
	s := l.text(t)
	if l.terminal {
		fmt.Fprintf(l.w, "\r\x1b[K%s", s)
		l.drawn = true
		return
	}
	fmt.Fprintln(l.w, s)
}

// text renders "phase: 12/201 tensors, 1.20/4.40 G weights, 85.3 M
// weights/s, ETA 38s".
func (l *Line) text(t time.Time) string {
	var parts []string
	if l.total > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d %s", l.items, l.total, l.unit))
	} else if l.items > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", l.items, l.unit))
	}
	el := t.Sub(l.start).Seconds()
	if l.wtotal > 0 {
		parts = append(parts, fmt.Sprintf("%s/%s weights", si(float64(l.weights)), si(float64(l.wtotal))))
	}
	if el > 0 && l.weights > 0 {
		rate := float64(l.weights) / el
		parts = append(parts, si(rate)+" weights/s")
		if l.wtotal > l.weights {
			parts = append(parts, "ETA "+eta(float64(l.wtotal-l.weights)/rate))
		}
	} else if el > 0 && l.items > 0 && l.total > l.items {
		parts = append(parts, "ETA "+eta(float64(l.total-l.items)*el/float64(l.items)))
	}
	parts = append(parts, eta(el)+" elapsed")
	return l.phase + ": " + strings.Join(parts, ", ")
}

// si formats v with a metric prefix: 1.23 G.
func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f G", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func eta(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
