//go:build !race

package imap_test

// raceEnabled: see race_test.go.
const raceEnabled = false
