package dovecot

import (
	"bufio"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// conn is a raw IMAP connection for tests.
type conn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func newConn(t *testing.T, c net.Conn) *conn {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, r: bufio.NewReader(c)}
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newConn(t, c)
}

func (c *conn) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading response (got %q): %v", l, err)
	}
	return strings.TrimRight(l, "\r\n")
}

// greeting reads the greeting and checks its prefix.
func (c *conn) greeting(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("greeting %q, want prefix %q", l, prefix)
	}
	return l
}

// cmd sends "TAG CMD" and returns the untagged lines and the tagged line,
// failing unless the tagged status is OK.
func (c *conn) cmd(tag, command string) (untagged []string, tagged string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.c, "%s %s\r\n", tag, command); err != nil {
		c.t.Fatalf("writing %s: %v", command, err)
	}
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				c.t.Fatalf("%s: %s", command, l)
			}
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

func (c *conn) login(user, pass string) {
	c.t.Helper()
	c.cmd("a", fmt.Sprintf("LOGIN %s %s", user, pass))
}

func TestGreetingAndTLS(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	dial(t, s.Addr).greeting("* OK")

	for _, name := range []string{"localhost", "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.TLSAddr,
				&tls.Config{RootCAs: s.CertPool, ServerName: name})
			if err != nil {
				t.Fatalf("TLS dial %s as %s: %v", s.TLSAddr, name, err)
			}
			newConn(t, c).greeting("* OK")
		})
	}
}

func TestStreamCommand(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	user, _, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", s.StreamCommand(user))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	done := make(chan struct{})
	quit := make(chan struct{})
	defer func() {
		close(quit)
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(done)
		defer cmd.Wait()
		r := bufio.NewReader(stdout)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			select {
			case lines <- strings.TrimRight(l, "\r\n"):
			case <-quit:
				io.Copy(io.Discard, r)
				close(lines)
				return
			}
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: output ended; stderr: %s", s.StreamCommand(user), stderr.String())
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no output; stderr: %s", s.StreamCommand(user), stderr.String())
		}
		return ""
	}
	if l := next(); !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("stream greeting %q, want * PREAUTH", l)
	}
	fmt.Fprintf(stdin, "a GETQUOTAROOT INBOX\r\n")
	for {
		l := next()
		if strings.HasPrefix(l, "a ") {
			if !strings.HasPrefix(l, "a OK") {
				t.Fatalf("GETQUOTAROOT: %s", l)
			}
			break
		}
	}
	fmt.Fprintf(stdin, "b LOGOUT\r\n")
}

