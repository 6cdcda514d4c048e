//go:build nokit

package main

import (
	"context"
	"errors"
	"time"
)

// runServe reports that the serve section was left out (-tags nokit): imapkit
// serve is built on our client.
func runServe(context.Context, *config, uint64) *serveResult {
	return &serveResult{skipped: "built with `-tags nokit`", busyLatency: -1}
}

func serveNATSChild(string) error { return errors.New("built with -tags nokit") }

func serveNodeChild(string, string, string, string, time.Duration, int) error {
	return errors.New("built with -tags nokit")
}
