package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/imapkit/imap/service"
)

var keygenUsage = cmdUsage{
	command:  "keygen",
	synopsis: "--out FILE",
	about: `Write a new random AES-256 key to FILE for imapkit serve's --secret-key-file,
which seals the accounts' passwords. Give the same key to every node and keep
a copy: without it the stored passwords cannot be opened.`,
	examples: []string{
		"imapkit keygen --out /etc/imapkit/secret.key",
	},
}

// runKeygen writes a new key for serve's --secret-key-file.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fset.String("out", "", "write the key to `FILE` (created with mode 0600; an existing file is never overwritten)")
	if err := keygenUsage.parse(fset, args, stdout, stderr); err != nil {
		return err
	}
	if *out == "" {
		return keygenUsage.fail(stderr, "--out is required (the key is never printed)")
	}
	if err := service.WriteKeyFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a new key to %s: give it to every node as --secret-key-file, and keep a copy: without it the stored passwords cannot be opened\n", *out)
	return nil
}
