package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	t.Parallel()
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	const rev = "f846833abcdef0123456789abcdef0123456789a"
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: vcs("vcs.revision", rev)}, true, "imapkit v1.4.0 go1.26.8"},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")}, true, "imapkit (devel) revision " + rev + " go1.26.8"},
		{"modified checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", rev, "vcs.modified", "true")}, true, "imapkit (devel) revision " + rev + " (modified) go1.26.8"},
		{"checkout without VCS", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("-buildmode", "exe")}, true, "imapkit (devel) go1.26.8"},
		{"no build information", nil, false, "imapkit (unknown version) " + runtime.Version()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionText(tc.bi, tc.ok); got != tc.want {
				t.Errorf("versionText = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionCommand: --version and version print the version and Go's,
// and exit 0.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "imapkit ") || !strings.HasSuffix(stdout, " "+runtime.Version()+"\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and \"imapkit VERSION %s\"", args, code, stdout, stderr, runtime.Version())
		}
	}
}
