//go:build race

package nwcenc

// raceEnabled reports whether the race detector is on; it slows the
// whole-matrix encodes of the sampling tests about tenfold.
const raceEnabled = true
