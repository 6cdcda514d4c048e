package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// TestWatchPasswordRotation: the password changes on the server while
// "watch --password-cmd" runs, and the session is cut. The refused
// reconnect is an auth_failed event; once the command prints the new
// password too, the watcher logs in with it and reports every message
// appended meanwhile, exactly once.
func TestWatchPasswordRotation(t *testing.T) {
	srv := dovecot.StartT(t)
	user, pass, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	other, err := imap.DialStream(context.Background(), srv.StreamCommand(user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Shutdown() })
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := start("watch", "--server", srv.Addr, "--plaintext", "--user", user,
		"--password-cmd", "cat "+passFile, "--json")
	defer func() {
		inv.cancel()
		inv.wait(t, 10*time.Second)
	}()
	waitOutput(t, "stdout", &inv.stdout, `"resynced"`)

	if err := srv.SetPassword(user, "new-"+pass); err != nil {
		t.Fatal(err)
	}
	if err := srv.KillIMAP(user); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, "stdout", &inv.stdout, `"auth_failed"`)
	appendMsg(t, other, "while refused 1")
	appendMsg(t, other, "while refused 2")
	if err := os.WriteFile(passFile, []byte("new-"+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, other, "after the change")
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := uidsOf(events(jsonLines(t, inv.stdout.String()), "new"))
		if slices.Equal(got, []int{1, 2, 3}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new UIDs %v, want [1 2 3] exactly once\nstdout:\n%s\nstderr:\n%s", got, inv.stdout.String(), inv.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(inv.stdout.String()+inv.stderr.String(), pass) {
		t.Errorf("a password shows in the output")
	}
}

// TestPasswordCmdFails: a failing --password-cmd stops the command with
// the command's own words on stderr.
func TestPasswordCmdFails(t *testing.T) {
	code, _, stderr := runCmd(t, "watch", "--server", freeAddr(t), "--plaintext", "--user", "u",
		"--password-cmd", "echo 'keyring is locked' >&2; exit 3")
	if code == 0 || !strings.Contains(stderr, "password command failed") || !strings.Contains(stderr, "keyring is locked") {
		t.Errorf("exit %d, stderr %q: want a failure that shows the command's stderr", code, stderr)
	}
}
