package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/watch"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// errDeadLettered ends a --once run in which some event could not be
// delivered (it is in the dead-letter file).
var errDeadLettered = errors.New("some events could not be delivered: see the dead letters above")

var watchUsage = cmdUsage{
	command:  "watch",
	synopsis: "(--server HOST:PORT --user USER PASSWORD-SOURCE | --stream CMD | --config FILE) [flags]",
	about: `Watch mailboxes for new mail, flag changes and expunges, reconnecting and
resyncing so that nothing is missed or reported twice. Events go to stdout
(text or --json), to a hook (--exec) and to webhooks; with --state a restart
reports what happened while it was away. Several accounts: --config.
A watched mailbox deleted on the server is reported (mailbox_deleted) and no
longer watched. --all-mailboxes follows every mailbox of the account, and
reports those created (watched from their first message), renamed and
deleted.`,
	examples: []string{
		`imapkit watch --server imap.example.org:993 --user alice --password-cmd "pass show mail" \`,
		`    --mailbox INBOX --mailbox Lists --state ~/.cache/imapkit.state --json`,
		`imapkit watch --config accounts.json --state ~/.cache/imapkit.state --exec 'notify-send "$IMAPKIT_SUBJECT"'`,
		`imapkit watch --config accounts.json --state state.json \`,
		`    --webhook https://hooks.example.org/mail --webhook-secret-file hook.secret`,
		`imapkit watch --server outlook.office365.com:993 --user you@example.com --oauth2-token-file outlook.json`,
		`imapkit watch --stream "doveadm exec imap -u alice" --state state.json --once`,
		`imapkit watch --stream "doveadm exec imap -u alice" --all-mailboxes --state state.json --json`,
	},
}

// perAccountFlags are the flags of watch that a --config file's accounts
// say for themselves.
var perAccountFlags = []string{"server", "tls", "starttls", "plaintext", "stream", "user", "password-env", "password-file", "password-cmd", "oauth2-token-file", "ca-file", "mailbox", "all-mailboxes"}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	var sf sinkFlags
	sf.register(fs)
	var mailboxes stringList
	fs.Var(&mailboxes, "mailbox", "mailbox to watch (repeatable; default INBOX); one deleted on the server is reported and no longer watched")
	allMailboxes := fs.Bool("all-mailboxes", false, "follow every mailbox of the account (LIST), instead of --mailbox: those created are reported and watched from their first message, those renamed or deleted are reported")
	listInterval := fs.Duration("list-interval", watch.DefaultListInterval, fmt.Sprintf("on a server without NOTIFY, look for created, renamed and deleted mailboxes (--all-mailboxes) and for the watched ones, with LIST, this often (at least %v)", watch.MinListInterval))
	config := fs.String("config", "", "JSON `FILE` describing several accounts (see README)")
	stateFile := fs.String("state", "", "keep the positions of every account in `FILE`: a restart reports what it missed and what was not acknowledged")
	rebaseline := fs.Bool("rebaseline", false, "accept a state file that holds nothing, or positions that cannot be right, and start those from the mail there now")
	once := fs.Bool("once", false, "sync, deliver what changed since --state, and exit")
	envelope := fs.Bool("envelope", true, "include From and Subject of new messages")
	window := fs.Int("window", watch.DefaultWindow, "events per mailbox that may wait for acknowledgement at once")
	grace := fs.Duration("grace", 10*time.Second, "on SIGTERM/SIGINT, how long running hooks and webhook calls may take before they are killed")
	restart := fs.Duration("idle-restart", watch.DefaultIdleRestart, fmt.Sprintf("re-issue IDLE this often (at most %v)", watch.MaxIdleRestart))
	inactivity := fs.Duration("inactivity", watch.DefaultInactivity, "probe the link when the server is silent this long")
	poll := fs.Duration("poll", watch.DefaultPollInterval, "polling interval for servers without IDLE")
	if err := watchUsage.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	set := setFlags(fs)
	if extra := given(set, perAccountFlags...); *config != "" && len(extra) > 0 {
		return watchUsage.fail(stderr, "%s with --config: each account in the file gives its own connection and mailboxes", strings.Join(extra, ", "))
	}
	switch {
	case *restart <= 0 || *restart > watch.MaxIdleRestart:
		// RFC 2177: servers may end an IDLE of more than 29 minutes.
		return watchUsage.fail(stderr, "--idle-restart %v: want a positive duration of at most %v", *restart, watch.MaxIdleRestart)
	case *inactivity <= 0:
		return watchUsage.fail(stderr, "--inactivity %v: want a positive duration", *inactivity)
	case *poll <= 0:
		return watchUsage.fail(stderr, "--poll %v: want a positive duration", *poll)
	case *listInterval < watch.MinListInterval:
		return watchUsage.fail(stderr, "--list-interval %v: want at least %v (LIST asks the server for every mailbox)", *listInterval, watch.MinListInterval)
	case *allMailboxes && len(mailboxes) > 0:
		return watchUsage.fail(stderr, "--all-mailboxes with --mailbox: it follows every mailbox, or give the ones to watch")
	case *grace < 0:
		return watchUsage.fail(stderr, "--grace %v: want 0 (kill at once) or more", *grace)
	case *window < 1:
		return watchUsage.fail(stderr, "--window %d: want 1 or more", *window)
	case cf.timeout <= 0:
		return watchUsage.fail(stderr, "--timeout %v: want a positive duration", cf.timeout)
	case *rebaseline && *stateFile == "":
		return watchUsage.fail(stderr, "--rebaseline without --state: there are no saved positions to accept")
	}
	if err := sf.check(set); err != nil {
		return watchUsage.fail(stderr, "%v", err)
	}
	var accounts []account
	if *config != "" {
		var err error
		if accounts, err = loadConfig(*config, cf); err != nil {
			return err
		}
	} else {
		if err := cf.check(); err != nil {
			return watchUsage.fail(stderr, "%v", err)
		}
		accounts = []account{{name: accountName("", cf), conn: cf, mailboxes: mailboxes, allMailboxes: *allMailboxes}}
	}
	routes, err := sf.routes(stdout, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if cf.debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var store *watch.StateFile
	if *stateFile != "" {
		if store, err = openState(*stateFile, *rebaseline, accounts, stderr); err != nil {
			return err
		}
		defer store.Close()
	}
	dead, closeDead, err := openDeadLetter(sf.deadLetterPath(*stateFile), stderr)
	if err != nil {
		return err
	}
	defer closeDead()

	watchers := make([]*watch.Watcher, len(accounts))
	for i, a := range accounts {
		dial, err := a.conn.dialer(ctx, stderr)
		if err != nil {
			return fmt.Errorf("account %s: %w", a.name, err)
		}
		opts := &watch.Options{
			Account: a.name, Server: a.server(), User: a.conn.user, Mailboxes: a.mailboxes, AllMailboxes: a.allMailboxes,
			IdleRestart: *restart, Inactivity: *inactivity, PollInterval: *poll, ListInterval: *listInterval, Envelope: *envelope,
			Once: *once, ProbeTimeout: a.conn.timeout, Window: *window, Rebaseline: *rebaseline,
			Logger: logger.With("account", a.name),
		}
		if store != nil {
			opts.Store = store
			if st, err := store.Load(a.name); err == nil && st == nil && !store.Fresh() {
				fmt.Fprintf(stderr, "imapkit watch: account %q has no saved position: first run, starting from the mail there now\n", a.name)
			}
		}
		if watchers[i], err = watch.New(dial, opts); err != nil {
			return fmt.Errorf("account %s: %w", a.name, err)
		}
	}

	d := delivery.NewDispatcher(delivery.Config{Routes: routes, DeadLetter: dead, Log: logger})
	s := &watchRun{d: d, dead: dead, stderr: stderr}
	return s.run(ctx, accounts, watchers, *grace)
}

