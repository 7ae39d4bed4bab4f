//go:build !race

package llama

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
