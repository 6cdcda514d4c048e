package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
)

// TestWatchStateRefused: a state file that cannot be trusted stops the
// command with a clear error instead of silently starting from a baseline
// (which would skip the mail that arrived while away); --rebaseline
// accepts it.
func TestWatchStateRefused(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, _ := dovecotUser(t, srv)
	for _, tc := range []struct {
		name    string
		content string // "" with missingDir: no file
		dir     string // a subdirectory that does not exist
		stderr  string
		// rebaseline: whether --rebaseline lets it run
		rebaseline bool
	}{
		{name: "null", content: "null", stderr: "holds no state", rebaseline: true},
		{name: "empty object", content: "{}", stderr: "holds no state", rebaseline: true},
		{name: "empty file", content: "", stderr: "holds no state", rebaseline: true},
		{name: "another server", content: `{"version": 2, "accounts": {"local": {"server": "imap.example.org:993", "user": "", "mailboxes": {"INBOX": {"uidvalidity": 1, "last_uid": 5}}}}}`,
			stderr: `saved for server "imap.example.org:993"`, rebaseline: true},
		{name: "missing directory", dir: "nowhere", stderr: "does not exist"},
		{name: "not JSON", content: "{", stderr: "state file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, tc.dir, "state.json")
			if tc.dir == "" {
				if err := os.WriteFile(state, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"watch", "--stream", stream, "--once", "--state", state}
			code, stdout, stderr := runCmd(t, args...)
			if code != 1 || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, tc.stderr)
			}
			if stdout != "" {
				t.Errorf("printed events: %s", stdout)
			}
			if tc.rebaseline {
				if !strings.Contains(stderr, "rebaseline") {
					t.Errorf("the error does not say how to go on: %q", stderr)
				}
				code, stdout, stderr = runCmd(t, append(args, "--rebaseline")...)
				if code != 0 || !strings.Contains(stdout, "baseline") {
					t.Errorf("with --rebaseline: exit %d, stdout %q, stderr %q", code, stdout, stderr)
				}
			}
		})
	}
}

