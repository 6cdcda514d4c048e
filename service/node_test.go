package service

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/internal/natstest"
)

// nodeFixture is a NATS server with imapkit's streams and buckets, a
// Dovecot, and the nodes started on them.
type nodeFixture struct {
	t        *testing.T
	url      string
	storeDir string
	infra    *Infra
	sealer   *Sealer
	srv      *dovecot.Server
	ttl      time.Duration
}

func newNodeFixture(t *testing.T) *nodeFixture {
	t.Helper()
	ns := natstest.Start(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	const ttl = 2 * time.Second
	infra, err := EnsureInfra(t.Context(), js, InfraOptions{LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, KeySize)
	rand.Read(key)
	sealer, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return &nodeFixture{t: t, url: ns.ClientURL(), storeDir: ns.StoreDir(), infra: infra, sealer: sealer, srv: dovecot.StartT(t), ttl: ttl}
}

// account adds a Dovecot user as an account and returns a connection to
// make changes with.
func (f *nodeFixture) account(name string) *imap.Client {
	f.t.Helper()
	user, pass, err := f.srv.NewUser()
	if err != nil {
		f.t.Fatal(err)
	}
	st := NewAccountStore(f.infra.Accounts, f.sealer)
	if _, err := st.Create(f.t.Context(), Account{Name: name, Server: f.srv.Addr, Mode: ModePlaintext, User: user, Password: pass}); err != nil {
		f.t.Fatal(err)
	}
	c, err := imap.DialStream(context.Background(), f.srv.StreamCommand(user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Shutdown() })
	return c
}

// node runs a node with its own NATS connection; stop cancels it (handing
// its leases back), crash closes its connection first (so nothing is handed
// back: its leases expire).
type runningNode struct {
	node   *Node
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (f *nodeFixture) node(id string) *runningNode {
	f.t.Helper()
	nc, err := nats.Connect(f.url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		f.t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	infra, err := EnsureInfra(f.t.Context(), js, InfraOptions{LeaseTTL: f.ttl})
	if err != nil {
		f.t.Fatal(err)
	}
	n := NewNode(nc, infra, f.sealer, f.ttl, NodeOptions{NodeID: id, Timeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningNode{node: n, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	f.t.Cleanup(func() { r.stop(f.t) })
	return r
}

func (r *runningNode) stop(t *testing.T) {
	r.once.Do(func() { r.stopOnce(t) })
}

func (r *runningNode) stopOnce(t *testing.T) {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("node did not stop within 20 s:\n%s", buf)
	}
	r.nc.Close()
}

func (r *runningNode) crash(t *testing.T) {
	r.nc.Close()
	r.stop(t)
}

// published collects the events on IMAPKIT_EVENTS.
type published struct {
	mu  sync.Mutex
	evs []delivery.Event
	ids map[string]string // Nats-Msg-Id → body id
}

func (f *nodeFixture) collect() *published {
	f.t.Helper()
	_, js := natstest.Connect(f.t, f.url)
	p := &published{ids: map[string]string{}}
	c, err := js.OrderedConsumer(f.t.Context(), StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		f.t.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		var ev delivery.Event
		json.Unmarshal(m.Data(), &ev)
		p.mu.Lock()
		p.evs = append(p.evs, ev)
		p.ids[m.Headers().Get(jetstream.MsgIDHeader)] = ev.ID
		p.mu.Unlock()
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(cc.Stop)
	return p
}

// newUIDs counts the "new" events per account and UID.
func (p *published) newUIDs() map[string]map[uint32]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]map[uint32]int{}
	for _, ev := range p.evs {
		if ev.Kind == "new" {
			if out[ev.Account] == nil {
				out[ev.Account] = map[uint32]int{}
			}
			out[ev.Account][ev.UID]++
		}
	}
	return out
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appendMail(t *testing.T, c *imap.Client, subject string) {
	t.Helper()
	msg := "From: ada@example.org\r\nSubject: " + subject + "\r\n\r\nbody\r\n"
	if _, err := c.Append(context.Background(), "INBOX", "", time.Time{}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// TestNodePublishes: a node watches an account added to the bucket and
// publishes its new mail to IMAPKIT_EVENTS, subject by account and kind,
// Nats-Msg-Id the event's ID; the position is saved in IMAPKIT_STATE; the
// status says who owns it; the password is nowhere in NATS' store in clear.
func TestNodePublishes(t *testing.T) {
	f := newNodeFixture(t)
	pub := f.collect()
	c := f.account("work")
	a := f.node("node-a")
	waitUntil(t, 20*time.Second, "the account idle", func() bool {
		st, err := a.node.Status(t.Context(), "work")
		return err == nil && st.State == StateIdle && st.Owner == "node-a"
	})
	for i := range 3 {
		appendMail(t, c, "hello "+string(rune('1'+i)))
	}
	waitUntil(t, 20*time.Second, "3 new events", func() bool { return len(pub.newUIDs()["work"]) == 3 })
	pub.mu.Lock()
	for msgID, id := range pub.ids {
		if msgID == "" || msgID != id {
			t.Errorf("Nats-Msg-Id %q, event id %q", msgID, id)
		}
	}
	pub.mu.Unlock()
	waitUntil(t, 10*time.Second, "the position saved", func() bool {
		st, err := a.node.Status(t.Context(), "work")
		return err == nil && st.Mailboxes["INBOX"].LastUID == 3
	})
	a.stop(t)
	// The password is sealed: nowhere in clear in what NATS stored.
	st := NewAccountStore(f.infra.Accounts, f.sealer)
	stored, err := st.GetSealed(t.Context(), "work")
	if err != nil {
		t.Fatal(err)
	}
	pass, err := f.sealer.Open("work", stored.PasswordSealed)
	if err != nil {
		t.Fatal(err)
	}
	filepath.Walk(f.storeDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), pass) {
				t.Errorf("%s holds the password in clear", path)
			}
		}
		return nil
	})
}

// TestNodeTakeover: two nodes share three accounts; one crashes (its
// leases are not handed back) while mail arrives: the other takes its
// accounts after the TTL and every message is published once per event
// ID, none missing.
func TestNodeTakeover(t *testing.T) {
	f := newNodeFixture(t)
	pub := f.collect()
	names := []string{"a1", "a2", "a3"}
	mailers := map[string]*imap.Client{}
	for _, n := range names {
		mailers[n] = f.account(n)
	}
	a := f.node("node-a")
	b := f.node("node-b")
	idle := func(n *runningNode, name string) bool {
		st, err := n.node.Status(t.Context(), name)
		return err == nil && st.State == StateIdle && st.Owner != ""
	}
	waitUntil(t, 30*time.Second, "every account watched", func() bool {
		for _, n := range names {
			if !idle(b, n) {
				return false
			}
		}
		return true
	})
	for _, n := range names {
		appendMail(t, mailers[n], "before")
	}
	waitUntil(t, 20*time.Second, "the first messages", func() bool {
		u := pub.newUIDs()
		return len(u["a1"]) == 1 && len(u["a2"]) == 1 && len(u["a3"]) == 1
	})
	a.crash(t)
	for _, n := range names {
		appendMail(t, mailers[n], "during")
	}
	waitUntil(t, 30*time.Second, "every message after the crash", func() bool {
		u := pub.newUIDs()
		return len(u["a1"]) == 2 && len(u["a2"]) == 2 && len(u["a3"]) == 2
	})
	for _, n := range names {
		st, err := b.node.Status(t.Context(), n)
		if err != nil || st.Owner != "node-b" {
			t.Errorf("%s: owner %q (%v), want node-b", n, st.Owner, err)
		}
	}
	// A repeat carries the same ID (and JetStream drops it within the
	// duplicate window): one stored event per ID.
	pub.mu.Lock()
	seen := map[string]bool{}
	for _, ev := range pub.evs {
		if seen[ev.ID] {
			t.Errorf("event %s (%s %s uid %d) stored twice", ev.ID, ev.Kind, ev.Account, ev.UID)
		}
		seen[ev.ID] = true
	}
	pub.mu.Unlock()
}

// TestNodeAccountRemoved: removing an account closes its connection and
// stops its events.
func TestNodeAccountRemoved(t *testing.T) {
	f := newNodeFixture(t)
	f.account("gone")
	a := f.node("node-a")
	waitUntil(t, 20*time.Second, "the account idle", func() bool {
		st, err := a.node.Status(t.Context(), "gone")
		return err == nil && st.State == StateIdle
	})
	sessions := func() int {
		n, _, _ := f.srv.IMAPSessions()
		return n
	}
	if sessions() == 0 {
		t.Fatal("no IMAP session for the account")
	}
	if err := NewAccountStore(f.infra.Accounts, f.sealer).Delete(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the connection closed", func() bool { return sessions() == 0 })
}
