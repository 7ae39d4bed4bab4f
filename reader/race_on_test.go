//go:build race

package reader_test

// raceEnabled: the race detector makes sync.Pool drop buffers at random.
const raceEnabled = true
