//go:build race

package main

// raceEnabled shortens the real-model tests of eval and calibrate, whose
// forward passes run about ten times slower under the race detector.
const raceEnabled = true
