//go:build race

package llama

// raceEnabled reports whether the race detector is on; it slows the
// forward pass about tenfold, so the full reference evaluation is left to
// ordinary runs, while TestEvalNLLSmall still runs the concurrent path.
const raceEnabled = true
