//go:build race

package imap_test

// raceEnabled: the race detector's shadow memory multiplies RSS; memory
// measurements need a build without it.
const raceEnabled = true
