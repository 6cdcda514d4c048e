package imap

import (
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		resp string
		want []string
	}{
		{`1 (FLAGS (\Seen \Answered) UID 4)`, []string{`\Seen`, `\Answered`}},
		{`1 (UID 4 FLAGS ())`, []string{}},
		{`1 (UID 4)`, nil},
		{``, nil},
		// test_bracket_flags: flags may contain brackets.
		{`1 (FLAGS (\Seen [test]))`, []string{`\Seen`, `[test]`}},
		{`[PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft [test] \*)] Flags permitted.`,
			[]string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`, `[test]`, `\*`}},
		{`(\Answered \Flagged $Forwarded  Junk)`, nil},
		{`FLAGS (\Answered   $Forwarded  Junk)`, []string{`\Answered`, `$Forwarded`, `Junk`}},
		// The last occurrence wins, as with imaplib's greedy pattern.
		{`FLAGS (\Seen) FLAGS (\Deleted)`, []string{`\Deleted`}},
		{`FLAGS (\Seen) FLAGS (\Deleted`, []string{`\Seen`}},
		{`FLAGS (\Seen`, nil},
		{`FLAGS(\Seen)`, nil},
	}
	for _, tt := range tests {
		got := ParseFlags([]byte(tt.resp))
		if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("ParseFlags(%q) = %#v, want %#v", tt.resp, got, tt.want)
		}
	}
}

func TestFlagStringInterned(t *testing.T) {
	b := []byte(`\Seen`)
	if n := testing.AllocsPerRun(100, func() { _ = flagString(b, nil) }); n != 0 {
		t.Errorf("flagString(\\Seen) allocates %v times", n)
	}
	if got := flagString([]byte(`\Custom`), nil); got != `\Custom` {
		t.Errorf("flagString = %q", got)
	}
}
