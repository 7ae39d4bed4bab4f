//go:build !race

package convert

// raceEnabled shortens the slowest conversions, which run about ten
// times slower under the race detector.
const raceEnabled = false