// watchRun runs the watchers of a watch command and feeds the dispatcher.
type watchRun struct {
	d       *delivery.Dispatcher
	dead    *countingDeadLetter
	stderr  io.Writer
	pending sync.WaitGroup // events submitted and not yet done
}

// accountResult is what an account's Run returned.
type accountResult struct {
	name string
	err  error
}

// run watches until every account stopped (with --once: synced and
// delivered) or a signal came. It reports a failing account on stderr when
// it fails; the command fails when no account is left.
func (s *watchRun) run(ctx context.Context, accounts []account, watchers []*watch.Watcher, grace time.Duration) error {
	wctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()
	results := make(chan accountResult, len(watchers))
	var consumers sync.WaitGroup
	for i, w := range watchers {
		go func() { results <- accountResult{accounts[i].name, w.Run(wctx)} }()
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			s.consume(ctx, w)
		}()
	}
	failed := 0
	for ended := range len(watchers) {
		var r accountResult
		select {
		case r = <-results:
		case <-ctx.Done():
			return s.stop(ctx, stopWatchers, results, len(watchers)-ended, grace)
		}
		if r.err != nil {
			failed++
			fmt.Fprintf(s.stderr, "imapkit watch: account %s stopped: %s\n", r.name, withHint(r.err))
		}
	}
	// Every account is done: --once, or each one failed. Deliver what
	// they left, unless a signal says stop.
	delivered := make(chan struct{})
	go func() {
		consumers.Wait()
		s.pending.Wait()
		close(delivered)
	}()
	select {
	case <-delivered:
	case <-ctx.Done():
		return s.stop(ctx, stopWatchers, results, 0, grace)
	}
	s.d.Shutdown(context.Background())
	if failed == len(watchers) {
		if failed == 1 {
			return errors.New("no account left to watch")
		}
		return fmt.Errorf("all %d accounts stopped", failed)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d accounts stopped", failed, len(watchers))
	}
	if s.dead.count() > 0 {
		return errDeadLettered
	}
	return nil
}

// consume takes w's events and hands them to the dispatcher; each is
// acknowledged once every sink has it. It stops taking events when ctx
// ends (a signal): those not taken were not acknowledged and come back
// after a restart.
func (s *watchRun) consume(ctx context.Context, w *watch.Watcher) {
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			return
		}
		s.submit(ev)
	}
}

// submit hands ev to the dispatcher, to be acknowledged once every sink
// has it.
func (s *watchRun) submit(ev watch.Event) {
	s.pending.Add(1)
	s.d.Submit(delivery.FromWatch(ev), func() {
		ev.Ack()
		s.pending.Done()
	})
}

// stop ends the run after a signal: the watchers stop (writing their
// positions), running hooks and webhook calls get grace, then whatever
// still runs is killed. Events queued and not delivered were not
// acknowledged: they come back after a restart, with the same IDs. A
// second signal cuts the grace short.
func (s *watchRun) stop(ctx context.Context, stopWatchers context.CancelFunc, results <-chan accountResult, running int, grace time.Duration) error {
	stopWatchers()
	for range running {
		<-results // each Run returns within a second of its cancellation
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	stopOnHurry := context.AfterFunc(hurried(ctx), cancel)
	defer stopOnHurry()
	if err := s.d.Shutdown(gctx); err != nil && hurried(ctx).Err() == nil {
		fmt.Fprintf(s.stderr, "imapkit watch: stopped after a grace of %v: deliveries still running were cancelled and will be retried after a restart\n", grace)
	}
	return nil
}
