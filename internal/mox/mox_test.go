package mox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap"
)

// dial connects to srv and logs in: with STARTTLS on Addr, or implicit
// TLS on TLSAddr, verifying the certificate against srv.CertPool.
func dial(t *testing.T, srv *Server, implicitTLS bool, user, password string) *imap.Client {
	t.Helper()
	ctx := context.Background()
	opts := &imap.Options{Timeout: 20 * time.Second, TLSConfig: &tls.Config{RootCAs: srv.CertPool}}
	var c *imap.Client
	var err error
	if implicitTLS {
		// The certificate holds the DNS name localhost too.
		opts.TLSConfig.ServerName = "localhost"
		c, err = imap.DialTLS(ctx, srv.TLSAddr, opts)
	} else {
		// ServerName is taken from the address: 127.0.0.1.
		c, err = imap.DialStartTLS(ctx, srv.Addr, opts)
	}
	if err != nil {
		t.Fatalf("dial (implicit TLS %v): %v\n%s", implicitTLS, err, srv.Logs())
	}
	t.Cleanup(func() { c.Shutdown() })
	if !c.IsTLS() {
		t.Fatal("connection is not TLS")
	}
	if _, err := c.Login(ctx, user, password); err != nil {
		t.Fatalf("LOGIN %s: %v\n%s", user, err, srv.Logs())
	}
	return c
}

func newUser(t *testing.T, srv *Server) (name, password string) {
	t.Helper()
	name, password, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	return name, password
}

func TestServer(t *testing.T) {
	start := time.Now()
	srv := StartT(t)
	t.Logf("started %s in %v: IMAP %s, IMAPS %s", srv.Version(), time.Since(start), srv.Addr, srv.TLSAddr)
	if v := srv.Version(); v != "mox v0.0.15" {
		t.Errorf("Version() = %q, want %q", v, "mox v0.0.15")
	}
	ctx := context.Background()

	t.Run("Login", func(t *testing.T) {
		begin := time.Now()
		user, pass := newUser(t, srv)
		t.Logf("NewUser took %v", time.Since(begin))
		for _, implicit := range []bool{false, true} {
			c := dial(t, srv, implicit, user, pass)
			caps := c.Capabilities()
			t.Logf("implicit TLS %v: CAPABILITY after login: %s", implicit, strings.Join(caps, " "))
			for _, want := range []string{"IMAP4REV2", "IDLE", "NOTIFY"} {
				if !c.Has(want) {
					t.Errorf("implicit TLS %v: no %s in %v", implicit, want, caps)
				}
			}
			if _, err := c.Logout(ctx); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("TLSVerified", func(t *testing.T) {
		// A client that does not trust CertPool refuses the server.
		c, err := imap.DialTLS(ctx, srv.TLSAddr, &imap.Options{TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
		if err == nil {
			c.Shutdown()
			t.Fatal("DialTLS trusted the server without its certificate")
		}
	})

	t.Run("UsersIsolated", func(t *testing.T) {
		alice, alicePass := newUser(t, srv)
		bob, bobPass := newUser(t, srv)
		if alice == bob {
			t.Fatalf("NewUser returned %s twice", alice)
		}
		a := dial(t, srv, true, alice, alicePass)
		b := dial(t, srv, false, bob, bobPass)
		if _, err := a.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: for alice\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		count := func(c *imap.Client) string {
			res, err := c.Status(ctx, "INBOX", "(MESSAGES)")
			if err != nil {
				t.Fatal(err)
			}
			return string(res.Data[0].Text)
		}
		if got := count(a); !strings.HasSuffix(got, "(MESSAGES 1)") {
			t.Errorf("alice's STATUS = %q, want MESSAGES 1", got)
		}
		if got := count(b); !strings.HasSuffix(got, "(MESSAGES 0)") {
			t.Errorf("bob's STATUS = %q, want MESSAGES 0", got)
		}
		// Each password opens its own account only.
		c, err := imap.DialTLS(ctx, srv.TLSAddr, &imap.Options{TLSConfig: &tls.Config{RootCAs: srv.CertPool}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Shutdown()
		if _, err := c.Login(ctx, bob, alicePass); err == nil {
			t.Errorf("%s logged in with %s's password", bob, alice)
		}
	})

	t.Run("IdlePush", func(t *testing.T) {
		user, pass := newUser(t, srv)
		idler := dial(t, srv, true, user, pass)
		other := dial(t, srv, false, user, pass)
		if _, err := idler.Select(ctx, "INBOX", false); err != nil {
			t.Fatal(err)
		}
		id, err := idler.Idle(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		appended := time.Now()
		if _, err := other.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: push\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
		deadline := appended.Add(2 * time.Second)
		for {
			r, ok, err := id.Next(time.Until(deadline))
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Fatalf("no EXISTS within 2 s of the APPEND\n%s", srv.Logs())
			}
			if r.Type == "EXISTS" && string(r.Data[0].Text) == "1" {
				t.Logf("EXISTS %v after the APPEND was sent", time.Since(appended))
				break
			}
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestStop(t *testing.T) {
	if testing.Short() {
		t.Skip("needs mox: skipped with -short")
	}
	srv, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	pid := srv.proc.Pid()
	// Stop ends mox even while a session is open (mox then waits 3 s).
	user, pass := newUser(t, srv)
	dial(t, srv, true, user, pass)
	begin := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(begin))
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("mox (pid %d) still exists after Stop: kill 0 = %v", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still exists after Stop: kill 0 = %v", pid, err)
	}
	if _, err := os.Stat(srv.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop (%v)", srv.Dir, err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if logs := srv.Logs(); !strings.Contains(logs, "shutting down") {
		t.Errorf("Logs after Stop lack mox's shutdown message:\n%s", logs)
	}
	if _, _, err := srv.NewUser(); err == nil {
		t.Error("NewUser after Stop succeeded")
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("IMAPKIT_INTEROP_DIR", t.TempDir())
	s, err := Start()
	if err == nil {
		s.Stop()
		t.Fatal("Start succeeded without a mox binary")
	}
	if !strings.Contains(err.Error(), "scripts/deps-mox.sh") {
		t.Errorf("error does not say to run scripts/deps-mox.sh: %v", err)
	}
}

func TestDropSection(t *testing.T) {
	conf := "Domains:\n\tlocalhost:\n\t\tX: 1\n\n# doc\nWebHandlers:\n\t-\n\t\tLogName: workdir\nAccounts:\n\tmox: nil\n"
	want := "Domains:\n\tlocalhost:\n\t\tX: 1\n\n# doc\nAccounts:\n\tmox: nil\n"
	if got := dropSection(conf, "WebHandlers"); got != want {
		t.Errorf("dropSection = %q, want %q", got, want)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v0.0.15-go1.26.8\nlinux/amd64\n": "v0.0.15",
		"v0.0.15\n":                       "v0.0.15",
	} {
		if got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
