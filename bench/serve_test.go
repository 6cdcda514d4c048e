//go:build !nokit

package main

import (
	"testing"

	"github.com/imapkit/imap/service"
)

func TestServeDefaultTTL(t *testing.T) {
	if serveDefaultTTL != service.DefaultLeaseTTL {
		t.Errorf("serveDefaultTTL = %v, service.DefaultLeaseTTL = %v", serveDefaultTTL, service.DefaultLeaseTTL)
	}
}
