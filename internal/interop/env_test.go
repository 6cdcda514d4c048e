package interop

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
)

// env is one check's world: a server, a fresh user on it, and a client
// logged in as that user over STARTTLS.
type env struct {
	t       *testing.T
	srv     *server
	prof    profile
	check   *check
	user    string
	pass    string
	c       *imap.Client
	prefix  string // the personal namespace's prefix, e.g. "" or "INBOX."
	delim   string // its hierarchy delimiter
	timeout time.Duration
}

// ctx returns a context that ends with the test.
func (e *env) ctx() context.Context { return e.t.Context() }

func newEnv(t *testing.T, srv *server, prof profile, ch *check) *env {
	t.Helper()
	user, pass, err := srv.newUser()
	if err != nil {
		t.Fatalf("%s: new user: %v", srv.name, err)
	}
	e := &env{t: t, srv: srv, prof: prof, check: ch, user: user, pass: pass, timeout: 20 * time.Second}
	e.c = e.dial()
	ns := e.must("NAMESPACE")(e.c.Namespace(e.ctx()))
	e.prefix, e.delim = personalNamespace(ns)
	return e
}

// options are the client options of every connection of a check.
func (e *env) options() *imap.Options {
	return &imap.Options{Timeout: e.timeout, TLSConfig: e.srv.tlsConfig(), StreamStderr: io.Discard}
}

// dial opens another connection as the check's user (STARTTLS, verified),
// closed when the test ends.
func (e *env) dial() *imap.Client {
	e.t.Helper()
	c, err := imap.DialStartTLS(e.ctx(), e.srv.addr, e.options())
	if err != nil {
		e.fatalf("STARTTLS dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	if _, err := c.Login(e.ctx(), e.user, e.pass); err != nil {
		e.fatalf("LOGIN: %v", err)
	}
	return c
}

// box names a mailbox under the personal namespace: "Work" is
// "INBOX.Work" on Courier.
func (e *env) box(name string) string {
	if name == "INBOX" {
		return name
	}
	return e.prefix + strings.ReplaceAll(name, "/", e.delim)
}

// has reports whether the connection offers capability; a capability the
// profile says is lacking must really be absent.
func (e *env) has(capability string) bool {
	e.t.Helper()
	got := e.c.Has(capability)
	if lacked := e.prof.lacksCap(capability); got && lacked {
		e.errorf("offers %s, which the differences table says it lacks", capability)
	} else if !got && !lacked {
		e.errorf("does not offer %s, and the differences table does not say so (capabilities %v)", capability, e.c.Capabilities())
	}
	return got
}

// quirk returns how the server differs in this check, if it does.
func (e *env) quirk() (string, bool) {
	q, ok := e.prof.quirks[e.check.name]
	return q, ok
}

func (e *env) fatalf(format string, args ...any) {
	e.t.Helper()
	e.t.Fatalf("%s: "+format+"%s", append(append([]any{e.srv.name}, args...), e.logTail())...)
}

func (e *env) errorf(format string, args ...any) {
	e.t.Helper()
	e.t.Errorf("%s: "+format, append([]any{e.srv.name}, args...)...)
}

func (e *env) logTail() string {
	if e.srv.logs == nil {
		return ""
	}
	if l := e.srv.logs(); l != "" {
		return "\nserver log:\n" + l
	}
	return ""
}

// must fails the check unless the command ended OK.
func (e *env) must(what string) func(imap.Result, error) imap.Result {
	return func(r imap.Result, err error) imap.Result {
		e.t.Helper()
		if err != nil {
			e.fatalf("%s: %v", what, err)
		}
		if r.Status != "OK" {
			e.fatalf("%s: status %q", what, r.Status)
		}
		return r
	}
}

// refused checks that a command the server does not support was answered
// NO or BAD and that the connection is still usable.
func (e *env) refused(what string, err error) {
	e.t.Helper()
	if !errors.Is(err, imap.ErrCommand) {
		e.errorf("%s: got %v, want the server's refusal (ErrCommand)", what, err)
	}
	if _, err := e.c.Noop(e.ctx()); err != nil {
		e.errorf("NOOP after the refused %s: %v", what, err)
	}
}

// namespaceRE matches the first personal namespace of a NAMESPACE reply.
var namespaceRE = regexp.MustCompile(`^\(\("((?:[^"\\]|\\.)*)" (?:"((?:[^"\\]|\\.)*)"|NIL)\)`)

// personalNamespace returns the first personal namespace's prefix and
// delimiter, "" and "/" when the server has none.
func personalNamespace(r imap.Result) (prefix, delim string) {
	for _, t := range r.Texts() {
		if m := namespaceRE.FindStringSubmatch(t); m != nil {
			if m[2] == "" {
				m[2] = "/"
			}
			return m[1], m[2]
		}
	}
	return "", "/"
}

// message is a small RFC 5322 message with the given subject.
func message(subject string) []byte {
	return []byte("From: ada@example.org\r\nTo: bob@example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n\r\nbody of " + subject + "\r\n")
}
