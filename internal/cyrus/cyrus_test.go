package cyrus_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/cyrus"
)

// connect connects to srv over STARTTLS on Addr ("starttls") or implicit
// TLS on TLSAddr ("tls"), verifying the certificate with CertPool, or
// without TLS on Addr ("plain").
func connect(t *testing.T, srv *cyrus.Server, how string) *imap.Client {
	t.Helper()
	ctx := context.Background()
	opts := &imap.Options{Timeout: 20 * time.Second, TLSConfig: &tls.Config{RootCAs: srv.CertPool}}
	var c *imap.Client
	var err error
	switch how {
	case "starttls":
		c, err = imap.DialStartTLS(ctx, srv.Addr, opts)
	case "tls":
		c, err = imap.DialTLS(ctx, srv.TLSAddr, opts)
	case "plain":
		opts.InsecureAuth = true
		c, err = imap.Dial(ctx, srv.Addr, opts)
	default:
		t.Fatalf("unknown connection kind %q", how)
	}
	if err != nil {
		t.Fatalf("connecting (%s): %v\n%s", how, err, srv.Logs())
	}
	t.Cleanup(func() { c.Shutdown() })
	if c.IsTLS() != (how != "plain") {
		t.Fatalf("%s: IsTLS() = %v", how, c.IsTLS())
	}
	return c
}

// login connects as connect does and logs in with LOGIN.
func login(t *testing.T, srv *cyrus.Server, how, user, password string) *imap.Client {
	t.Helper()
	c := connect(t, srv, how)
	if _, err := c.Login(context.Background(), user, password); err != nil {
		t.Fatalf("LOGIN %s (%s): %v\n%s", user, how, err, srv.Logs())
	}
	return c
}

func newUser(t *testing.T, srv *cyrus.Server) (string, string) {
	t.Helper()
	name, password, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	return name, password
}

func must(t *testing.T, what string) func(imap.Result, error) imap.Result {
	return func(r imap.Result, err error) imap.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.Status != "OK" {
			t.Fatalf("%s: status %q", what, r.Status)
		}
		return r
	}
}

