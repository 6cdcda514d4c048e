package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp ends a command whose usage was asked for (-h): exit status 0.
var errHelp = errors.New("help")

// usage describes a command for its -h and its usage errors.
type cmdUsage struct {
	command  string   // "watch", "accounts add"
	synopsis string   // what follows the command on its command line
	about    string   // what the command does, in a few lines
	examples []string // command lines, continued with "\" where long
}

// print writes the full usage: synopsis, description, examples and the
// flags of fs.
func (u *cmdUsage) print(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", u.line(), strings.TrimSpace(u.about))
	if len(u.examples) > 0 {
		fmt.Fprint(w, "\nexamples:\n")
		for _, e := range u.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		return
	}
	fmt.Fprint(w, "\nflags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// parse parses args, for a command that takes no positional argument.
// -h or --help prints the usage to stdout and returns errHelp; a bad flag
// prints the flag package's complaint and the usage to stderr and returns
// errUsage, as does an argument left over.
func (u *cmdUsage) parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	// The flag package prints the usage on both -h and a mistake, to one
	// writer; it is printed below instead, where each belongs.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			u.print(stdout, fs)
			return errHelp
		}
		u.print(stderr, fs)
		return errUsage
	}
	if fs.NArg() > 0 {
		return u.fail(stderr, "unexpected argument %q: %s takes flags only", fs.Arg(0), "imapkit "+u.command)
	}
	return nil
}

// fail reports a usage mistake on stderr, with the synopsis and where the
// rest is, and returns errUsage (exit status 2). The whole flag list
// would bury the one line that matters.
func (u *cmdUsage) fail(stderr io.Writer, format string, a ...any) error {
	fmt.Fprintf(stderr, "imapkit %s: %s\n", u.command, fmt.Sprintf(format, a...))
	fmt.Fprintf(stderr, "usage: %s\nRun \"imapkit %s -h\" for the flags and examples.\n", u.line(), u.command)
	return errUsage
}

// line is the synopsis line: "imapkit watch [flags]".
func (u *cmdUsage) line() string {
	return strings.TrimSpace("imapkit " + u.command + " " + u.synopsis)
}

// setFlags returns the names of the flags given on the command line, as
// opposed to those left at their defaults.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// given returns, as "--a, --b", those of names that are in set, in the
// order of names.
func given(set map[string]bool, names ...string) []string {
	var out []string
	for _, n := range names {
		if set[n] {
			out = append(out, "--"+n)
		}
	}
	return out
}
