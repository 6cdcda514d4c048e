//go:build nokit

package main

import (
	"context"
	"errors"

	"github.com/imapkit/imap/internal/dovecot"
)

// kitContenders reports that this binary was built without the imapkit
// contenders (-tags nokit).
func kitContenders() *kitSuite { return nil }

// watchContenders reports that the watch section's contenders were left
// out too.
func watchContenders() map[string]accountFunc { return nil }

func dialAppender(context.Context, string, dovecot.User) (appendFunc, error) {
	return nil, errors.New("built with -tags nokit")
}
