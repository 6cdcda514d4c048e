package watch_test

import (
	"context"
	"fmt"
	"net"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

// Example watches an INBOX and prints new mail as it arrives. The server
// here is an in-process one so that the example runs anywhere.
func Example() {
	addr, stop := memServer("demo", "secret")
	defer stop()

	dial := func(ctx context.Context) (*imap.Client, error) {
		c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true, Timeout: 10 * time.Second})
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(ctx, "demo", "secret"); err != nil {
			c.Shutdown()
			return nil, err
		}
		return c, nil
	}
	// A short Inactivity makes a silent link get probed quickly; 5 minutes
	// is the default.
	w, err := watch.New(dial, &watch.Options{Mailboxes: []string{"INBOX"}, Envelope: true, Inactivity: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	seen := 0
	for ev := range w.Events() {
		// Acknowledge once handled: with a Store, the saved position
		// moves past it only then.
		ev.Ack()
		switch ev.Kind {
		case watch.EventResynced:
			// Synced: now deliver two messages from another connection.
			go deliver(dial, "Hello", "World")
		case watch.EventNew:
			fmt.Printf("new %s uid=%d subject=%q\n", ev.Mailbox, ev.UID, ev.Envelope.Subject)
			if seen++; seen == 2 {
				cancel()
			}
		}
	}
	// Output:
	// new INBOX uid=1 subject="Hello"
	// new INBOX uid=2 subject="World"
}

func deliver(dial watch.Dialer, subjects ...string) {
	ctx := context.Background()
	c, err := dial(ctx)
	if err != nil {
		panic(err)
	}
	defer c.Logout(ctx)
	for _, s := range subjects {
		msg := "From: ada@example.org\r\nSubject: " + s + "\r\n\r\nbody\r\n"
		if _, err := c.Append(ctx, "INBOX", "", time.Time{}, []byte(msg)); err != nil {
			panic(err)
		}
	}
}

// memServer starts go-imap v2's in-memory server on loopback.
func memServer(user, pass string) (addr string, stop func()) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	u.Create("INBOX", nil)
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         goimap.CapSet{goimap.CapIMAP4rev1: {}, goimap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }
}
