package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// keySize is the size of a sealing key: AES-256.
const keySize = 32

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
	if err := writeNewKeyFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a new key to %s: give it to every node as --secret-key-file, and keep a copy: without it the stored passwords cannot be opened\n", *out)
	return nil
}

// writeNewKeyFile writes a new random key to path, base64 (standard
// encoding) on one line, with mode 0600. It refuses to replace an
// existing file: that may be the key the stored passwords are sealed with.
func writeNewKeyFile(path string) (err error) {
	key := make([]byte, keySize)
	rand.Read(key) // never fails (crypto/rand)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not overwriting it (it may be the key the stored passwords are sealed with); remove it first if it really is not", path)
	}
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("key file %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path) // no half-written key left behind
		}
	}()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	return nil
}
