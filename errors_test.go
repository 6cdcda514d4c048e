package imap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// TestErrorCode: Error.Code holds the response code of the server's
// refusal, without brackets or arguments, so that callers can branch on it.
func TestErrorCode(t *testing.T) {
	for _, tc := range []struct{ reply, code string }{
		{"NO [TRYCREATE] no such mailbox", "TRYCREATE"},
		{"NO [AUTHENTICATIONFAILED] Authentication failed.", "AUTHENTICATIONFAILED"},
		{"NO [badcharset (UTF-8)] charset", "BADCHARSET"},
		{"NO [OVERQUOTA]", "OVERQUOTA"},
		{"BAD [PARSE] bad", "PARSE"},
		{"NO plain refusal", ""},
		{"NO [unterminated", ""},
		{"NO []", ""},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			srv := imaptest.NewServer(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
				"SELECT": func(s *imaptest.Session, tag, _ string) { _ = s.Send(tag + " " + tc.reply) },
			}})
			ctx := context.Background()
			c := loggedIn(t, srv)
			_, err := c.Select(ctx, "INBOX", false)
			var e *imap.Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("Select = %#v, want an *imap.Error with Code %q", err, tc.code)
			}
		})
	}
}
