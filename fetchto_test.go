package imap_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/imapkit/imap/internal/imaptest"
)

// TestUIDFetchTo: the UID form of FetchTo sends UID FETCH with the set of
// UIDs and streams each literal to the writer the sink gives.
func TestUIDFetchTo(t *testing.T) {
	srv := imaptest.NewServer(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"UID": func(s *imaptest.Session, tag, args string) {
			s.Server().Set("uid", args)
			_ = s.Write([]byte("* 1 FETCH (UID 40 BODY[] {5}\r\nhello)\r\n* 2 FETCH (UID 41 BODY[] {3}\r\nbye)\r\n"))
			_ = s.Send(tag + " OK done")
		},
	}})
	c := loggedIn(t, srv)
	ctx := context.Background()
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		t.Fatal(err)
	}
	var got []string
	res, err := c.UIDFetchTo(ctx, "40:41", "BODY.PEEK[]", func(header []byte) io.Writer {
		got = append(got, string(header)+"|")
		return writerFunc(func(p []byte) (int, error) {
			got[len(got)-1] = got[len(got)-1] + string(p)
			return len(p), nil
		})
	})
	if err != nil || res.Status != "OK" {
		t.Fatalf("UIDFetchTo: %v", err)
	}
	if args, _ := srv.Get("uid").(string); args != "FETCH 40:41 BODY.PEEK[]" {
		t.Errorf("server read UID %q", args)
	}
	if strings.Join(got, ";") != "1 (UID 40 BODY[] {5}|hello;2 (UID 41 BODY[] {3}|bye" {
		t.Errorf("streamed %q", got)
	}
	if _, err := c.UIDFetchTo(ctx, "40", "BODY.PEEK[]", nil); err == nil {
		t.Error("UIDFetchTo with no sink: no error")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
