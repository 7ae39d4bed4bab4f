//go:build !race

package convert_test

// raceEnabled shortens the real-model tests, whose forward passes run
// about ten times slower under the race detector.
const raceEnabled = false
