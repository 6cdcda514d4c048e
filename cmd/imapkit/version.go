package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

var versionUsage = cmdUsage{
	command:  "version",
	synopsis: "",
	about: `Print the version of imapkit (its module version, or "(devel)" with the
commit it was built from) and the Go version it was built with.`,
	examples: []string{"imapkit version", "imapkit --version"},
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := versionUsage.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionText(debug.ReadBuildInfo()))
	return nil
}

// versionText is the line imapkit version prints, from the build
// information ok says is there.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "imapkit (unknown version) " + runtime.Version()
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var b strings.Builder
	b.WriteString("imapkit " + v)
	// A checkout's build has no module version: the commit says which
	// code it is.
	if v == "(devel)" {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			b.WriteString(" revision " + rev)
			if modified == "true" {
				b.WriteString(" (modified)")
			}
		}
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	b.WriteString(" " + goVersion)
	return b.String()
}
