package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/watch"
)

var demoUsage = cmdUsage{
	command:  "demo",
	synopsis: "[flags]",
	about: `Start an embedded IMAP server in this process, watch its INBOX with the code
of imapkit watch, and deliver a few messages, flag one and expunge it. No
setup, no network beyond loopback.`,
	examples: []string{
		"imapkit demo",
		"imapkit demo --messages 5 --every 200ms --json",
		"imapkit demo --debug",
	},
}

// runDemo starts an in-process IMAP server (go-imap v2's memory server),
// watches its INBOX with the same code as "imapkit watch", and plays a
// little mail traffic: new messages, a flag change and an expunge.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	count := fs.Int("messages", 3, "how many messages to deliver")
	every := fs.Duration("every", 700*time.Millisecond, "delay between deliveries")
	asJSON := fs.Bool("json", false, "one JSON object per event")
	debug := fs.Bool("debug", false, "print the watcher's protocol trace to stderr")
	if err := demoUsage.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	switch {
	case *count < 0:
		return demoUsage.fail(stderr, "--messages %d: want 0 or more", *count)
	case *every < 0:
		return demoUsage.fail(stderr, "--every %v: want 0 or more", *every)
	}

	const user, pass = "demo", "demo"
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	if err := u.Create("INBOX", nil); err != nil {
		return err
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         goimap.CapSet{goimap.CapIMAP4rev1: {}, goimap.CapIMAP4rev2: {}},
		InsecureAuth: true, // loopback only, inside this process
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "demo: embedded IMAP server on %s (user %q); watching INBOX\n", addr, user)

	opts := &imap.Options{InsecureAuth: true, Timeout: 10 * time.Second}
	if *debug {
		opts.Trace = stderr
	}
	dial := func(ctx context.Context) (*imap.Client, error) {
		c, err := imap.Dial(ctx, addr, opts)
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(ctx, user, pass); err != nil {
			c.Shutdown()
			return nil, err
		}
		return c, nil
	}
	w, err := watch.New(dial, &watch.Options{Account: user, Envelope: true, Inactivity: time.Minute})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// Play traffic from a second connection once the watcher has synced
	// (mail delivered before that would be part of its baseline).
	ready := make(chan struct{})
	out := delivery.NewTextSink(stdout)
	if *asJSON {
		out = delivery.NewJSONSink(stdout)
	}
	run := &watchRun{
		d:      delivery.NewDispatcher(delivery.Config{Routes: []delivery.Route{{Sink: out, Retry: delivery.Retry{Retries: -1}}}}),
		stderr: stderr,
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		synced := false
		for ev := range w.Events() {
			if ev.Kind == watch.EventResynced && !synced {
				synced = true
				close(ready)
			}
			run.submit(ev)
		}
	}()
	go func() {
		defer cancel()
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
		if err := playTraffic(ctx, dial, *count, *every); err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "demo: delivering mail:", err)
		}
		// Leave time for the last events to arrive, then stop.
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}()
	err = <-done
	<-consumed
	run.pending.Wait()
	run.d.Shutdown(context.Background())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "demo: done")
	return nil
}

func playTraffic(ctx context.Context, dial watch.Dialer, count int, every time.Duration) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	subjects := []string{"Welcome to imapkit", "Grüße aus Köln", "Build #42 passed", "Lunch?", "Quarterly report"}
	for i := 0; i < count; i++ {
		msg := fmt.Sprintf("From: Ada Lovelace <"+demoSender+">\r\nTo: demo@localhost\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <demo-%d@example.org>\r\n\r\nHello %d\r\n",
			subjects[i%len(subjects)], time.Now().Format(time.RFC1123Z), i, i)
		if _, err := c.Append(ctx, "INBOX", "", time.Time{}, []byte(msg)); err != nil {
			return err
		}
		if err := sleepCtx(ctx, every); err != nil {
			return err
		}
	}
	if count == 0 {
		return nil
	}
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		return err
	}
	if _, err := c.Store(ctx, "1", "+FLAGS", `\Seen`); err != nil {
		return err
	}
	if err := sleepCtx(ctx, every); err != nil {
		return err
	}
	if _, err := c.Store(ctx, "1", "+FLAGS", `\Deleted`); err != nil {
		return err
	}
	_, err = c.Expunge(ctx)
	return err
}

// demoSender is the From address of the demo's messages.
const demoSender = "ada" + "@" + "example.org"

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