// lockedBuffer collects a process's stderr while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLoginAndDeliver(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	user, pass, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([][]byte, 100)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf("From: a@example.com\r\nTo: %s@example.com\r\nSubject: message %d\r\n\r\nBody %d\r\n", user, i+1, i+1))
	}
	if err := s.DeliverMaildir(user, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliverMaildir(user, "Archive/2024", msgs[:3]); err != nil {
		t.Fatal(err)
	}

	c := dial(t, s.Addr)
	c.greeting("* OK")
	c.login(user, pass)
	untagged, _ := c.cmd("b", "SELECT INBOX")
	if !contains(untagged, "* 100 EXISTS") {
		t.Errorf("SELECT INBOX: got %q, want * 100 EXISTS", untagged)
	}
	untagged, _ = c.cmd("c", "FETCH 100 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
	if !strings.Contains(strings.Join(untagged, "\n"), "Subject: message 100") {
		t.Errorf("FETCH 100: got %q, want subject of the last message", untagged)
	}
	untagged, _ = c.cmd("d", "STATUS Archive/2024 (MESSAGES)")
	if !contains(untagged, "* STATUS Archive/2024 (MESSAGES 3)") {
		t.Errorf("STATUS: got %q", untagged)
	}
	untagged, _ = c.cmd("e", "GETQUOTAROOT INBOX")
	if !strings.Contains(strings.Join(untagged, "\n"), "* QUOTA ") {
		t.Errorf("GETQUOTAROOT: got %q", untagged)
	}

	// Deliveries while the mailbox is selected show up at the next sync,
	// and folders created on disk after login show up in LIST.
	if err := s.DeliverMaildir(user, "INBOX", msgs[:2]); err != nil {
		t.Fatal(err)
	}
	untagged, _ = c.cmd("f", "NOOP")
	if !contains(untagged, "* 102 EXISTS") {
		t.Errorf("NOOP after delivering 2 more: got %q, want * 102 EXISTS", untagged)
	}
	if err := s.DeliverMaildir(user, "Later", msgs[:1]); err != nil {
		t.Fatal(err)
	}
	untagged, _ = c.cmd("g", `LIST "" *`)
	if !strings.Contains(strings.Join(untagged, "\n"), `"/" Later`) {
		t.Errorf("LIST after delivering to a new folder: got %q", untagged)
	}

	// UIDs follow delivery order across calls; non-ASCII names work.
	for i := 0; i < 3; i++ {
		if err := s.DeliverMaildir(user, "Grüße", msgs[2*i:2*i+2]); err != nil {
			t.Fatal(err)
		}
	}
	c.cmd("h", "SELECT Gr&APwA3w-e")
	untagged, _ = c.cmd("i", "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	var subjects []string
	for _, l := range untagged {
		if strings.HasPrefix(l, "Subject: ") {
			subjects = append(subjects, l)
		}
	}
	want := []string{"Subject: message 1", "Subject: message 2", "Subject: message 3",
		"Subject: message 4", "Subject: message 5", "Subject: message 6"}
	if strings.Join(subjects, ",") != strings.Join(want, ",") {
		t.Errorf("subjects in UID order: %q, want %q", subjects, want)
	}

	// A wrong password is refused (promptly: auth_failure_delay = 0).
	c2 := dial(t, s.Addr)
	c2.greeting("* OK")
	fmt.Fprintf(c2.c, "a LOGIN %s wrong\r\n", user)
	if l := c2.line(); !strings.HasPrefix(l, "a NO") {
		t.Errorf("LOGIN with wrong password: %q", l)
	}
	user2, pass2, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	if user2 == user {
		t.Fatalf("NewUser returned %q twice", user)
	}
	c2.login(user2, pass2)

	// Dovecot re-reads the passwd-file: a user added after the first
	// authentications can log in as soon as AddUser returns.
	if err := s.AddUser("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("alice", "other"); err == nil {
		t.Error("AddUser of an existing user: want error")
	}
	c3 := dial(t, s.Addr)
	c3.greeting("* OK")
	c3.login("alice", "secret")
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestKillIMAP(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	user, pass, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	other, otherPass, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr)
	c.greeting("* OK")
	c.login(user, pass)
	c.cmd("b", "SELECT INBOX")
	o := dial(t, s.Addr)
	o.greeting("* OK")
	o.login(other, otherPass)

	pids, err := s.IMAPPIDs(user)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 {
		t.Fatalf("IMAPPIDs(%q) = %v, want one pid", user, pids)
	}
	if err := s.KillIMAP(user); err != nil {
		t.Fatal(err)
	}
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("after KillIMAP: read %q, %v; want EOF", l, err)
	}
	if err != io.EOF {
		t.Logf("after KillIMAP: read error %v (not EOF)", err)
	}
	if pids, err := s.IMAPPIDs(user); err != nil || len(pids) != 0 {
		t.Errorf("IMAPPIDs after KillIMAP = %v, %v; want none", pids, err)
	}
	// The other user's session is unaffected.
	o.cmd("c", "NOOP")
	if err := s.KillIMAP(user); err == nil {
		t.Error("KillIMAP with no session: want error")
	}
}

func TestTwoServers(t *testing.T) {
	t.Parallel()
	a := StartT(t)
	b := StartT(t)
	if a.Addr == b.Addr || a.TLSAddr == b.TLSAddr || a.Dir == b.Dir {
		t.Fatalf("servers share addresses or dirs: %+v %+v", a, b)
	}
	for _, s := range []*Server{a, b} {
		user, pass, err := s.NewUser()
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, s.Addr)
		c.greeting("* OK")
		c.login(user, pass)
	}
	dir := a.Dir
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left %s behind: %v", dir, err)
	}
	if c, err := net.DialTimeout("tcp", a.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("stopped server still accepts on %s", a.Addr)
	}
	// b still works.
	dial(t, b.Addr).greeting("* OK")
}

