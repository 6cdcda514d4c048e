package imap_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

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
	c := loggedIn(t, srv)
	if _, err := c.Select(context.Background(), "INBOX", false); err != nil {
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

// TestKeptMessagePinsNoNeighbour: messages kept from a big typed FETCH
// hold their own memory only. 4,000 messages are fetched and every 200th
// kept (20); once the rest are garbage, the heap holds little more than
// those 20 (before each message got memory of its own, a kept message
// pinned chunks shared with up to hundreds of neighbours).
func TestKeptMessagePinsNoNeighbour(t *testing.T) {
	const n, every = 4000, 200
	var fetch strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&fetch, `* %d FETCH (UID %d FLAGS (\Seen) ENVELOPE ("Mon, 7 Dec 2026 10:00:00 +0000" "subject number %d with some words in it" (("Ada Lovelace" NIL "ada" "example.org")) (("Ada Lovelace" NIL "ada" "example.org")) (("Ada Lovelace" NIL "ada" "example.org")) (("Bob" NIL "bob" "example.net")) NIL NIL NIL "<m%d@example.org>"))`+"\r\n", i, i, i, i)
	}
	srv := imaptest.NewServer(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"FETCH": func(s *imaptest.Session, tag, _ string) {
			_ = s.Write([]byte(fetch.String()))
			_ = s.Send(tag + " OK done")
		},
	}})
	ctx := context.Background()
	c := loggedIn(t, srv)
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		t.Fatal(err)
	}
	var err error
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, form := range []string{"FetchEachMessage", "FetchMessages"} {
		t.Run(form, func(t *testing.T) {
			before := heap()
			var kept []*imap.Message
			if form == "FetchEachMessage" {
				err = c.FetchEachMessage(ctx, "1:*", "(UID FLAGS ENVELOPE)", func(m *imap.Message) error {
					if m.UID%every == 0 {
						kept = append(kept, m)
					}
					return nil
				})
			} else {
				var all []*imap.Message
				all, err = c.FetchMessages(ctx, "1:*", "(UID FLAGS ENVELOPE)")
				for _, m := range all {
					if m.UID%every == 0 {
						kept = append(kept, m)
					}
				}
			}
			if err != nil || len(kept) != n/every {
				t.Fatalf("%s: %v, kept %d", form, err, len(kept))
			}
			grew := int64(heap()) - int64(before)
			perKept := grew / int64(len(kept))
			if perKept > 4096 {
				t.Errorf("%s: the heap holds %d bytes per kept message (%d in all): kept messages pin their neighbours", form, perKept, grew)
			}
			runtime.KeepAlive(kept)
		})
	}
}

// TestManyPartsFirst: a first message whose multipart body has more parts
// than a pool's first chunk parses (it used to panic: the pool made its
// first chunk without room for the slice asked for).
func TestManyPartsFirst(t *testing.T) {
	part := `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1)`
	body := "(" + strings.Repeat(part, 12) + ` "mixed")`
	for _, parse := range []func([]imap.Datum) ([]*imap.Message, error){imap.ParseFetch} {
		msgs, err := parse([]imap.Datum{{Text: []byte("1 (UID 5 BODYSTRUCTURE " + body + ")")}})
		if err != nil || len(msgs) != 1 || len(msgs[0].BodyStructure.Parts) != 12 {
			t.Fatalf("ParseFetch = %v, %v; want one message with 12 parts", msgs, err)
		}
	}
}
