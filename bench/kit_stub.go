//go:build nokit

package main

// kitContenders reports that this binary was built without the imapkit
// contenders (-tags nokit).
func kitContenders() *kitSuite { return nil }
