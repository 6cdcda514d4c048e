package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imapkit/imap/service"
)

// runAccounts manages the accounts of a running imapkit serve through its
// API: add, update, rm, ls.
func runAccounts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		accountsUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "add", "update":
		return runAccountPut(ctx, args[0], args[1:], stdout, stderr)
	case "rm":
		return runAccountRm(ctx, args[1:], stdout, stderr)
	case "ls":
		return runAccountLs(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		switch {
		case len(args) == 1:
			accountsUsage(stdout)
			return nil
		case len(args) == 2 && accountsUsages[args[1]] != nil:
			// "accounts help add" is "accounts add -h".
			return runAccounts(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		fmt.Fprintf(stderr, "imapkit accounts: unexpected argument %q\n", args[len(args)-1])
		accountsUsage(stderr)
		return errUsage
	}
	fmt.Fprintf(stderr, "imapkit accounts: unknown subcommand %q\n", args[0])
	accountsUsage(stderr)
	return errUsage
}

func accountsUsage(w io.Writer) {
	fmt.Fprint(w, `usage: imapkit accounts SUBCOMMAND --api URL [--api-token-file FILE] [flags]

subcommands:
  add     add an account: --name, --server, --user, a password source, [--mailbox]...
  update  replace an account's settings (the stored password stays unless a source is given)
  rm      remove an account: --name
  ls      list the accounts (--json: one JSON object per line)

examples:
  imapkit accounts add --api http://127.0.0.1:8025 --api-token-file /etc/imapkit/api.token \
      --name work --server imap.example.org:993 --user alice --password-cmd "pass show work/imap"
  imapkit accounts ls --api http://127.0.0.1:8025 --api-token-file /etc/imapkit/api.token

Run "imapkit accounts SUBCOMMAND -h" for its flags and examples.
`)
}

// accountsUsages are the usages of the subcommands of accounts.
var accountsUsages = map[string]*cmdUsage{
	"add": {
		command:  "accounts add",
		synopsis: "--api URL --name NAME --server HOST:PORT --user USER PASSWORD-SOURCE [flags]",
		about: `Add an account to a running imapkit serve through its API. The password is
read once, here, and sealed by serve; an account of that name must not exist.`,
		examples: []string{
			`imapkit accounts add --api http://127.0.0.1:8025 --api-token-file /etc/imapkit/api.token \`,
			`    --name work --server imap.example.org:993 --user alice --password-cmd "pass show work/imap"`,
			`imapkit accounts add --api http://127.0.0.1:8025 --name home --server mail.example.net:143 --starttls \`,
			`    --user bob --password-env HOME_IMAP_PASSWORD --mailbox INBOX --mailbox Alerts`,
		},
	},
	"update": {
		command:  "accounts update",
		synopsis: "--api URL --name NAME --server HOST:PORT --user USER [PASSWORD-SOURCE] [flags]",
		about: `Replace the settings of an account of a running imapkit serve. The stored
password stays unless a password source is given.`,
		examples: []string{
			`imapkit accounts update --api http://127.0.0.1:8025 --name work --server imap.example.org:993 \`,
			`    --user alice --mailbox INBOX --mailbox Lists`,
			`imapkit accounts update --api http://127.0.0.1:8025 --name work --server imap.example.org:993 \`,
			`    --user alice --password-file /run/secrets/work-imap`,
		},
	},
	"rm": {
		command:  "accounts rm",
		synopsis: "--api URL --name NAME [flags]",
		about:    `Remove an account from a running imapkit serve, which stops watching it.`,
		examples: []string{
			`imapkit accounts rm --api http://127.0.0.1:8025 --api-token-file /etc/imapkit/api.token --name work`,
		},
	},
	"ls": {
		command:  "accounts ls",
		synopsis: "--api URL [flags]",
		about:    `List the accounts of a running imapkit serve (never their passwords).`,
		examples: []string{
			`imapkit accounts ls --api http://127.0.0.1:8025 --api-token-file /etc/imapkit/api.token`,
			`imapkit accounts ls --api http://127.0.0.1:8025 --json`,
		},
	},
}

// apiFlags say where the API of imapkit serve is.
type apiFlags struct {
	url       string
	tokenFile string
	timeout   time.Duration
}

func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "api", "", "`URL` of the API of imapkit serve (its --http address, e.g. http://127.0.0.1:8080)")
	fs.StringVar(&f.tokenFile, "api-token-file", "", "send the bearer token in the first line of `FILE`")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the API request")
}

