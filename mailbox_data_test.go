package imap

import (
	"reflect"
	"testing"
)

func TestParseMailboxData(t *testing.T) {
	// What the client caches for Dovecot's answer to SELECT INBOX:
	//
	//	* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
	//	* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted.
	//	* 3 EXISTS
	//	* 3 RECENT
	//	* OK [UNSEEN 1] First unseen.
	//	* OK [UIDVALIDITY 1795334728] UIDs valid
	//	* OK [UIDNEXT 4] Predicted next UID
	//	* OK [HIGHESTMODSEQ 2] Highest
	//	c OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).
	dovecot := map[string][]string{
		"FLAGS":          {`(\Answered \Flagged \Deleted \Seen \Draft)`},
		"PERMANENTFLAGS": {`(\Answered \Flagged \Deleted \Seen \Draft \*)`},
		"EXISTS":         {"3"},
		"RECENT":         {"3"},
		"UNSEEN":         {"1"},
		"UIDVALIDITY":    {"1795334728"},
		"UIDNEXT":        {"4"},
		"HIGHESTMODSEQ":  {"2"},
		"READ-WRITE":     {""},
	}
	tests := []struct {
		name  string
		cache map[string][]string
		want  *MailboxData
	}{
		{"dovecot select", dovecot, &MailboxData{
			Flags:          []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`},
			PermanentFlags: []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`, `\*`},
			Exists:         3, Recent: 3, Unseen: 1, UIDValidity: 1795334728, UIDNext: 4, HighestModSeq: 2,
		}},
		{"examine, later values win", map[string][]string{
			"EXISTS":         {"2", "5"},
			"READ-ONLY":      {""},
			"PERMANENTFLAGS": {"()"},
			"FLAGS":          {`(\Seen [test])`},
		}, &MailboxData{Exists: 5, ReadOnly: true, PermanentFlags: []string{}, Flags: []string{`\Seen`, "[test]"}}},
		{"nothing cached", nil, &MailboxData{}},
		{"garbage ignored", map[string][]string{
			"EXISTS":        {"x"},
			"RECENT":        {"4294967296"},
			"UIDVALIDITY":   {"12 trailing"},
			"FLAGS":         {`\Seen`},
			"HIGHESTMODSEQ": {"99999999999999999999"},
		}, &MailboxData{UIDValidity: 12}},
	}
	for _, tt := range tests {
		got := ParseMailboxData(func(typ string) []Datum {
			var out []Datum
			for _, s := range tt.cache[typ] {
				out = append(out, Datum{Text: []byte(s)})
			}
			return out
		})
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseMailboxData =\n %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}