// TestWatchStateLastUID: a saved last UID the server has not given yet is
// an error, not a silent skip of every later message below it.
func TestWatchStateLastUID(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	appendMsg(t, other, "one")
	state := filepath.Join(t.TempDir(), "state.json")
	args := []string{"watch", "--stream", stream, "--once", "--state", state}
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Fatalf("baseline run: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(state)
	if err := os.WriteFile(state, []byte(strings.Replace(string(b), `"last_uid": 1`, `"last_uid": 999`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, args...)
	if code != 1 || !strings.Contains(stderr, "last_uid is 999") || !strings.Contains(stderr, "--rebaseline") {
		t.Errorf("exit %d, stderr %q; want exit 1, the last UID and the way out", code, stderr)
	}
}

// TestWatchStateByName: positions are keyed by account name, so reordering
// the accounts of --config keeps each one's; a new account's first run is
// announced; an entry no account uses is reported; files of the old
// positional form (FILE.0, FILE.1) are migrated once.
func TestWatchStateByName(t *testing.T) {
	srv := dovecot.StartT(t)
	aStream, aOther := dovecotUser(t, srv)
	bStream, bOther := dovecotUser(t, srv)
	cStream, _ := dovecotUser(t, srv)
	dir := t.TempDir()
	config, state := filepath.Join(dir, "accounts.json"), filepath.Join(dir, "state.json")
	run := func(what string) (string, string) {
		t.Helper()
		code, stdout, stderr := runCmd(t, "watch", "--config", config, "--state", state, "--once", "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", what, code, stderr)
		}
		return stdout, stderr
	}
	newOf := func(stdout, account string) []int {
		var out []map[string]any
		for _, o := range events(jsonLines(t, stdout), "new") {
			if o["account"] == account {
				out = append(out, o)
			}
		}
		return uidsOf(out)
	}

	writeConfig(t, config, [2]string{"a", aStream}, [2]string{"b", bStream})
	run("baseline")
	appendMsg(t, aOther, "a1")
	appendMsg(t, bOther, "b1")
	appendMsg(t, bOther, "b2")
	writeConfig(t, config, [2]string{"b", bStream}, [2]string{"a", aStream}, [2]string{"c", cStream})
	stdout, stderr := run("reordered")
	if got := newOf(stdout, "a"); !slices.Equal(got, []int{1}) {
		t.Errorf("account a after reordering: new %v, want [1]", got)
	}
	if got := newOf(stdout, "b"); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("account b after reordering: new %v, want [1 2]", got)
	}
	if !strings.Contains(stderr, `account "c" has no saved position: first run`) {
		t.Errorf("the new account's first run is not announced: %q", stderr)
	}

	writeConfig(t, config, [2]string{"a", aStream})
	_, stderr = run("fewer accounts")
	if !strings.Contains(stderr, `no longer configured, kept as they are: "b", "c"`) {
		t.Errorf("unused entries not reported: %q", stderr)
	}

	// The positional files of earlier versions.
	old := filepath.Join(dir, "old.json")
	var st struct {
		Accounts map[string]struct {
			Mailboxes map[string]map[string]any `json:"mailboxes"`
		} `json:"accounts"`
	}
	b, _ := os.ReadFile(state)
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		v1 := map[string]any{"mailboxes": map[string]any{name + "/INBOX": st.Accounts[name].Mailboxes["INBOX"]}}
		b, _ := json.Marshal(v1)
		if err := os.WriteFile(old+"."+string(rune('0'+i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	appendMsg(t, aOther, "a2")
	appendMsg(t, bOther, "b3")
	writeConfig(t, config, [2]string{"a", aStream}, [2]string{"b", bStream})
	code, stdout, stderr := runCmd(t, "watch", "--config", config, "--state", old, "--once", "--json")
	if code != 0 {
		t.Fatalf("migration run: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "migrated "+old+".0") || !strings.Contains(stderr, "migrated "+old+".1") {
		t.Errorf("migration not reported: %q", stderr)
	}
	if got := newOf(stdout, "a"); !slices.Equal(got, []int{2}) {
		t.Errorf("account a after migration: new %v, want [2]", got)
	}
	if got := newOf(stdout, "b"); !slices.Equal(got, []int{3}) {
		t.Errorf("account b after migration: new %v, want [3]", got)
	}
	if _, err := os.Stat(old + ".0"); !os.IsNotExist(err) {
		t.Errorf("%s.0 is still there: migrated twice next time", old)
	}
}

// TestWatchAccountFails: an account that fails for good is reported on
// stderr when it fails — with a hint — while the others go on; the command
// fails when no account is left.
func TestWatchAccountFails(t *testing.T) {
	srv := dovecot.StartT(t)
	goodStream, goodOther := dovecotUser(t, srv)
	badUser, _, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAPKIT_TEST_WRONG", "wrong password")
	dir := t.TempDir()
	config := filepath.Join(dir, "accounts.json")
	b, _ := json.Marshal(map[string]any{"accounts": []map[string]any{
		{"name": "good", "stream": goodStream},
		{"name": "bad", "server": srv.Addr, "plaintext": true, "user": badUser, "password_env": "IMAPKIT_TEST_WRONG"},
	}})
	os.WriteFile(config, b, 0o600)
	inv := start("watch", "--config", config)
	waitOutput(t, "stderr", &inv.stderr, "account bad stopped")
	waitOutput(t, "stdout", &inv.stdout, "resynced     good/INBOX")
	appendMsg(t, goodOther, "still here")
	waitOutput(t, "stdout", &inv.stdout, `subject="still here"`)
	if !strings.Contains(inv.stderr.String(), "check --user and the password source") {
		t.Errorf("no hint: %s", inv.stderr.String())
	}
	inv.cancel()
	if code := inv.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d after interrupt with one account left", code)
	}

	// Alone, a failing account ends the command. A certificate from an
	// unknown authority is no better after a wait: it fails at once.
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{name: "wrong password", want: "check --user", args: []string{"--server", srv.Addr, "--plaintext", "--user", badUser, "--password-env", "IMAPKIT_TEST_WRONG"}},
		{name: "unknown authority", want: "--ca-file", args: []string{"--server", srv.TLSAddr, "--tls", "--user", badUser, "--password-env", "IMAPKIT_TEST_WRONG"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := start(append([]string{"watch"}, tc.args...)...)
			code := inv.wait(t, 10*time.Second)
			if stderr := inv.stderr.String(); code != 1 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "no account left") {
				t.Errorf("exit %d, stderr %q; want 1 with %q", code, stderr, tc.want)
			}
		})
	}
}

// TestStateMigrationErrorPosition: a damaged file of an earlier version
// names the line and column of the damage.
func TestStateMigrationErrorPosition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	config, state := filepath.Join(dir, "accounts.json"), filepath.Join(dir, "state.json")
	writeConfig(t, config, [2]string{"a", "exit 3"}, [2]string{"b", "exit 3"})
	if err := os.WriteFile(state+".0", []byte("{\"mailboxes\": {\n  \"a/INBOX\": {\"uidvalidity\": \"7\"}}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "watch", "--config", config, "--state", state)
	if want := "migrating " + state + ".0:2:30: "; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}