// accountConnFlags are the connection flags of watch that describe an
// account of serve: --stream, --debug and --timeout are left out.
var accountConnFlags = []string{"server", "tls", "starttls", "plaintext", "user", "password-env", "password-file", "password-cmd", "ca-file"}

// registerAccountConn registers on fs the flags of watch in
// accountConnFlags, bound to cf.
func registerAccountConn(fs *flag.FlagSet, cf *connFlags) {
	all := flag.NewFlagSet("", flag.ContinueOnError)
	cf.register(all)
	for _, name := range accountConnFlags {
		f := all.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

// newSubFlags returns the flag set of "accounts SUB".
func newSubFlags(sub string) *flag.FlagSet {
	return flag.NewFlagSet("accounts "+sub, flag.ContinueOnError)
}

// usageError prints msg as the command's usage error.
func usageError(stderr io.Writer, sub, msg string) error {
	return accountsUsages[sub].fail(stderr, "%s", msg)
}

func runAccountPut(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := newSubFlags(sub)
	var af apiFlags
	af.register(fs)
	var cf connFlags
	registerAccountConn(fs, &cf)
	name := fs.String("name", "", "the account's `NAME` (letters, digits, '-', '_'): its key in serve")
	var mailboxes stringList
	fs.Var(&mailboxes, "mailbox", "mailbox to watch (repeatable; default INBOX)")
	if err := accountsUsages[sub].parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	modes, sources := 0, 0
	mode := service.ModeTLS
	for _, m := range []struct {
		set  bool
		mode string
	}{{cf.tls, service.ModeTLS}, {cf.startTLS, service.ModeStartTLS}, {cf.plaintext, service.ModePlaintext}} {
		if m.set {
			modes++
			mode = m.mode
		}
	}
	for _, v := range []string{cf.passwordEnv, cf.passFile, cf.passCmd} {
		if v != "" {
			sources++
		}
	}
	switch {
	case *name == "":
		return usageError(stderr, sub, "--name is required")
	case service.ValidName(*name) != nil:
		return usageError(stderr, sub, service.ValidName(*name).Error())
	case cf.server == "":
		return usageError(stderr, sub, "--server is required")
	case cf.user == "":
		return usageError(stderr, sub, "--user is required")
	case modes > 1:
		return usageError(stderr, sub, "choose one of --tls, --starttls and --plaintext")
	case sources > 1:
		return usageError(stderr, sub, "choose one of --password-env, --password-file and --password-cmd")
	}
	c, err := af.client(stderr, sub)
	if err != nil {
		return err
	}
	acc := service.Account{Name: *name, Server: cf.server, Mode: mode, User: cf.user, Mailboxes: mailboxes}
	if cf.caFile != "" {
		pem, err := os.ReadFile(cf.caFile)
		if err != nil {
			return fmt.Errorf("CA file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA file %s holds no PEM certificate", cf.caFile)
		}
		acc.CAPEM = string(pem)
	}
	// A new account needs a password; an update keeps the stored one
	// unless a source is given.
	if sub == "add" || cf.passwordEnv != "" || cf.passFile != "" || cf.passCmd != "" {
		if acc.Password, err = cf.password(ctx); err != nil {
			return err
		}
	}
	body, err := json.Marshal(acc)
	if err != nil {
		return err
	}
	cond, did := "If-None-Match", "added"
	if sub == "update" {
		cond, did = "If-Match", "updated"
	}
	if _, err := c.do(ctx, http.MethodPut, accountPath(*name), body, cond, "*"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "account %s %s\n", *name, did)
	return nil
}

func runAccountRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newSubFlags("rm")
	var af apiFlags
	af.register(fs)
	name := fs.String("name", "", "the `NAME` of the account to remove")
	if err := accountsUsages["rm"].parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	switch {
	case *name == "":
		return usageError(stderr, "rm", "--name is required")
	case service.ValidName(*name) != nil:
		return usageError(stderr, "rm", service.ValidName(*name).Error())
	}
	c, err := af.client(stderr, "rm")
	if err != nil {
		return err
	}
	if _, err := c.do(ctx, http.MethodDelete, accountPath(*name), nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "account %s removed\n", *name)
	return nil
}

func runAccountLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newSubFlags("ls")
	var af apiFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per account and line, as the API gives it")
	if err := accountsUsages["ls"].parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	c, err := af.client(stderr, "ls")
	if err != nil {
		return err
	}
	b, err := c.do(ctx, http.MethodGet, "/v1/accounts", nil)
	if err != nil {
		return err
	}
	var list struct {
		Accounts []json.RawMessage `json:"accounts"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("API reply to GET /v1/accounts: %w", err)
	}
	if *asJSON {
		for _, raw := range list.Accounts {
			var line bytes.Buffer
			if err := json.Compact(&line, raw); err != nil {
				return fmt.Errorf("API reply to GET /v1/accounts: %w", err)
			}
			line.WriteByte('\n')
			if _, err := stdout.Write(line.Bytes()); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERVER\tUSER\tMODE\tMAILBOXES")
	for _, raw := range list.Accounts {
		var a service.Account
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("API reply to GET /v1/accounts: %w", err)
		}
		mode, boxes := a.Mode, strings.Join(a.Mailboxes, ",")
		if mode == "" {
			mode = service.ModeTLS
		}
		if boxes == "" {
			boxes = "INBOX"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Server, a.User, mode, boxes)
	}
	return tw.Flush()
}

// accountPath is the API path of the named account.
func accountPath(name string) string {
	return "/v1/accounts/" + url.PathEscape(name)
}

// apiClient sends requests to the API of imapkit serve.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// client checks the flags and reads the token.
func (f *apiFlags) client(stderr io.Writer, sub string) (*apiClient, error) {
	if f.url == "" {
		return nil, usageError(stderr, sub, "--api is required")
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError(stderr, sub, fmt.Sprintf("--api %q: want http://HOST:PORT or https://HOST:PORT", f.url))
	}
	if f.timeout <= 0 {
		return nil, usageError(stderr, sub, fmt.Sprintf("--timeout %v: want a positive duration", f.timeout))
	}
	c := &apiClient{base: u, http: &http.Client{Timeout: f.timeout}}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("API token file: %w", err)
		}
		if c.token = strings.TrimSpace(firstLine(b)); c.token == "" {
			return nil, fmt.Errorf("API token file %s: the first line is empty", f.tokenFile)
		}
	}
	return c, nil
}

// apiError is a failure the API replied.
type apiError struct {
	method, path string
	status       int
	msg          string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%s (%s %s: HTTP %d %s)", e.msg, e.method, e.path, e.status, http.StatusText(e.status))
	if e.status == http.StatusUnauthorized {
		s += " (hint: pass a file holding the token of serve's --api-token-file with --api-token-file)"
	}
	return s
}

// do sends a request with body (JSON, if any) and the header pairs given,
// and returns the reply's body; a reply of 400 or more is an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, header ...string) ([]byte, error) {
	u := c.base.JoinPath(path)
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The request's own error names the method and URL, never the
		// body or the token. Not wrapped: the hints for IMAP servers
		// (hint.go) do not fit here.
		return nil, fmt.Errorf("cannot reach the API: %v (is imapkit serve running with --http there?)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
	}
	if resp.StatusCode < 400 {
		return b, nil
	}
	e := &apiError{method: method, path: path, status: resp.StatusCode}
	var reply struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &reply) == nil && reply.Error != "" {
		e.msg = reply.Error
	} else {
		e.msg = "the API failed"
		if s := strings.TrimSpace(string(b)); s != "" && len(s) < 200 && !strings.ContainsAny(s, "\n\x00") {
			e.msg += ": " + s
		}
	}
	return nil, e
}
