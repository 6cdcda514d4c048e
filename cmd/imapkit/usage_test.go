package main

import (
	"strings"
	"testing"
)

// TestUsageHelp: -h, --help and "help COMMAND" print the command's usage,
// with examples and flags, to stdout and exit 0; every command has them.
func TestUsageHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"idle", "-h"}, []string{"usage: imapkit idle", "examples:\n  imapkit idle --server", "-duration"}},
		{[]string{"idle", "--help"}, []string{"usage: imapkit idle", "-burst INTERVAL"}},
		{[]string{"watch", "-h"}, []string{"usage: imapkit watch", "examples:\n  imapkit watch --server", "-config FILE", "at most 29m0s"}},
		{[]string{"watch", "--help"}, []string{"usage: imapkit watch", "-exec-burst", "-all-mailboxes", "-list-interval", "mailbox_deleted",
			"--all-mailboxes follows every mailbox"}},
		{[]string{"demo", "-h"}, []string{"usage: imapkit demo", "examples:\n  imapkit demo", "-messages"}},
		{[]string{"serve", "--help"}, []string{"usage: imapkit serve --secret-key-file FILE", "examples:\n  imapkit keygen", "-lease-ttl"}},
		{[]string{"accounts", "-h"}, []string{"usage: imapkit accounts", "examples:\n  imapkit accounts add"}},
		{[]string{"accounts", "--help"}, []string{"usage: imapkit accounts", "examples:"}},
		{[]string{"accounts", "add", "-h"}, []string{"usage: imapkit accounts add", "examples:\n  imapkit accounts add --api", "-password-cmd"}},
		{[]string{"accounts", "update", "--help"}, []string{"usage: imapkit accounts update", "examples:\n  imapkit accounts update", "-name NAME"}},
		{[]string{"accounts", "rm", "-h"}, []string{"usage: imapkit accounts rm", "examples:\n  imapkit accounts rm", "-api URL"}},
		{[]string{"accounts", "ls", "--help"}, []string{"usage: imapkit accounts ls", "examples:\n  imapkit accounts ls", "-json"}},
		{[]string{"accounts", "help", "ls"}, []string{"usage: imapkit accounts ls", "-json"}},
		{[]string{"keygen", "-h"}, []string{"usage: imapkit keygen --out FILE", "examples:\n  imapkit keygen --out", "-out FILE"}},
		{[]string{"login", "--help"}, []string{"usage: imapkit login", "examples:\n  imapkit login --provider", "imapkit login --provider custom", "-client-id ID"}},
		{[]string{"version", "-h"}, []string{"usage: imapkit version", "examples:\n  imapkit version"}},
		{[]string{"help", "watch"}, []string{"usage: imapkit watch", "-config FILE"}},
		{[]string{"--help"}, []string{"usage: imapkit COMMAND", "version", "examples:\n  imapkit demo"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != 0 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

// TestUsageMistakes: a bad flag prints the complaint and the full usage
// to stderr; an argument a command does not take is named; both exit 2
// and print nothing to stdout.
func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"idle", "--frob"}, []string{"flag provided but not defined: -frob", "usage: imapkit idle", "-duration"}},
		{[]string{"accounts", "rm", "--frob"}, []string{"flag provided but not defined: -frob", "usage: imapkit accounts rm", "-name NAME"}},
		{[]string{"idle", "--stream", "x", "INBOX"}, []string{`imapkit idle: unexpected argument "INBOX"`, `Run "imapkit idle -h"`}},
		{[]string{"watch", "--stream", "x", "--json", "now"}, []string{`imapkit watch: unexpected argument "now"`}},
		{[]string{"demo", "quick"}, []string{`imapkit demo: unexpected argument "quick"`}},
		{[]string{"serve", "--secret-key-file", "k", "extra"}, []string{`imapkit serve: unexpected argument "extra"`}},
		{[]string{"accounts", "add", "--api", "http://127.0.0.1:1", "work"}, []string{`imapkit accounts add: unexpected argument "work"`, `Run "imapkit accounts add -h"`}},
		{[]string{"accounts", "help", "frob"}, []string{`unexpected argument "frob"`}},
		{[]string{"login", "--provider", "google", "me"}, []string{`imapkit login: unexpected argument "me"`, `Run "imapkit login -h" for the flags and examples.`}},
		{[]string{"version", "--short"}, []string{"flag provided but not defined: -short", "usage: imapkit version"}},
		{[]string{"version", "2"}, []string{`imapkit version: unexpected argument "2"`}},
		{[]string{"help", "watch", "idle"}, []string{`imapkit help: unexpected argument "idle"`}},
		{[]string{"help", "frob"}, []string{`unknown command "frob"`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}
