//go:build !race

package nwcenc

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