func TestConfigKnobs(t *testing.T) {
	t.Parallel()
	s := StartTConfig(t, Config{DisableIDLE: true, IdleNotifyInterval: time.Second, MaxUserIPConnections: 3})
	user, pass, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr)
	if g := c.greeting("* OK"); strings.Contains(g, " IDLE") {
		t.Errorf("greeting with DisableIDLE: %q", g)
	}
	c.login(user, pass)
	untagged, _ := c.cmd("b", "CAPABILITY")
	if len(untagged) != 1 || !strings.Contains(untagged[0], "IMAP4rev1") || strings.Contains(untagged[0], " IDLE") ||
		!strings.Contains(untagged[0], " QUOTA") {
		t.Errorf("CAPABILITY with DisableIDLE: %q", untagged)
	}
	c.cmd("c", "SELECT INBOX")
	fmt.Fprintf(c.c, "d IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	if l := c.line(); l != "* OK Still here" {
		t.Errorf("during IDLE with 1s notify interval: %q", l)
	}
	fmt.Fprintf(c.c, "DONE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "d OK") {
		t.Errorf("IDLE end: %q", l)
	}

	// MaxUserIPConnections: 3 sessions are allowed, the 4th is refused.
	for i := 2; i <= 3; i++ {
		c := dial(t, s.Addr)
		c.greeting("* OK")
		c.login(user, pass)
	}
	c4 := dial(t, s.Addr)
	c4.greeting("* OK")
	fmt.Fprintf(c4.c, "a LOGIN %s %s\r\n", user, pass)
	if l := c4.line(); strings.HasPrefix(l, "a OK") {
		t.Errorf("4th LOGIN with MaxUserIPConnections 3: %q", l)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	user, pass, err := s.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("PLAIN", func(t *testing.T) {
		c := dial(t, s.Addr)
		c.greeting("* OK")
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		c.cmd("a", "AUTHENTICATE PLAIN "+ir)
	})
	t.Run("CRAM-MD5", func(t *testing.T) {
		c := dial(t, s.Addr)
		c.greeting("* OK")
		fmt.Fprintf(c.c, "a AUTHENTICATE CRAM-MD5\r\n")
		l := c.line()
		challenge, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
		if !strings.HasPrefix(l, "+ ") || err != nil {
			t.Fatalf("CRAM-MD5 challenge %q: %v", l, err)
		}
		mac := hmac.New(md5.New, []byte(pass))
		mac.Write(challenge)
		resp := user + " " + hex.EncodeToString(mac.Sum(nil))
		fmt.Fprintf(c.c, "%s\r\n", base64.StdEncoding.EncodeToString([]byte(resp)))
		if l := c.line(); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("CRAM-MD5: %q", l)
		}
	})
}

func TestManySessionKnobs(t *testing.T) {
	t.Parallel()
	s := StartTConfig(t, Config{MaxSessions: 1500, IdleCheckInterval: 1500 * time.Millisecond, LoginProcesses: 2})
	conf, err := os.ReadFile(s.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"service imap {\n  process_limit = 1600\n}", "default_process_limit = 1600", "mailbox_idle_check_interval = 2 secs", "  service_count = 0\n  process_min_avail = 2\n"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("config lacks %q", want)
		}
	}

	users, err := s.NewUsers(1200) // more than the pool holds
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u.Name] || u.Password == "" {
			t.Fatalf("NewUsers: repeated or empty user %+v", u)
		}
		seen[u.Name] = true
	}
	name, _, err := s.NewUser()
	if err != nil || seen[name] {
		t.Fatalf("NewUser after NewUsers: %q, %v", name, err)
	}

	// The last user is the one written last: it can log in at once.
	var conns []*conn
	for _, u := range []User{users[0], users[len(users)-1]} {
		c := dial(t, s.Addr)
		c.greeting("* OK")
		c.login(u.Name, u.Password)
		c.cmd("b", "SELECT INBOX")
		conns = append(conns, c)
	}
	fmt.Fprintf(conns[1].c, "c IDLE\r\n")
	if l := conns[1].line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	var total, idling int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if total, idling, err = s.IMAPSessions(); err != nil {
			t.Fatal(err)
		}
		if total == 2 && idling == 1 {
			break
		}
	}
	if total != 2 || idling != 1 {
		t.Errorf("IMAPSessions = %d, %d; want 2 sessions, 1 idling", total, idling)
	}
}

func TestCPUTime(t *testing.T) {
	t.Parallel()
	s := StartT(t)
	t0, err := s.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	if t0 <= 0 {
		t.Errorf("CPUTime = %v after starting, want more than 0", t0)
	}
	// Logins fork imap processes (and log in, tens of ms of CPU each),
	// whose CPU time counts once they have exited too.
	for range 5 {
		c := dial(t, s.Addr)
		c.greeting("* OK")
		user, pass, err := s.NewUser()
		if err != nil {
			t.Fatal(err)
		}
		c.login(user, pass)
		c.cmd("b", "LOGOUT")
		c.c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		t1, err := s.CPUTime()
		if err != nil {
			t.Fatal(err)
		}
		if t1 > t0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPUTime still %v after five logins (before: %v)", t1, t0)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
