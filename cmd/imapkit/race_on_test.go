//go:build race

package main

// raceDetector reports whether the test binary runs under -race.
const raceDetector = true
