package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// TestWatchAllMailboxes runs "watch --all-mailboxes" (and the same from a
// --config account with "all_mailboxes") while another connection creates
// a mailbox and delivers into it, renames one and deletes one: the JSON
// lines and the hook's IMAPKIT_* variables name the mailboxes, and the
// rename its old name (old_mailbox, IMAPKIT_OLD_MAILBOX); the new kinds
// reach hooks by default.
func TestWatchAllMailboxes(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name   string
		config bool
	}{
		{name: "flag"},
		{name: "config", config: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, other := dovecotUser(t, srv)
			ctx := context.Background()
			succeeds(t, "CREATE Lists")(other.Create(ctx, "Lists"))
			dir := t.TempDir()
			vars := filepath.Join(dir, "vars")
			args := []string{"watch", "--json", "--exec", `echo "$IMAPKIT_EVENT|$IMAPKIT_MAILBOX|$IMAPKIT_OLD_MAILBOX" >> ` + vars}
			if tc.config {
				config := filepath.Join(dir, "accounts.json")
				b, _ := json.Marshal(map[string]any{"accounts": []map[string]any{{"name": "local", "stream": stream, "all_mailboxes": true}}})
				if err := os.WriteFile(config, b, 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", config)
			} else {
				args = append(args, "--stream", stream, "--all-mailboxes")
			}
			inv := start(args...)
			waitOutput(t, "output", &inv.stdout, `"event":"resynced","time"`)
			waitOutput(t, "output", &inv.stdout, `"mailbox":"Lists"`)

			succeeds(t, "CREATE Fresh")(other.Create(ctx, "Fresh"))
			msg := []byte("From: ada@example.org\r\nSubject: into Fresh\r\n\r\nbody\r\n")
			res, err := other.Append(ctx, "Fresh", "", time.Time{}, msg)
			must(t, "APPEND", res, err)
			waitOutput(t, "output", &inv.stdout, `"subject":"into Fresh"`)
			succeeds(t, "RENAME")(other.Rename(ctx, "Lists", "Archive"))
			waitOutput(t, "output", &inv.stdout, `"event":"mailbox_renamed"`)
			succeeds(t, "DELETE")(other.Delete(ctx, "Fresh"))
			waitOutput(t, "output", &inv.stdout, `"event":"mailbox_deleted"`)
			wantVars := []string{"mailbox_created|Fresh|", "new|Fresh|", "mailbox_renamed|Archive|Lists", "mailbox_deleted|Fresh|"}
			deadline := time.Now().Add(10 * time.Second)
			for len(readLines(t, vars)) < len(wantVars) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			inv.cancel()
			if code := inv.wait(t, 5*time.Second); code != 0 {
				t.Fatalf("exit %d after interrupt: %s", code, inv.stderr.String())
			}

			objs := jsonLines(t, inv.stdout.String())
			for _, want := range []map[string]any{
				{"event": "mailbox_created", "mailbox": "Fresh"},
				{"event": "new", "mailbox": "Fresh", "uid": 1.0},
				{"event": "mailbox_renamed", "mailbox": "Archive", "old_mailbox": "Lists"},
				{"event": "mailbox_deleted", "mailbox": "Fresh"},
			} {
				found := events(objs, want["event"].(string))
				if !slices.ContainsFunc(found, func(o map[string]any) bool {
					for k, v := range want {
						if o[k] != v {
							return false
						}
					}
					id, _ := o["id"].(string)
					return len(id) == 32 && o["uidvalidity"] != nil
				}) {
					t.Errorf("no JSON event like %v (with an id and a uidvalidity) in:\n%s", want, inv.stdout.String())
				}
			}
			got := readLines(t, vars)
			slices.Sort(got)
			slices.Sort(wantVars)
			if !slices.Equal(got, wantVars) {
				t.Errorf("the hook saw\n%q\nwant\n%q", got, wantVars)
			}
		})
	}
}

// succeeds returns a check that a command succeeded, for a call's results.
func succeeds(t *testing.T, what string) func(imap.Result, error) {
	return func(r imap.Result, err error) {
		t.Helper()
		must(t, what, r, err)
	}
}

// TestWatchMailboxDeleted: the only mailbox of "watch --mailbox Box" is
// deleted. The command prints the mailbox_deleted event, drops Box from
// the state file once the event is delivered, and exits 1 saying why: no
// mailbox is left to watch.
func TestWatchMailboxDeleted(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	ctx := context.Background()
	succeeds(t, "CREATE Box")(other.Create(ctx, "Box"))
	state := filepath.Join(t.TempDir(), "state.json")
	inv := start("watch", "--stream", stream, "--json", "--mailbox", "Box", "--state", state)
	waitOutput(t, "output", &inv.stdout, `"event":"resynced"`)
	succeeds(t, "DELETE Box")(other.Delete(ctx, "Box"))
	if code := inv.wait(t, 15*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", code, inv.stderr.String())
	}
	stderr := inv.stderr.String()
	for _, want := range []string{`account local stopped: watch: "Box": every watched mailbox was deleted on the server`, "no account left to watch"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	deleted := events(jsonLines(t, inv.stdout.String()), "mailbox_deleted")
	if len(deleted) != 1 || deleted[0]["mailbox"] != "Box" {
		t.Errorf("mailbox_deleted events %v, want one for Box", deleted)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"Box"`) {
		t.Errorf("the state file still holds Box after its deletion was delivered:\n%s", b)
	}
}
