package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrors: a malformed --config names the file, line and column
// of the mistake.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		want    string // after "config FILE"
	}{
		{"syntax", "{\"accounts\": [\n  {\"name\": \"a\",}\n]}", `:2:16: invalid character '}' looking for beginning of object key string`},
		{"wrong type", "{\"accounts\": [\n  {\"name\": \"a\", \"tls\": \"yes\"}\n]}", `:2:24: accounts.tls: want true or false, not string`},
		{"object for an array", "{\"accounts\": [\n  {\"name\": \"a\",\n   \"mailboxes\": {\"x\": 1}}\n]}", `:3:17: accounts.mailboxes: want an array, not object`},
		{"unknown field", "{\"accounts\": [\n  {\"name\": \"a\", \"stream\": \"x\"},\n  {\"name\": \"b\",\t\"passwd\": \"x\"}\n]}", `:3:17: unknown field "passwd"`},
		{"unknown top-level field", "{\"accounts\": [{\"name\": \"a\", \"stream\": \"x\"}],\n \"account\": []}", `:2:2: unknown field "account"`},
		{"known elsewhere, unknown here", "{\"name\": \"x\", \"accounts\": []}", `:1:2: unknown field "name"`},
		{"after a nested array", "{\"accounts\": [{\"mailboxes\": [\"INBOX\", \"a\"], \"streams\": \"x\"}]}", `:1:45: unknown field "streams"`},
		{"columns count characters", "{\"accounts\": [{\"name\": \"Köln\", \"x\": 1}]}", `:1:32: unknown field "x"`},
		{"unclosed", "{\"accounts\": [\n  {\"name\": \"a\"}\n", `:3:1: unexpected end of the file`},
		{"two values", "{\"accounts\": [{\"stream\": \"x\"}]}\n{}\n", `:2:1: unexpected text after the JSON value`},
		{"empty", "", `: the file is empty`},
		{"all mailboxes and mailboxes", `{"accounts": [{"name": "a", "stream": "x", "all_mailboxes": true, "mailboxes": ["INBOX"]}]}`,
			`: account 1 (a): all_mailboxes with mailboxes: it follows every mailbox, or give the ones to watch`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCmd(t, "watch", "--config", path)
			want := "imapkit watch: config " + path + tc.want
			if code != 1 || stdout != "" || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", code, stdout, stderr, want)
			}
		})
	}
}
