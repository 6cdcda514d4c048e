package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

var idleUsage = cmdUsage{
	command:  "idle",
	synopsis: "(--server HOST:PORT --user USER PASSWORD-SOURCE | --stream CMD) [flags]",
	about: `Select a mailbox, start IDLE and print each untagged response the server sends
as it arrives, until --duration or an interrupt. No reconnects, no state: for
a watcher that never misses a message, use imapkit watch.`,
	examples: []string{
		`imapkit idle --server imap.example.org:993 --user alice --password-cmd "pass show mail"`,
		`imapkit idle --server imap.example.org:143 --starttls --user alice --password-env IMAP_PASSWORD \`,
		`    --mailbox Lists --duration 10m --burst 2s --json`,
		`imapkit idle --stream "doveadm exec imap -u alice" --debug`,
	},
}

func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	mailbox := fs.String("mailbox", "INBOX", "mailbox to select")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	burst := fs.Duration("burst", 0, "group responses arriving within `INTERVAL` of each other into one batch")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	restart := fs.Duration("idle-restart", watch.DefaultIdleRestart, fmt.Sprintf("end IDLE and start it again this often, before the server drops it (at most %v)", watch.MaxIdleRestart))
	if err := idleUsage.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return idleUsage.fail(stderr, "%v", err)
	}
	switch {
	case *duration < 0:
		return idleUsage.fail(stderr, "--duration %v: want 0 (until interrupted) or more", *duration)
	case *burst < 0:
		return idleUsage.fail(stderr, "--burst %v: want 0 (no batching) or more", *burst)
	case *restart <= 0 || *restart > watch.MaxIdleRestart:
		return idleUsage.fail(stderr, "--idle-restart %v: want a positive duration of at most %v", *restart, watch.MaxIdleRestart)
	}
	dial, err := cf.dialer(ctx, stderr)
	if err != nil {
		return err
	}
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Shutdown()
	if _, err := c.Select(ctx, *mailbox, true); err != nil {
		return err
	}
	out := responsePrinter{w: stdout, json: *asJSON}
	var end time.Time
	if *duration > 0 {
		end = time.Now().Add(*duration)
	}
	// One IDLE per --idle-restart period, until --duration or a signal:
	// servers drop an IDLE that lasts too long (Gmail at about 10 min).
	for ctx.Err() == nil {
		period := *restart
		if !end.IsZero() {
			left := time.Until(end)
			if left <= 0 {
				break
			}
			period = min(period, left)
		}
		if err := idleOnce(ctx, c, period, *burst, out); err != nil {
			return err
		}
	}
	// A signal ends the session the same way as the duration.
	logoutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.Logout(logoutCtx); err != nil {
		return err
	}
	return nil
}

// idleOnce runs one IDLE of at most period, printing what arrives, and
// ends it with DONE. A cancelled ctx ends it early without an error.
func idleOnce(ctx context.Context, c *imap.Client, period, burst time.Duration, out responsePrinter) error {
	idler, err := c.Idle(ctx, period)
	if err != nil {
		return err
	}
	var iterErr error
	if burst > 0 {
		for batch, err := range idler.Burst(burst) {
			if err != nil {
				iterErr = err
				break
			}
			out.batch(batch)
		}
	} else {
		for r, err := range idler.Responses() {
			if err != nil {
				iterErr = err
				break
			}
			out.one(r)
		}
	}
	closeErr := idler.Close()
	if iterErr != nil && !errors.Is(iterErr, context.Canceled) {
		return iterErr
	}
	return closeErr
}

// responsePrinter writes responses as text or JSON lines.
type responsePrinter struct {
	w    io.Writer
	json bool
}

type jsonResponse struct {
	Type string `json:"type"`
	Data []any  `json:"data"`
}

type jsonLiteral struct {
	Text    string `json:"text"`
	Literal string `json:"literal"`
}

func toJSON(r imap.Response) jsonResponse {
	jr := jsonResponse{Type: r.Type, Data: make([]any, 0, len(r.Data))}
	for _, d := range r.Data {
		if d.IsLiteral() {
			jr.Data = append(jr.Data, jsonLiteral{Text: string(d.Text), Literal: string(d.Literal)})
		} else {
			jr.Data = append(jr.Data, string(d.Text))
		}
	}
	return jr
}

func (p responsePrinter) one(r imap.Response) {
	if p.json {
		b, _ := json.Marshal(toJSON(r))
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	fmt.Fprintln(p.w, textOf(r))
}

func (p responsePrinter) batch(rs []imap.Response) {
	if p.json {
		out := struct {
			Burst []jsonResponse `json:"burst"`
		}{Burst: make([]jsonResponse, len(rs))}
		for i, r := range rs {
			out.Burst[i] = toJSON(r)
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	fmt.Fprintf(p.w, "-- burst of %d\n", len(rs))
	for _, r := range rs {
		fmt.Fprintln(p.w, textOf(r))
	}
}

// textOf renders a response for people: literals are shown as their size.
func textOf(r imap.Response) string {
	s := r.Type
	for _, d := range r.Data {
		s += " " + string(d.Text)
		if d.IsLiteral() {
			s += fmt.Sprintf("<%d bytes>", len(d.Literal))
		}
	}
	return s
}
