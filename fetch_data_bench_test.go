package imap_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/bench/record"
	"github.com/imapkit/imap/bench/replay"
)

// BenchmarkFetchMeta10k compares, in one run, the FETCH paths (Fetch,
// FetchEach, FetchMessages, FetchEachMessage, Fetch+ParseFetch) of a 10,000-message metadata
// response — recorded from a real Dovecot and replayed by a loopback
// stand-in — with a reader that only frames the same bytes (the floor). The
// ratios to the floor are the figures that matter.
func BenchmarkFetchMeta10k(b *testing.B) {
	set, err := record.Record(context.Background(), record.Config{Seed: 1, Messages: 10000, BigSize: 1024, SearchN: 10, ExpungeN: 10})
	if err != nil {
		b.Fatalf("recording from Dovecot: %v", err)
	}
	srv, err := replay.Listen("127.0.0.1:0", replay.Config{Set: set})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	const items = "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
	ctx := context.Background()
	b.Run("floor", func(b *testing.B) {
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReaderSize(conn, 64<<10)
		fmt.Fprintf(conn, "a LOGIN u p\r\nb EXAMINE INBOX\r\n")
		frameUntil(b, br, "b ")
		n := 0
		for b.Loop() {
			n++
			tag := "f" + strconv.Itoa(n) + " "
			fmt.Fprintf(conn, "%sFETCH 1:* %s\r\n", tag, items)
			frameUntil(b, br, tag)
		}
	})
	for _, mode := range []string{"raw", "each", "typed", "typed-each", "fetch+parse"} {
		b.Run("imapkit-"+mode, func(b *testing.B) {
			c, err := imap.Dial(ctx, srv.Addr(), &imap.Options{InsecureAuth: true})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Shutdown()
			if _, err := c.Login(ctx, "u", "p"); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Select(ctx, "INBOX", true); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				switch mode {
				case "raw":
					res, err := c.Fetch(ctx, "1:*", items)
					if err != nil || len(res.Data) < 10000 {
						b.Fatalf("%d data, %v", len(res.Data), err)
					}
				case "each":
					n := 0
					_, err := c.FetchEach(ctx, "1:*", items, func(imap.Response) error { n++; return nil })
					if err != nil || n != 10000 {
						b.Fatalf("%d responses, %v", n, err)
					}
				case "typed":
					msgs, err := c.FetchMessages(ctx, "1:*", items)
					if err != nil || len(msgs) != 10000 {
						b.Fatalf("%d messages, %v", len(msgs), err)
					}
				case "typed-each":
					n := 0
					err := c.FetchEachMessage(ctx, "1:*", items, func(*imap.Message) error { n++; return nil })
					if err != nil || n != 10000 {
						b.Fatalf("%d messages, %v", n, err)
					}
				case "fetch+parse":
					res, err := c.Fetch(ctx, "1:*", items)
					if err != nil {
						b.Fatal(err)
					}
					msgs, err := imap.ParseFetch(res.Data)
					if err != nil || len(msgs) != 10000 {
						b.Fatalf("%d messages, %v", len(msgs), err)
					}
				}
			}
		})
	}
}

// frameUntil reads lines and skips literals until a line starts with tag.
func frameUntil(b *testing.B, br *bufio.Reader, tag string) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if bytes.HasPrefix(line, []byte(tag)) {
			return
		}
		if i := bytes.LastIndexByte(line, '{'); i >= 0 && bytes.HasSuffix(line, []byte("}\r\n")) {
			n, _ := strconv.Atoi(string(line[i+1 : len(line)-3]))
			if _, err := br.Discard(n); err != nil {
				b.Fatal(err)
			}
		}
	}
}
