package courier

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap"
)

// options returns client options trusting the server's certificate, with
// a timeout short enough for tests.
func options(s *Server) *imap.Options {
	return &imap.Options{
		Timeout:   20 * time.Second,
		TLSConfig: &tls.Config{RootCAs: s.CertPool},
	}
}

// login dials s the given way ("starttls", "tls" or "plain") and logs in.
func login(t *testing.T, s *Server, how, user, password string) *imap.Client {
	t.Helper()
	ctx := context.Background()
	var c *imap.Client
	var err error
	switch how {
	case "starttls":
		c, err = imap.DialStartTLS(ctx, s.Addr, options(s))
	case "tls":
		c, err = imap.DialTLS(ctx, s.TLSAddr, options(s))
	case "plain":
		o := options(s)
		o.InsecureAuth = true
		c, err = imap.Dial(ctx, s.Addr, o)
	default:
		t.Fatalf("unknown way %q", how)
	}
	if err != nil {
		t.Fatalf("dial (%s): %v\n%s", how, err, s.Logs())
	}
	t.Cleanup(func() { c.Shutdown() })
	if _, err := c.Login(ctx, user, password); err != nil {
		t.Fatalf("LOGIN %s (%s): %v\n%s", user, how, err, s.Logs())
	}
	return c
}

func newUser(t *testing.T, s *Server) (string, string) {
	t.Helper()
	name, password, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	return name, password
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	if !regexp.MustCompile(`^Courier-IMAP \d+\.\d+`).MatchString(s.Version()) {
		t.Errorf("Version() = %q", s.Version())
	}
	user, password := newUser(t, s)
	for _, how := range []string{"starttls", "tls", "plain"} {
		t.Run(how, func(t *testing.T) {
			c := login(t, s, how, user, password)
			if c.State() != imap.StateAuth {
				t.Fatalf("state after LOGIN = %v", c.State())
			}
			if got, want := c.IsTLS(), how != "plain"; got != want {
				t.Errorf("IsTLS() = %v, want %v", got, want)
			}
			caps := c.Capabilities()
			t.Logf("%s: capabilities after login: %s", how, strings.Join(caps, " "))
			if !c.Has("IDLE") || !c.Has("UIDPLUS") {
				t.Errorf("capabilities %v lack IDLE or UIDPLUS", caps)
			}
			if _, err := c.Select(context.Background(), "INBOX", false); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Logout(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUsersIsolated(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	ctx := context.Background()
	alice, alicePW := newUser(t, s)
	bob, bobPW := newUser(t, s)
	a := login(t, s, "tls", alice, alicePW)
	if _, err := a.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: for alice\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(ctx, "INBOX.Private"); err != nil {
		t.Fatal(err)
	}

	b := login(t, s, "tls", bob, bobPW)
	st, err := b.StatusMailbox(ctx, "INBOX", "(MESSAGES)")
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 0 {
		t.Errorf("bob's INBOX holds %d messages, want 0", st.Messages)
	}
	res, err := b.List(ctx, "", "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Texts() {
		if strings.Contains(l, "Private") {
			t.Errorf("bob sees alice's folder: %s", l)
		}
	}
	if st, err := a.StatusMailbox(ctx, "INBOX", "(MESSAGES)"); err != nil || st.Messages != 1 {
		t.Errorf("alice's INBOX: %+v, %v; want 1 message", st, err)
	}

	// Neither password opens the other's account.
	c, err := imap.DialTLS(ctx, s.TLSAddr, options(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if _, err := c.Login(ctx, bob, alicePW); err == nil {
		t.Errorf("bob logged in with alice's password")
	}
}

func TestIdlePush(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	ctx := context.Background()
	user, password := newUser(t, s)
	c := login(t, s, "tls", user, password)
	other := login(t, s, "starttls", user, password)
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		t.Fatal(err)
	}
	id, err := c.Idle(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := other.Append(ctx, "INBOX", "", time.Time{}, []byte("Subject: push\r\n\r\nnew mail\r\n")); err != nil {
		t.Fatal(err)
	}
	const within = 3 * time.Second
	deadline := start.Add(within)
	for {
		r, ok, err := id.Next(time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Fatalf("no EXISTS within %v of the APPEND (is enhanced IDLE on?)\n%s", within, s.Logs())
		}
		if r.Type == "EXISTS" && r.Last() == "1" {
			t.Logf("EXISTS pushed %v after the APPEND started", time.Since(start).Round(time.Millisecond))
			break
		}
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs Courier-IMAP: skipped with -short")
	}
	start := time.Now()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(start).Round(time.Millisecond))
	// A logged-in session and an idling one add imapd, couriertls and
	// gam_server processes.
	user, password := newUser(t, s)
	c := login(t, s, "tls", user, password)
	if _, err := c.Select(context.Background(), "INBOX", false); err != nil {
		t.Fatal(err)
	}
	id, err := c.Idle(context.Background(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	ns, err := os.Readlink("/proc/" + strconv.Itoa(s.proc.Pid()) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	pids, err := s.pids()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) < 4 {
		t.Errorf("only %d processes in the server's namespace: %v", len(pids), pids)
	}
	dir := s.Dir

	start = time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start).Round(time.Millisecond))
	if left, err := pidsIn(ns); err != nil || len(left) > 0 {
		t.Errorf("processes left in the namespace after Stop: %v, %v", left, err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still exists after Stop: %v", dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
