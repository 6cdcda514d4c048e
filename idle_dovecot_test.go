package imap_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// otherConn opens a second plain connection for user, to make changes while
// the first one idles.
func otherConn(t *testing.T, srv *dovecot.Server, user string) *imap.Client {
	t.Helper()
	ctx := context.Background()
	c, err := imap.DialStream(ctx, srv.StreamCommand(user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard, TLSConfig: &tls.Config{RootCAs: srv.CertPool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// waitFor reads responses until one satisfies match, failing after 10 s.
func waitFor(t *testing.T, id *imap.Idler, what string, match func(imap.Response) bool) imap.Response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, ok, err := id.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok && match(r) {
			return r
		}
	}
	t.Fatalf("no %s within 10 s", what)
	return imap.Response{}
}

func TestDovecotIdle(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tr := range []string{"plain", "tls", "stream"} {
		t.Run(tr, func(t *testing.T) {
			ctx := context.Background()
			c, user := dovecotClient(t, srv, tr)
			other := otherConn(t, srv, user)
			must(t, "APPEND")(other.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: one\r\n\r\nx\r\n")))
			must(t, "SELECT")(c.Select(ctx, "INBOX", false))
			id, err := c.Idle(ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			// New mail → EXISTS.
			must(t, "APPEND")(other.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: two\r\n\r\ny\r\n")))
			waitFor(t, id, "EXISTS 2", func(r imap.Response) bool {
				return r.Type == "EXISTS" && string(r.Data[0].Text) == "2"
			})
			// Flag change → FETCH with FLAGS.
			must(t, "SELECT")(other.Select(ctx, "INBOX", false))
			must(t, "STORE")(other.Store(ctx, "1", "+FLAGS", `\Flagged`))
			r := waitFor(t, id, "FETCH 1", func(r imap.Response) bool { return r.Type == "FETCH" })
			m, err := imap.ParseFetchResponse(r)
			if err != nil || m.Seq != 1 || !hasFlag(m.Flags, `\Flagged`) {
				t.Fatalf("FETCH = %+v, %v", m, err)
			}
			// Expunge → EXPUNGE.
			must(t, "STORE")(other.Store(ctx, "1", "+FLAGS.SILENT", `\Deleted`))
			must(t, "EXPUNGE")(other.Expunge(ctx))
			waitFor(t, id, "EXPUNGE 1", func(r imap.Response) bool {
				return r.Type == "EXPUNGE" && string(r.Data[0].Text) == "1"
			})
			if err := id.Close(); err != nil {
				t.Fatal(err)
			}
			// The connection is usable after IDLE.
			must(t, "NOOP")(c.Noop(ctx))
		})
	}
}

// TestDovecotIdleBurst deletes 500 messages at once: Burst must deliver the
// 500 EXPUNGEs in a few batches, not 500.
func TestDovecotIdleBurst(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tr := range []string{"plain", "stream"} {
		t.Run(tr, func(t *testing.T) {
			ctx := context.Background()
			c, user := dovecotClient(t, srv, tr)
			var msgs [][]byte
			for i := 0; i < 500; i++ {
				msgs = append(msgs, []byte(fmt.Sprintf("Subject: bulk %d\r\n\r\nbody\r\n", i)))
			}
			if err := srv.DeliverMaildir(user, "INBOX", msgs); err != nil {
				t.Fatal(err)
			}
			sel := must(t, "SELECT")(c.Select(ctx, "INBOX", false))
			if string(sel.Data[0].Text) != "500" {
				t.Fatalf("EXISTS = %q", sel.Texts())
			}
			other := otherConn(t, srv, user)
			must(t, "SELECT")(other.Select(ctx, "INBOX", false))
			id, err := c.Idle(ctx, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			must(t, "STORE")(other.Store(ctx, "1:*", "+FLAGS.SILENT", `\Deleted`))
			must(t, "EXPUNGE")(other.Expunge(ctx))
			expunges, batches := 0, 0
			for batch, err := range id.Burst(200 * time.Millisecond) {
				if err != nil {
					t.Fatal(err)
				}
				batches++
				for _, r := range batch {
					if r.Type == "EXPUNGE" {
						expunges++
					}
				}
				if expunges == 500 {
					break
				}
			}
			if expunges != 500 {
				t.Fatalf("got %d EXPUNGE responses, want 500", expunges)
			}
			if batches > 5 {
				t.Errorf("500 EXPUNGEs came in %d batches, want a few", batches)
			}
			t.Logf("%s: 500 EXPUNGEs in %d batches", tr, batches)
			if err := id.Close(); err != nil && !strings.Contains(err.Error(), "BYE") {
				t.Fatal(err)
			}
		})
	}
}
