package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/natstest"
	"github.com/imapkit/imap/service"
	"github.com/nats-io/nats.go/jetstream"
)

// testSealer stands for service.Sealer: what it returns depends on the
// account and the secret, and never contains the secret.
type testSealer struct{}

func (testSealer) Seal(account, secret string) string {
	sum := sha256.Sum256([]byte(account + "\x00" + secret))
	return "sealed:" + hex.EncodeToString(sum[:])
}

const testAPIToken = "api-token-4242"

// startAccountsAPI serves the real API over a fresh bucket on an
// in-process NATS server, requiring testAPIToken, and returns its URL,
// a file holding the token, and the store.
func startAccountsAPI(t *testing.T) (url, tokenFile string, store *service.AccountStore, kv jetstream.KeyValue) {
	t.Helper()
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: service.BucketAccounts})
	if err != nil {
		t.Fatal(err)
	}
	store = service.NewAccountStore(kv, testSealer{})
	srv := httptest.NewServer(service.NewAPI(service.APIOptions{Accounts: store, Token: testAPIToken}))
	t.Cleanup(srv.Close)
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testAPIToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, tokenFile, store, kv
}

// testCAPEM returns a self-signed certificate in PEM.
func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imapkit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestAccountsCommand(t *testing.T) {
	const pw1, pw2 = "first-Secret-pw", "second-Secret-pw"
	t.Setenv("IMAPKIT_TEST_ACCOUNT_PASSWORD", pw1)
	api, tokenFile, store, kv := startAccountsAPI(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	caPEM := testCAPEM(t)
	if err := os.WriteFile(caFile, []byte(caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(pw2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--api", api, "--api-token-file", tokenFile}
	cmd := func(sub string, args ...string) []string {
		return append(append([]string{"accounts", sub}, conn...), args...)
	}
	var outputs []string
	runOK := func(args []string, wantOut string) string {
		t.Helper()
		code, stdout, stderr := runCmd(t, args...)
		outputs = append(outputs, stdout, stderr)
		if code != 0 || !strings.Contains(stdout, wantOut) {
			t.Fatalf("%v: exit %d, stdout %q (want %q), stderr %q", args[:2], code, stdout, wantOut, stderr)
		}
		return stdout
	}
	sealedOf := func(name string) service.Account {
		t.Helper()
		a, err := store.GetSealed(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	runOK(cmd("add", "--name", "alice", "--server", "imap.example.org:993", "--user", "alice@example.org",
		"--password-env", "IMAPKIT_TEST_ACCOUNT_PASSWORD", "--mailbox", "INBOX", "--mailbox", "Sent", "--ca-file", caFile), "account alice added")
	a := sealedOf("alice")
	if a.PasswordSealed != (testSealer{}).Seal("alice", pw1) || a.Mode != service.ModeTLS || a.CAPEM != caPEM ||
		a.User != "alice@example.org" || !slices.Equal(a.Mailboxes, []string{"INBOX", "Sent"}) {
		t.Errorf("stored after add: %+v", a)
	}
	runOK(cmd("add", "--name", "bob", "--server", "127.0.0.1:143", "--plaintext", "--user", "bob",
		"--password-cmd", "echo "+pw2), "account bob added")
	if b := sealedOf("bob"); b.PasswordSealed != (testSealer{}).Seal("bob", pw2) || b.Mode != service.ModePlaintext {
		t.Errorf("stored after add with --password-cmd: %+v", b)
	}

	out := runOK(cmd("ls"), "NAME")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !slices.Equal(strings.Fields(lines[1]), []string{"alice", "imap.example.org:993", "alice@example.org", "tls", "INBOX,Sent"}) ||
		!slices.Equal(strings.Fields(lines[2]), []string{"bob", "127.0.0.1:143", "bob", "plaintext", "INBOX"}) {
		t.Errorf("ls:\n%s", out)
	}
	objs := jsonLines(t, runOK(cmd("ls", "--json"), "{"))
	if len(objs) != 2 || objs[0]["name"] != "alice" || objs[0]["ca_pem"] != caPEM || objs[1]["name"] != "bob" {
		t.Errorf("ls --json: %v", objs)
	}

	// An update without a password source keeps the stored password.
	runOK(cmd("update", "--name", "alice", "--server", "imap.example.org:143", "--starttls", "--user", "alice@example.org"), "account alice updated")
	a = sealedOf("alice")
	if a.PasswordSealed != (testSealer{}).Seal("alice", pw1) || a.Mode != service.ModeStartTLS || a.CAPEM != "" || len(a.Mailboxes) != 0 {
		t.Errorf("stored after an update without a password: %+v", a)
	}
	runOK(cmd("update", "--name", "alice", "--server", "imap.example.org:143", "--starttls", "--user", "alice@example.org", "--password-file", pwFile), "account alice updated")
	if a = sealedOf("alice"); a.PasswordSealed != (testSealer{}).Seal("alice", pw2) {
		t.Errorf("stored after an update with --password-file: %+v", a)
	}

	runOK(cmd("rm", "--name", "bob"), "account bob removed")
	if _, err := store.Get(t.Context(), "bob"); err == nil {
		t.Error("bob is still there after rm")
	}
	if out := runOK(cmd("ls"), "NAME"); strings.Contains(out, "bob") {
		t.Errorf("ls after rm:\n%s", out)
	}

	// The failures the API reports.
	wrongToken := filepath.Join(dir, "wrong-token")
	os.WriteFile(wrongToken, []byte("nope\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		says []string
	}{
		{"add existing", cmd("add", "--name", "alice", "--server", "h:1", "--user", "u", "--password-env", "IMAPKIT_TEST_ACCOUNT_PASSWORD"),
			[]string{"account already exists: alice", "HTTP 412"}},
		{"update missing", cmd("update", "--name", "carol", "--server", "h:1", "--user", "u"), []string{"no such account: carol", "HTTP 412"}},
		{"rm missing", cmd("rm", "--name", "bob"), []string{"no such account: bob", "HTTP 404 Not Found"}},
		{"server the API refuses", cmd("add", "--name", "dave", "--server", "imap.example.org", "--user", "u", "--password-env", "IMAPKIT_TEST_ACCOUNT_PASSWORD"),
			[]string{`server "imap.example.org": want HOST:PORT`, "HTTP 400 Bad Request"}},
		{"no token", []string{"accounts", "ls", "--api", api}, []string{"bearer token is required", "HTTP 401", "hint:"}},
		{"wrong token", []string{"accounts", "rm", "--api", api, "--api-token-file", wrongToken, "--name", "alice"}, []string{"HTTP 401"}},
		{"missing token file", []string{"accounts", "ls", "--api", api, "--api-token-file", filepath.Join(dir, "none")}, []string{"API token file"}},
		{"API down", []string{"accounts", "ls", "--api", "http://" + freeAddr(t)}, []string{"cannot reach the API", "connection refused", "is imapkit serve running"}},
		{"add without password", cmd("add", "--name", "erin", "--server", "h:1", "--user", "u"), []string{"no password source"}},
		{"unset password variable", cmd("add", "--name", "erin", "--server", "h:1", "--user", "u", "--password-env", "IMAPKIT_TEST_UNSET"), []string{"IMAPKIT_TEST_UNSET is not set"}},
		{"missing CA file", cmd("add", "--name", "erin", "--server", "h:1", "--user", "u", "--password-env", "IMAPKIT_TEST_ACCOUNT_PASSWORD", "--ca-file", filepath.Join(dir, "none")), []string{"CA file"}},
		{"CA file without PEM", cmd("add", "--name", "erin", "--server", "h:1", "--user", "u", "--password-env", "IMAPKIT_TEST_ACCOUNT_PASSWORD", "--ca-file", pwFile), []string{"holds no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			outputs = append(outputs, stdout, stderr)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, "imapkit accounts: ") {
				t.Errorf("stderr %q", stderr)
			}
			for _, s := range tc.says {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q does not say %q", stderr, s)
				}
			}
		})
	}
	if a = sealedOf("alice"); a.PasswordSealed != (testSealer{}).Seal("alice", pw2) || a.Server != "imap.example.org:143" {
		t.Errorf("the failures changed alice: %+v", a)
	}

	// Neither the command's output nor the bucket shows a password or the
	// token.
	keys, _ := kv.Keys(t.Context())
	for _, k := range keys {
		e, err := kv.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(e.Value()))
	}
	for _, out := range outputs {
		for _, secret := range []string{pw1, pw2, testAPIToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows up in %q", secret, out)
			}
		}
	}
}

func TestAccountsUsage(t *testing.T) {
	api := "http://" + freeAddr(t) // never reached
	t.Setenv("IMAPKIT_TEST_ACCOUNT_PASSWORD", "pw")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
		stdout string
	}{
		{"no subcommand", []string{"accounts"}, 2, "usage: imapkit accounts", ""},
		{"unknown subcommand", []string{"accounts", "frob"}, 2, `unknown subcommand "frob"`, ""},
		{"help", []string{"accounts", "help"}, 0, "", "usage: imapkit accounts"},
		{"add without --api", []string{"accounts", "add", "--name", "a", "--server", "h:1", "--user", "u"}, 2, "--api is required", ""},
		{"bad --api", []string{"accounts", "ls", "--api", "127.0.0.1:8080"}, 2, "want http://HOST:PORT", ""},
		{"add without --name", []string{"accounts", "add", "--api", api, "--server", "h:1", "--user", "u"}, 2, "--name is required", ""},
		{"add with a bad name", []string{"accounts", "add", "--api", api, "--name", "a.b", "--server", "h:1", "--user", "u"}, 2, `account name "a.b"`, ""},
		{"add without --server", []string{"accounts", "add", "--api", api, "--name", "a", "--user", "u"}, 2, "--server is required", ""},
		{"update without --user", []string{"accounts", "update", "--api", api, "--name", "a", "--server", "h:1"}, 2, "--user is required", ""},
		{"two modes", []string{"accounts", "add", "--api", api, "--name", "a", "--server", "h:1", "--user", "u", "--tls", "--starttls"}, 2, "choose one of", ""},
		{"no --stream for serve", []string{"accounts", "add", "--api", api, "--name", "a", "--stream", "doveadm exec imap"}, 2, "flag provided but not defined: -stream", ""},
		{"rm without --name", []string{"accounts", "rm", "--api", api}, 2, "--name is required", ""},
		{"ls with an argument", []string{"accounts", "ls", "--api", api, "extra"}, 2, `unexpected argument "extra"`, ""},
		{"bad flag", []string{"accounts", "ls", "--no-such-flag"}, 2, "no-such-flag", ""},
		{"two password sources", []string{"accounts", "add", "--api", api, "--name", "a", "--server", "h:1", "--user", "u", "--password-env", "IMAPKIT_TEST_ACCOUNT_PASSWORD", "--password-cmd", "echo pw"}, 2, "choose one of --password-env, --password-file and --password-cmd", ""},
		{"zero timeout", []string{"accounts", "ls", "--api", api, "--timeout", "0"}, 2, "--timeout 0s", ""},
		{"add help", []string{"accounts", "add", "-h"}, 0, "", "usage: imapkit accounts add"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.stderr) || !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	code, stdout, stderr := runCmd(t, "keygen", "--out", path)
	if code != 0 || !strings.Contains(stdout, path) {
		t.Fatalf("keygen: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("key file %q is not one line", b)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(b), "\n"))
	if err != nil || len(key) != 32 {
		t.Errorf("key file %q: %d bytes, %v; want 32 in standard base64", b, len(key), err)
	}
	if strings.Contains(stdout+stderr, strings.TrimSpace(string(b))) {
		t.Error("keygen printed the key")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	// Never overwritten.
	code, stdout, stderr = runCmd(t, "keygen", "--out", path)
	if code != 1 || !strings.Contains(stderr, "refusing to replace it") || stdout != "" {
		t.Errorf("keygen over an existing key: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if again, _ := os.ReadFile(path); string(again) != string(b) {
		t.Error("the existing key was changed")
	}

	// Each key is new.
	other := filepath.Join(dir, "other")
	if code, _, stderr := runCmd(t, "keygen", "--out", other); code != 0 {
		t.Fatalf("second key: exit %d: %s", code, stderr)
	}
	if b2, _ := os.ReadFile(other); string(b2) == string(b) {
		t.Error("two keys are the same")
	}

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no --out", []string{"keygen"}, 2, "--out is required"},
		{"an argument", []string{"keygen", "--out", filepath.Join(dir, "x"), "extra"}, 2, `unexpected argument "extra"`},
		{"no such directory", []string{"keygen", "--out", filepath.Join(dir, "none", "key")}, 1, "key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("keygen with a usage error wrote a key")
	}
}
