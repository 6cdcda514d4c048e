package imap_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// typedClient is a logged-in, selected client of a scripted server that
// answers each command in replies with those lines (TAG replaced).
func typedClient(t *testing.T, replies map[string]string) *imap.Client {
	t.Helper()
	cmds := map[string]imaptest.CommandFunc{}
	for name, reply := range replies {
		cmds[name] = func(s *imaptest.Session, tag, args string) {
			s.Server().Set(name, args)
			_ = s.Send(strings.Split(strings.ReplaceAll(reply, "TAG", tag), "|")...)
		}
	}
	srv := imaptest.NewServer(t, imaptest.Config{Capabilities: "IMAP4rev1", Commands: cmds})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	c, err := imap.Dial(ctx, srv.Addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTypedForms: UIDSearchNumbers and StatusMailbox, the typed forms of
// UID SEARCH and STATUS.
func TestTypedForms(t *testing.T) {
	ctx := context.Background()
	c := typedClient(t, map[string]string{
		"UID":    "* SEARCH 4 9 12|TAG OK done",
		"STATUS": "* STATUS INBOX (MESSAGES 3 UIDNEXT 10 UNSEEN 1)|TAG OK done",
	})
	uids, err := c.UIDSearchNumbers(ctx, "", "UNSEEN")
	if err != nil || !slices.Equal(uids, []uint32{4, 9, 12}) {
		t.Errorf("UIDSearchNumbers = %v, %v; want [4 9 12]", uids, err)
	}
	st, err := c.StatusMailbox(ctx, "INBOX", "MESSAGES UIDNEXT UNSEEN")
	if err != nil || st.Messages != 3 || st.UIDNext != 10 || st.Unseen != 1 || !st.Has(imap.StatusUIDNext) || st.Has(imap.StatusRecent) {
		t.Errorf("StatusMailbox = %+v, %v", st, err)
	}
}

// TestTypedParseErrors: a typed form whose answer does not parse returns
// what did parse and an *Error of kind ErrCommand that wraps the
// *ParseError, as every Client method's error is an *Error.
func TestTypedParseErrors(t *testing.T) {
	ctx := context.Background()
	c := typedClient(t, map[string]string{
		"FETCH":  "* 1 FETCH (UID 7)|* 2 FETCH (UID x)|TAG OK done",
		"SEARCH": "* SEARCH 1 two|TAG OK done",
		"LIST":   `* LIST (\HasNoChildren) "/" INBOX|* LIST (\Broken "/" x|TAG OK done`,
		"STATUS": "* STATUS INBOX (MESSAGES x)|TAG OK done",
	})
	msgs, fetchErr := c.FetchMessages(ctx, "1:2", "(UID)")
	if len(msgs) != 1 || msgs[0].UID != 7 {
		t.Errorf("FetchMessages kept %d messages, want the one that parsed", len(msgs))
	}
	_, searchErr := c.SearchNumbers(ctx, "", "ALL")
	list, listErr := c.ListMailboxes(ctx, "", "*")
	if len(list) != 1 {
		t.Errorf("ListMailboxes kept %d entries, want 1", len(list))
	}
	_, statusErr := c.StatusMailbox(ctx, "INBOX", "MESSAGES")
	for name, err := range map[string]error{"FETCH": fetchErr, "SEARCH": searchErr, "LIST": listErr, "STATUS": statusErr} {
		var e *imap.Error
		var pe *imap.ParseError
		if !errors.As(err, &e) || !errors.Is(err, imap.ErrCommand) || !errors.As(err, &pe) || e.Command != name {
			t.Errorf("%s: error %#v, want an *imap.Error of kind ErrCommand for %s wrapping a *ParseError", name, err, name)
		}
	}
}
