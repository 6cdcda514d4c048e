// Command imapkit watches IMAP mailboxes.
//
//	imapkit demo                      watch an embedded in-process server (no setup)
//	imapkit watch [flags]             watch mailboxes: new mail, flags, expunges, with reconnect
//	imapkit idle [flags]              raw IDLE: print each untagged response as it arrives
//	imapkit serve [flags]             many accounts, events to NATS JetStream, on one node or many
//	imapkit accounts add|update|rm|ls manage serve's accounts through its API
//	imapkit keygen --out FILE         a key for serve's --secret-key-file
//	imapkit login [flags]             OAuth2 authorization: a token file for --oauth2-token-file
//	imapkit version                   the version of imapkit and of Go it was built with
//
// Run "imapkit COMMAND -h" for the flags and examples of a command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		smallStacks()
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code. The first SIGINT
// or SIGTERM ends the command cleanly (ctx); a second one ends it at once
// (exit status 128 + the signal's number).
func run(args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hurry, hurryNow := context.WithCancelCause(context.Background())
	defer hurryNow(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-hurry.Done():
			return
		}
		select {
		case sig := <-sigs:
			s := sig.(syscall.Signal)
			hurryNow(signalError{s})
			// The command ends its work at once (hooks killed); should
			// something still hold it — a write to a stdout nobody
			// reads — the process ends anyway.
			time.AfterFunc(time.Second, func() { os.Exit(128 + int(s)) })
		case <-hurry.Done():
		}
	}()
	code := runContext(context.WithValue(ctx, hurryKey{}, hurry), args, stdout, stderr)
	var sig signalError
	if errors.As(context.Cause(hurry), &sig) {
		return 128 + int(sig.s)
	}
	return code
}

// hurryKey keys the context that ends with a second signal: stop at once.
type hurryKey struct{}

// hurried returns the context that ends when the user asks a second time
// to stop; it never ends when there is none (tests).
func hurried(ctx context.Context) context.Context {
	if h, ok := ctx.Value(hurryKey{}).(context.Context); ok {
		return h
	}
	return context.Background()
}

// signalError is the cause of a hurried stop.
type signalError struct{ s syscall.Signal }

func (e signalError) Error() string { return "second signal (" + e.s.String() + "): stopping at once" }

// runContext is run until ctx is done.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "idle":
		err = runIdle(ctx, args[1:], stdout, stderr)
	case "watch":
		err = runWatch(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "accounts":
		err = runAccounts(ctx, args[1:], stdout, stderr)
	case "keygen":
		err = runKeygen(args[1:], stdout, stderr)
	case "login":
		err = runLogin(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		err = runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		switch len(args) {
		case 1:
			usage(stdout)
			return 0
		case 2:
			// "imapkit help watch" is "imapkit watch -h".
			if args[1] != "help" && !strings.HasPrefix(args[1], "-") {
				return runContext(ctx, []string{args[1], "-h"}, stdout, stderr)
			}
		}
		fmt.Fprintf(stderr, "imapkit help: unexpected argument %q\n", args[len(args)-1])
		usage(stderr)
		return 2
	default:
		fmt.Fprintf(stderr, "imapkit: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		switch err {
		case errHelp:
			return 0
		case errUsage:
			return 2
		}
		fmt.Fprintf(stderr, "imapkit %s: %s\n", args[0], withHint(err))
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: imapkit COMMAND [flags]

commands:
  demo      watch an embedded in-process IMAP server that receives a few messages
  watch     watch mailboxes for new mail, flag changes and expunges (reconnects, resyncs)
  idle      print each untagged response of an IDLE session as it arrives
  serve     watch many accounts, publishing their events to NATS JetStream (one node or many)
  accounts  add, update, remove or list the accounts of imapkit serve (add|update|rm|ls)
  keygen    write a new key for serve's --secret-key-file
  login     authorize with an OAuth2 provider (Google, Microsoft, custom) and write a token file
  version   print the version of imapkit and of the Go it was built with (also --version)

examples:
  imapkit demo
  imapkit watch --server imap.example.org:993 --user alice --password-cmd "pass show mail"
  imapkit help watch

Run "imapkit COMMAND -h" for its flags and examples.
`)
}
