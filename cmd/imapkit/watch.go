package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// accountConfig is one account of a --config file.
type accountConfig struct {
	Name         string   `json:"name"`
	Server       string   `json:"server"`
	TLS          bool     `json:"tls"`
	StartTLS     bool     `json:"starttls"`
	Plaintext    bool     `json:"plaintext"`
	Stream       string   `json:"stream"`
	User         string   `json:"user"`
	PasswordEnv  string   `json:"password_env"`
	PasswordFile string   `json:"password_file"`
	PasswordCmd  string   `json:"password_cmd"`
	CAFile       string   `json:"ca_file"`
	Mailboxes    []string `json:"mailboxes"`
}

type fileConfig struct {
	Accounts []accountConfig `json:"accounts"`
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf connFlags
	cf.register(fs)
	var mailboxes stringList
	fs.Var(&mailboxes, "mailbox", "mailbox to watch (repeatable; default INBOX)")
	config := fs.String("config", "", "JSON `FILE` describing several accounts (see README)")
	asJSON := fs.Bool("json", false, "one JSON object per event")
	execCmd := fs.String("exec", "", "run `CMD` (with sh -c) per event, the event in IMAPKIT_* variables and as JSON on stdin")
	execBurst := fs.Duration("exec-burst", 0, "with --exec, run once per burst of events arriving within `INTERVAL` (JSON lines on stdin)")
	stateFile := fs.String("state", "", "remember what was reported in `FILE`, to resume exactly after a restart")
	once := fs.Bool("once", false, "sync, report what changed since --state, and exit")
	envelope := fs.Bool("envelope", true, "include From and Subject of new messages")
	restart := fs.Duration("idle-restart", watch.DefaultIdleRestart, "re-issue IDLE this often (at most 29m)")
	inactivity := fs.Duration("inactivity", watch.DefaultInactivity, "probe the link when the server is silent this long")
	poll := fs.Duration("poll", watch.DefaultPollInterval, "polling interval for servers without IDLE")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var accounts []accountConfig
	if *config != "" {
		b, err := os.ReadFile(*config)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		var fc fileConfig
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return fmt.Errorf("config %s: %w", *config, err)
		}
		accounts = fc.Accounts
		if len(accounts) == 0 {
			return fmt.Errorf("config %s: no accounts", *config)
		}
	} else {
		if err := cf.check(); err != nil {
			fmt.Fprintln(stderr, "imapkit watch:", err)
			return errUsage
		}
		accounts = []accountConfig{{Name: cf.user, Mailboxes: mailboxes}}
	}
	out := &eventWriter{w: stdout, json: *asJSON, cmd: *execCmd, stderr: stderr}
	var wg sync.WaitGroup
	errs := make(chan error, len(accounts))
	for i, acct := range accounts {
		f := cf
		if *config != "" {
			f = connFlags{server: acct.Server, tls: acct.TLS, startTLS: acct.StartTLS, plaintext: acct.Plaintext,
				stream: acct.Stream, user: acct.User, passwordEnv: acct.PasswordEnv, passFile: acct.PasswordFile,
				passCmd: acct.PasswordCmd, caFile: acct.CAFile, debug: cf.debug, timeout: cf.timeout}
			if err := f.check(); err != nil {
				return fmt.Errorf("config account %d (%s): %w", i+1, acct.Name, err)
			}
		}
		name := acct.Name
		if name == "" {
			name = f.user
		}
		if name == "" {
			name = f.server
		}
		if name == "" {
			name = "local" // a --stream session with no --user
		}
		dialAuth, err := f.dialer(ctx, stderr)
		if err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		dial := func(ctx context.Context) (*imap.Client, error) { return dialAuth(ctx) }
		st := *stateFile
		if st != "" && len(accounts) > 1 {
			st += "." + strconv.Itoa(i)
		}
		w, err := watch.New(dial, &watch.Options{
			Account: name, Mailboxes: acct.Mailboxes, IdleRestart: *restart, Inactivity: *inactivity,
			PollInterval: *poll, Envelope: *envelope, StateFile: st, Once: *once,
			ProbeTimeout: cf.timeout,
		})
		if err != nil {
			return err
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := w.Run(ctx); err != nil {
				errs <- fmt.Errorf("account %s: %w", name, err)
			}
		}()
		go func() {
			defer wg.Done()
			out.consume(w.Events(), *execBurst)
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// eventWriter prints events and runs --exec, one event or burst at a time.
type eventWriter struct {
	mu     sync.Mutex
	w      io.Writer
	stderr io.Writer
	json   bool
	cmd    string
}

type jsonEvent struct {
	Event       string   `json:"event"`
	Time        string   `json:"time"`
	Account     string   `json:"account"`
	Mailbox     string   `json:"mailbox"`
	UIDValidity uint32   `json:"uidvalidity,omitempty"`
	UID         uint32   `json:"uid,omitempty"`
	Flags       []string `json:"flags,omitempty"`
	ModSeq      uint64   `json:"modseq,omitempty"`
	From        string   `json:"from,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	MessageID   string   `json:"message_id,omitempty"`
	Text        string   `json:"text,omitempty"`
	Error       string   `json:"error,omitempty"`
}

func toJSONEvent(ev watch.Event) jsonEvent {
	je := jsonEvent{Event: ev.Kind.String(), Time: ev.Time.UTC().Format(time.RFC3339Nano), Account: ev.Account,
		Mailbox: ev.Mailbox, UIDValidity: ev.UIDValidity, UID: ev.UID, Flags: ev.Flags, ModSeq: ev.ModSeq, Text: ev.Text}
	if ev.Envelope != nil {
		je.Subject = decodeHeader(ev.Envelope.Subject)
		je.MessageID = ev.Envelope.MessageID
		if len(ev.Envelope.From) > 0 {
			je.From = ev.Envelope.From[0].Addr()
		}
	}
	if ev.Err != nil {
		je.Error = ev.Err.Error()
	}
	return je
}

// decodeHeader decodes RFC 2047 encoded words for display, keeping the raw
// text when it cannot.
func decodeHeader(s string) string {
	var dec mime.WordDecoder
	if out, err := dec.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

func (e *eventWriter) consume(events <-chan watch.Event, burst time.Duration) {
	for ev := range events {
		batch := []watch.Event{ev}
		if burst > 0 && e.cmd != "" {
			timer := time.NewTimer(burst)
		collect:
			for {
				select {
				case ev, ok := <-events:
					if !ok {
						break collect
					}
					batch = append(batch, ev)
					timer.Reset(burst)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		for _, ev := range batch {
			e.print(ev)
		}
		if e.cmd != "" {
			e.exec(batch)
		}
	}
}

func (e *eventWriter) print(ev watch.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.json {
		b, _ := json.Marshal(toJSONEvent(ev))
		fmt.Fprintf(e.w, "%s\n", b)
		return
	}
	je := toJSONEvent(ev)
	line := fmt.Sprintf("%s %-12s %s/%s", ev.Time.Format("15:04:05"), je.Event, je.Account, je.Mailbox)
	if je.UID != 0 {
		line += fmt.Sprintf(" uid=%d", je.UID)
	}
	if je.Flags != nil {
		line += fmt.Sprintf(" flags=%v", je.Flags)
	}
	if je.From != "" {
		line += " from=" + je.From
	}
	if je.Subject != "" {
		line += fmt.Sprintf(" subject=%q", je.Subject)
	}
	if je.Text != "" {
		line += " " + je.Text
	}
	if je.Error != "" {
		line += " error=" + je.Error
	}
	fmt.Fprintln(e.w, line)
}

// exec runs --exec for a batch: the (last) event in IMAPKIT_* variables, and
// every event as a JSON line on stdin.
func (e *eventWriter) exec(batch []watch.Event) {
	var stdin bytes.Buffer
	for _, ev := range batch {
		b, _ := json.Marshal(toJSONEvent(ev))
		stdin.Write(append(b, '\n'))
	}
	last := toJSONEvent(batch[len(batch)-1])
	cmd := exec.Command("sh", "-c", e.cmd)
	cmd.Stdin = &stdin
	cmd.Stdout = e.w
	cmd.Stderr = e.stderr
	cmd.Env = append(os.Environ(),
		"IMAPKIT_EVENT="+last.Event,
		"IMAPKIT_ACCOUNT="+last.Account,
		"IMAPKIT_MAILBOX="+last.Mailbox,
		"IMAPKIT_UIDVALIDITY="+strconv.FormatUint(uint64(last.UIDValidity), 10),
		"IMAPKIT_UID="+strconv.FormatUint(uint64(last.UID), 10),
		"IMAPKIT_FLAGS="+strings.Join(last.Flags, " "),
		"IMAPKIT_FROM="+last.From,
		"IMAPKIT_SUBJECT="+last.Subject,
		"IMAPKIT_COUNT="+strconv.Itoa(len(batch)),
	)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(e.stderr, "imapkit watch: --exec: %v\n", err)
	}
}
