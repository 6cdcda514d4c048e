// Command imapkit watches IMAP mailboxes.
//
//	imapkit demo                      watch an embedded in-process server (no setup)
//	imapkit watch [flags]             watch mailboxes: new mail, flags, expunges, with reconnect
//	imapkit idle [flags]              raw IDLE: print each untagged response as it arrives
//
// Run "imapkit COMMAND -h" for the flags of a command.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code. SIGINT and
// SIGTERM end the command cleanly.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

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
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "imapkit: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "imapkit %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: imapkit COMMAND [flags]

commands:
  demo    watch an embedded in-process IMAP server that receives a few messages
  watch   watch mailboxes for new mail, flag changes and expunges (reconnects, resyncs)
  idle    print each untagged response of an IDLE session as it arrives

Run "imapkit COMMAND -h" for its flags.
`)
}
