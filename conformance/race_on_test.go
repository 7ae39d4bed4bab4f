//go:build race

package conformance

// raceEnabled: the race detector's shadow memory multiplies a process's
// resident set, so memory bounds are measured without it.
const raceEnabled = true