func TestCyrus(t *testing.T) {
	start := time.Now()
	srv := cyrus.StartT(t)
	t.Logf("%s started in %v in %s (IMAP %s, IMAPS %s)", srv.Version(), time.Since(start).Round(time.Millisecond), srv.Dir, srv.Addr, srv.TLSAddr)
	if !strings.HasPrefix(srv.Version(), "Cyrus IMAP 3.") {
		t.Errorf("Version() = %q", srv.Version())
	}

	for _, how := range []string{"starttls", "tls", "plain"} {
		t.Run("login/"+how, func(t *testing.T) {
			user, password := newUser(t, srv)
			c := login(t, srv, how, user, password)
			ctx := context.Background()
			capa := must(t, "CAPABILITY")(c.Capability(ctx))
			t.Logf("CAPABILITY after login: %s", strings.Join(capa.Texts(), " "))
			for _, capa := range []string{"IDLE", "UIDPLUS", "MOVE", "CONDSTORE"} {
				if !c.Has(capa) {
					t.Errorf("no %s after login", capa)
				}
			}
			// INBOX was created at the first login.
			sel := must(t, "SELECT INBOX")(c.Select(ctx, "INBOX", false))
			if got := sel.Texts(); len(got) != 1 || got[0] != "0" {
				t.Errorf("SELECT INBOX of a new user: EXISTS %q, want [0]", got)
			}
			if _, err := c.Logout(ctx); err != nil {
				t.Fatalf("LOGOUT: %v", err)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		user, _ := newUser(t, srv)
		c := connect(t, srv, "tls")
		start := time.Now()
		if _, err := c.Login(context.Background(), user, "wrong"); !errors.Is(err, imap.ErrCommand) {
			t.Fatalf("LOGIN %s with a wrong password: %v, want a NO", user, err)
		}
		// failedloginpause is off: no 3 s wait.
		if d := time.Since(start); d > time.Second {
			t.Errorf("failed LOGIN took %v", d)
		}
	})

	t.Run("authenticate", func(t *testing.T) {
		ctx := context.Background()
		user, password := newUser(t, srv)
		for name, auth := range map[string]func(*imap.Client) (imap.Result, error){
			"PLAIN": func(c *imap.Client) (imap.Result, error) {
				return c.AuthenticateSASL(ctx, sasl.NewPlainClient("", user, password))
			},
			"LOGIN": func(c *imap.Client) (imap.Result, error) {
				return c.AuthenticateSASL(ctx, sasl.NewLoginClient(user, password))
			},
			"CRAM-MD5": func(c *imap.Client) (imap.Result, error) {
				return c.LoginCRAMMD5(ctx, user, password)
			},
		} {
			c := connect(t, srv, "starttls")
			if !c.Has("AUTH=" + name) {
				t.Errorf("AUTH=%s not advertised", name)
			}
			must(t, "AUTHENTICATE "+name)(auth(c))
			must(t, "NOOP")(c.Noop(ctx))
		}
	})

	t.Run("isolation", func(t *testing.T) {
		ctx := context.Background()
		alice, alicePass := newUser(t, srv)
		bob, bobPass := newUser(t, srv)
		a := login(t, srv, "tls", alice, alicePass)
		b := login(t, srv, "starttls", bob, bobPass)
		must(t, "APPEND")(a.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: for alice\r\n\r\nprivate\r\n")))
		must(t, "CREATE")(a.Create(ctx, "Secret"))
		if st, err := a.StatusMailbox(ctx, "INBOX", "(MESSAGES)"); err != nil || st.Messages != 1 {
			t.Fatalf("alice's STATUS INBOX = %+v, %v; want 1 message", st, err)
		}
		if st, err := b.StatusMailbox(ctx, "INBOX", "(MESSAGES)"); err != nil || st.Messages != 0 {
			t.Fatalf("bob's STATUS INBOX = %+v, %v; want 0 messages", st, err)
		}
		boxes, err := b.ListMailboxes(ctx, "", "*")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range boxes {
			names = append(names, e.Name)
		}
		if len(names) != 1 || names[0] != "INBOX" {
			t.Errorf("bob's LIST \"\" * = %q, want only INBOX", names)
		}
		// Alice's mailboxes exist in the other users' namespace, but bob
		// has no rights on them.
		for _, box := range []string{"Other Users/" + alice, "Other Users/" + alice + "/Secret"} {
			if _, err := b.Select(ctx, box, true); err == nil {
				t.Errorf("bob could EXAMINE %q", box)
			} else if !errors.Is(err, imap.ErrCommand) {
				t.Fatalf("EXAMINE %q: %v", box, err)
			}
		}
	})

	t.Run("idle push", func(t *testing.T) {
		ctx := context.Background()
		user, password := newUser(t, srv)
		c := login(t, srv, "tls", user, password)
		other := login(t, srv, "starttls", user, password)
		must(t, "SELECT")(c.Select(ctx, "INBOX", false))
		id, err := c.Idle(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		appended := time.Now()
		must(t, "APPEND")(other.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: push\r\n\r\nx\r\n")))
		deadline := appended.Add(2 * time.Second)
		for {
			r, ok, err := id.Next(time.Until(deadline))
			if err != nil {
				t.Fatalf("waiting for EXISTS: %v", err)
			}
			if !ok {
				t.Fatalf("no EXISTS within 2 s of the APPEND (idled not pushing?)\n%s", srv.Logs())
			}
			if r.Type == "EXISTS" && string(r.Data[0].Text) == "1" {
				t.Logf("EXISTS pushed %v after the APPEND was sent", time.Since(appended).Round(time.Millisecond))
				break
			}
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		must(t, "NOOP")(c.Noop(ctx))
	})

	t.Run("logs", func(t *testing.T) {
		// Cyrus's syslog messages reach Dir/cyrus.log: the logins above.
		if logs := srv.Logs(); !strings.Contains(logs, "login: ") {
			t.Errorf("no login in the logs:\n%s", logs)
		}
	})
}

// serverProcesses returns the pids of the processes whose command line
// names dir: every process of a server does.
func serverProcesses(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestStop(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Cyrus IMAP: skipped with -short")
	}
	srv, err := cyrus.Start()
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	// A session in progress: an imapd process that Stop must end too.
	user, password := newUser(t, srv)
	c := login(t, srv, "starttls", user, password)
	must(t, "SELECT")(c.Select(context.Background(), "INBOX", false))
	dir := srv.Dir
	before := serverProcesses(t, dir)
	// The sandbox shell, master, idled and the session's imapd at least.
	if len(before) < 4 {
		t.Errorf("server processes before Stop: %v, want at least 4", before)
	}
	start := time.Now()
	err = srv.Stop()
	stopped = true
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start).Round(time.Millisecond))
	if left := serverProcesses(t, dir); len(left) > 0 {
		t.Errorf("processes left after Stop: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop: %v", dir, err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
