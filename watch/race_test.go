//go:build race

package watch_test

// raceEnabled: the race detector's instrumentation makes frames, and so
// stacks, larger; memory measurements need a build without it.
const raceEnabled = true
