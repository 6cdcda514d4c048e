package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/watch"
)

// defaultHookKinds are the kinds hooks and webhooks get unless --events
// says otherwise: changes to act on, not the watcher's own comings and
// goings.
var defaultHookKinds = []string{"new", "expunge", "flags", "reset", "alert", "mailbox_created", "mailbox_renamed", "mailbox_deleted"}

// eventsHelp is the help of --events, for watch and serve.
var eventsHelp = "comma-separated `KINDS` that reach hooks and webhooks (default " + strings.Join(defaultHookKinds, ",") + ")"

// allKinds lists every kind of event, for messages.
func allKinds() string {
	var names []string
	for k := watch.Kind(1); ; k++ {
		name := k.String()
		if _, ok := watch.ParseKind(name); !ok {
			return strings.Join(names, ", ")
		}
		names = append(names, name)
	}
}

// sinkFlags are the flags that say where events go.
type sinkFlags struct {
	json          bool
	exec          string
	execBurst     time.Duration
	execTimeout   time.Duration
	execRetries   int
	webhooks      stringList
	webhookSecret string
	webhookTO     time.Duration
	webhookTries  int
	backoff       time.Duration
	events        string
	deadLetter    string
}

func (s *sinkFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&s.json, "json", false, "print one JSON object per event (acknowledged once written and flushed)")
	fs.StringVar(&s.exec, "exec", "", "run `CMD` (with sh -c) per event, the event in IMAPKIT_* variables and as JSON on stdin; exit 0 acknowledges")
	fs.DurationVar(&s.execBurst, "exec-burst", 0, "with --exec, run once per burst of events of a mailbox arriving within `INTERVAL` (JSON lines on stdin)")
	fs.DurationVar(&s.execTimeout, "exec-timeout", 60*time.Second, "kill a hook (its whole process group) running longer than this, and retry")
	fs.IntVar(&s.execRetries, "exec-retries", 5, "retries of a failed hook before the event goes to the dead-letter file")
	fs.Var(&s.webhooks, "webhook", "POST each event's JSON to `URL` (repeatable); a 2xx reply acknowledges")
	fs.StringVar(&s.webhookSecret, "webhook-secret-file", "", "sign webhook bodies: X-Imapkit-Signature: sha256=HMAC of the body keyed with the content of `FILE`")
	fs.DurationVar(&s.webhookTO, "webhook-timeout", 30*time.Second, "bound on each webhook call")
	fs.IntVar(&s.webhookTries, "webhook-retries", 5, "retries of a failed webhook call before the event goes to the dead-letter file")
	fs.DurationVar(&s.backoff, "retry-backoff", time.Second, "delay before the first retry of a hook or webhook; it doubles, with jitter, up to 5m")
	fs.StringVar(&s.events, "events", "", eventsHelp+"; when given, stdout too")
	fs.StringVar(&s.deadLetter, "dead-letter", "", "append events that still fail after the retries to `FILE` as JSON lines (default: beside --state, else stderr)")
}

// parseKinds reads --events.
func parseKinds(list string) (map[string]bool, error) {
	kinds := map[string]bool{}
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if _, ok := watch.ParseKind(k); !ok {
			return nil, fmt.Errorf("--events: unknown kind %q (kinds: %s)", k, allKinds())
		}
		kinds[k] = true
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("--events: no kinds in %q", list)
	}
	return kinds, nil
}

