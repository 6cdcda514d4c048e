package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/imapkit/imap/service"
)

// runKeygen writes a new key for serve's --secret-key-file.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fset.SetOutput(stderr)
	out := fset.String("out", "", "write the key to `FILE` (created with mode 0600; an existing file is never overwritten)")
	if err := fset.Parse(args); err != nil {
		return errUsage
	}
	switch {
	case fset.NArg() > 0:
		fmt.Fprintf(stderr, "imapkit keygen: unexpected argument %q\n", fset.Arg(0))
		return errUsage
	case *out == "":
		fmt.Fprintln(stderr, "imapkit keygen: --out is required (the key is never printed)")
		return errUsage
	}
	if err := service.WriteKeyFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a new key to %s: give it to every node as --secret-key-file, and keep a copy: without it the stored passwords cannot be opened\n", *out)
	return nil
}
