package imap_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// sends answers a command with the given untagged lines, then OK.
func sends(lines ...string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, _ string) {
		_ = s.Send(append(lines, tag+" OK done")...)
	}
}

// A command's result holds only what arrived while it ran: data of its
// type sent during an earlier command stays cached for Response.
func TestResultOnlyWhileRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		commands map[string]imaptest.CommandFunc
		run      func(c *imap.Client) (imap.Result, error)
		selected bool // run selects INBOX itself
		fails    bool // run's command ends in NO
		typ      string
		want     []string // the result's data
		cached   []string // what Response(typ) gives afterwards
	}{
		{
			// Cyrus, mox and Dovecot: the source's EXPUNGE comes with the
			// UID MOVE, which returns FETCH data.
			name: "EXPUNGE from UID MOVE, then EXPUNGE",
			commands: map[string]imaptest.CommandFunc{
				"UID":     sends("* OK [COPYUID 1 3 1] moved", "* 4 EXPUNGE"),
				"EXPUNGE": sends("* 1 EXPUNGE"),
			},
			run: func(c *imap.Client) (imap.Result, error) {
				mustOK(t)(c.UID(ctx, "MOVE", "3", "Archive"))
				return c.Expunge(ctx)
			},
			typ: "EXPUNGE", want: []string{"1"}, cached: []string{"4"},
		},
		{
			// mox: LIST responses sent during SELECT and CREATE.
			name: "LIST from SELECT and CREATE, then a LIST matching nothing",
			commands: map[string]imaptest.CommandFunc{
				"SELECT": func(s *imaptest.Session, tag, _ string) {
					s.SetSelected(true)
					_ = s.Send(`* LIST (\HasNoChildren) "/" INBOX`, "* 2 EXISTS", tag+" OK [READ-WRITE] done")
				},
				"CREATE": sends(`* LIST (\HasNoChildren) "/" Work`),
				"LIST":   sends(),
			},
			run: func(c *imap.Client) (imap.Result, error) {
				mustOK(t)(c.Select(ctx, "INBOX", false))
				mustOK(t)(c.Create(ctx, "Work"))
				entries, err := c.ListMailboxes(ctx, "", "Nothing*")
				if err != nil || len(entries) != 0 {
					t.Fatalf("ListMailboxes = %v, %v; want none", entries, err)
				}
				return c.List(ctx, "", "Nothing*")
			},
			selected: true, typ: "LIST", want: nil, cached: []string{`(\HasNoChildren) "/" INBOX`, `(\HasNoChildren) "/" Work`},
		},
		{
			// A failed command leaves the data of its type that arrived
			// in the cache, after the older ones.
			name: "a failed command's data",
			commands: map[string]imaptest.CommandFunc{
				"NOOP": sends("* 3 EXPUNGE"),
				"EXPUNGE": func(s *imaptest.Session, tag, _ string) {
					_ = s.Send("* 1 EXPUNGE", tag+" NO partly failed")
				},
			},
			run: func(c *imap.Client) (imap.Result, error) {
				mustOK(t)(c.Noop(ctx))
				return c.Expunge(ctx)
			},
			fails: true, typ: "EXPUNGE", want: []string{"partly failed"}, cached: []string{"3", "1"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := plain.server(t, imaptest.Config{Capabilities: "MOVE UIDPLUS", Commands: tt.commands})
			c := plain.connect(t, srv, &imap.Options{InsecureAuth: true, Timeout: testTimeout})
			login(t, c)
			if !tt.selected {
				mustOK(t)(c.Select(ctx, "INBOX", false))
				c.Unsolicited()
			}
			res, err := tt.run(c)
			if tt.fails {
				wantErr(t, err, imap.ErrCommand, "partly failed")
			} else if err != nil {
				t.Fatal(err)
			}
			if got := texts(res.Data); len(got)+len(tt.want) > 0 && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("result %q, want %q", got, tt.want)
			}
			if got := texts(c.Response(tt.typ).Data); !reflect.DeepEqual(got, tt.cached) {
				t.Fatalf("Response(%s) = %q, want %q", tt.typ, got, tt.cached)
			}
		})
	}
}

// Unsolicited hands over the cache whole, in arrival order across types,
// a response with literals in one piece and each response code right after
// its response; what it returns is gone for Response, and what Response
// took is not returned.
func TestUnsolicited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"NOOP": func(s *imaptest.Session, tag, _ string) {
			_ = s.Write([]byte("* 3 EXPUNGE\r\n* 2 FETCH (FLAGS (\\Seen))\r\n* 5 EXISTS\r\n" +
				"* 1 FETCH (BODY[HEADER] {5}\r\nhello FLAGS ())\r\n* OK [ALERT] mind\r\n* 2 EXPUNGE\r\n" +
				"* STATUS Work (MESSAGES 1)\r\n" + tag + " OK done\r\n"))
		},
	}})
	c := plain.connect(t, srv, &imap.Options{InsecureAuth: true, Timeout: testTimeout})
	login(t, c)
	mustOK(t)(c.Select(ctx, "INBOX", false))
	if got := c.Unsolicited(); len(got) == 0 || got[len(got)-1].Type != "EXISTS" && got[len(got)-1].Type != "READ-WRITE" {
		t.Fatalf("after SELECT: %v", got)
	}
	mustOK(t)(c.Noop(ctx))
	if got := texts(c.Response("STATUS").Data); !reflect.DeepEqual(got, []string{"Work (MESSAGES 1)"}) {
		t.Fatalf("Response(STATUS) = %q", got)
	}
	var got []string
	for _, r := range c.Unsolicited() {
		var parts []string
		for _, d := range r.Data {
			parts = append(parts, d.String())
		}
		got = append(got, r.Type+" "+strings.Join(parts, "|"))
	}
	want := []string{
		"EXPUNGE 3",
		`FETCH 2 (FLAGS (\Seen))`,
		"EXISTS 5",
		"FETCH 1 (BODY[HEADER] {5}hello| FLAGS ())",
		"OK [ALERT] mind",
		"ALERT ",
		"EXPUNGE 2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Unsolicited:\n%q\nwant\n%q", got, want)
	}
	if c.Unsolicited() != nil || c.Cached("EXPUNGE") != nil || c.Cached("FETCH") != nil {
		t.Fatal("cache not emptied")
	}
}