// check refuses sink flags that cannot mean what they say: a flag of a
// sink that is not there (set holds the flags given), a negative count or
// a duration that is not positive, a kind or URL that is not one.
func (s *sinkFlags) check(set map[string]bool) error {
	if s.exec == "" {
		if g := given(set, "exec-burst", "exec-timeout", "exec-retries"); len(g) > 0 {
			return fmt.Errorf("%s without --exec: there is no hook to apply it to", strings.Join(g, ", "))
		}
	}
	if len(s.webhooks) == 0 {
		if g := given(set, "webhook-secret-file", "webhook-timeout", "webhook-retries"); len(g) > 0 {
			return fmt.Errorf("%s without --webhook: there is no webhook to apply it to", strings.Join(g, ", "))
		}
	}
	if s.exec == "" && len(s.webhooks) == 0 {
		if g := given(set, "retry-backoff", "dead-letter"); len(g) > 0 {
			return fmt.Errorf("%s without --exec or --webhook: nothing is retried or dead-lettered", strings.Join(g, ", "))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // 0 is allowed (and means off)
	}{{"exec-burst", s.execBurst, true}, {"exec-timeout", s.execTimeout, false}, {"webhook-timeout", s.webhookTO, false}, {"retry-backoff", s.backoff, false}} {
		if d.v < 0 || d.v == 0 && !d.zero {
			return fmt.Errorf("--%s %v: want a positive duration", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"exec-retries", s.execRetries}, {"webhook-retries", s.webhookTries}} {
		if n.v < 0 {
			return fmt.Errorf("--%s %d: want 0 (no retry) or more", n.name, n.v)
		}
	}
	if s.events != "" {
		if _, err := parseKinds(s.events); err != nil {
			return err
		}
	}
	for _, u := range s.webhooks {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("--webhook %s: want an http:// or https:// URL", u)
		}
	}
	return nil
}

// routes builds where events go: stdout (text or JSON), the hook, each
// webhook. An event is acknowledged once every route has it. The flags
// are those check accepted.
func (s *sinkFlags) routes(stdout, stderr io.Writer) ([]delivery.Route, error) {
	hookKinds := map[string]bool{}
	for _, k := range defaultHookKinds {
		hookKinds[k] = true
	}
	var stdoutKinds map[string]bool // every kind
	if s.events != "" {
		kinds, err := parseKinds(s.events)
		if err != nil {
			return nil, err
		}
		hookKinds, stdoutKinds = kinds, kinds
	}
	out := delivery.NewTextSink(stdout)
	if s.json {
		out = delivery.NewJSONSink(stdout)
	}
	// Writing to stdout either works or the reader is gone: no retries.
	routes := []delivery.Route{{Sink: out, Kinds: stdoutKinds, Retry: delivery.Retry{Retries: -1}}}
	if s.exec != "" {
		routes = append(routes, delivery.Route{
			Sink:  &delivery.ExecSink{Command: s.exec, Stderr: stderr},
			Kinds: hookKinds,
			Retry: delivery.Retry{Retries: retries(s.execRetries), Backoff: s.backoff, Timeout: s.execTimeout},
			Burst: s.execBurst,
		})
	}
	var secret []byte
	if s.webhookSecret != "" {
		var err error
		if secret, err = delivery.LoadSecret(s.webhookSecret); err != nil {
			return nil, err
		}
	}
	for _, u := range s.webhooks {
		routes = append(routes, delivery.Route{
			Sink:  &delivery.WebhookSink{URL: u, Secret: secret},
			Kinds: hookKinds,
			Retry: delivery.Retry{Retries: retries(s.webhookTries), Backoff: s.backoff, Timeout: s.webhookTO},
		})
	}
	return routes, nil
}

// deadLetterPath is where events that failed for good go: --dead-letter,
// else beside the state file, else "" (stderr).
func (s *sinkFlags) deadLetterPath(state string) string {
	if s.deadLetter != "" || state == "" {
		return s.deadLetter
	}
	return filepath.Join(filepath.Dir(state), filepath.Base(state)+".dead-letter.jsonl")
}

// hasHooks reports whether anything beyond stdout gets events.
func (s *sinkFlags) hasHooks() bool { return s.exec != "" || len(s.webhooks) > 0 }

// retries maps a --*-retries count to delivery.Retry.Retries, where zero
// means the default and a negative count none.
func retries(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// countingDeadLetter is the dead letter of a watch command, which counts
// what it took: a --once run that dead-lettered an event exits non-zero.
type countingDeadLetter struct {
	delivery.DeadLetter
	n atomic.Int64
}

func (c *countingDeadLetter) Write(rec delivery.DeadRecord) error {
	c.n.Add(1)
	return c.DeadLetter.Write(rec)
}

func (c *countingDeadLetter) count() int64 { return c.n.Load() }

// String names where dead letters go, for the log.
func (c *countingDeadLetter) String() string {
	if s, ok := c.DeadLetter.(fmt.Stringer); ok {
		return s.String()
	}
	return "dead letter"
}

// openDeadLetter opens the dead-letter file at path, or stderr when path
// is "".
func openDeadLetter(path string, stderr io.Writer) (*countingDeadLetter, func(), error) {
	if path == "" {
		return &countingDeadLetter{DeadLetter: delivery.NewDeadLetterWriter(stderr)}, func() {}, nil
	}
	f, err := delivery.OpenDeadLetterFile(path)
	if err != nil {
		return nil, nil, err
	}
	return &countingDeadLetter{DeadLetter: f}, func() { f.Close() }, nil
}
