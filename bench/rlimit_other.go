//go:build !unix

package main

// raiseFileLimit is a no-op where RLIMIT_NOFILE does not exist.
func raiseFileLimit() (uint64, error) { return 1 << 20, nil }
