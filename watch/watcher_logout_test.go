package watch_test

import (
	"testing"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

// TestDovecotLogout counts, through a proxy, the logins and LOGOUTs of a
// watcher: every connection that logged in and was closed said LOGOUT
// first — the probe that plan makes at start to learn whether the server
// has NOTIFY, and every session's connection when Run is cancelled while
// it idles. Connections dropped without LOGOUT leave sessions behind on
// servers that count them against a per-user limit.
func TestDovecotLogout(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		mailboxes []string
		noNotify  bool
		all       bool
		logins    int // while running: the probe's and the sessions'
		idlers    int // sessions
		synced    int // mailboxes
	}{
		{name: "one mailbox", mailboxes: []string{"INBOX"}, logins: 1, idlers: 1, synced: 1},
		{name: "notify, after a probe", mailboxes: []string{"INBOX", "Lists"}, logins: 2, idlers: 1, synced: 2},
		{name: "connection each", mailboxes: []string{"INBOX", "Lists"}, noNotify: true, logins: 2, idlers: 2, synced: 2},
		{name: "all mailboxes", all: true, logins: 1, idlers: 1, synced: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Lists")
			px := newProxy(t, srv.Addr)
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.noNotify
			opts.AllMailboxes = tc.all
			r := startWatcher(t, acct.dialer(px.Addr()), opts, false)
			r.waitFor("baselines", count(watch.EventResynced, "", tc.synced))
			open, _ := px.Conns()
			logins, logouts := px.Commands("LOGIN"), px.Commands("LOGOUT")
			if logins != tc.logins || logins-open != logouts {
				t.Errorf("running: %d logins, %d open, %d LOGOUTs; want %d logins, and a LOGOUT for each connection closed",
					logins, open, logouts, tc.logins)
			}
			// Stop it once it idles: a command cut short by the
			// cancellation leaves the connection unusable, LOGOUT included.
			for px.Commands("IDLE") < tc.idlers {
				time.Sleep(5 * time.Millisecond)
			}
			r.stop()
			if logins, logouts := px.Commands("LOGIN"), px.Commands("LOGOUT"); logins != logouts {
				t.Errorf("stopped: %d logins, %d LOGOUTs", logins, logouts)
			}
		})
	}
}
