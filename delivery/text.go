package delivery

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// textLine returns ev as a line for people: local time, kind, where, then
// whichever details the event has.
func (ev Event) textLine() ([]byte, error) {
	var b strings.Builder
	clock := ev.Time
	if t, err := time.Parse(time.RFC3339Nano, ev.Time); err == nil {
		clock = t.Local().Format("15:04:05")
	}
	fmt.Fprintf(&b, "%s %-12s %s", clock, ev.Kind, ev.where())
	if ev.OldMailbox != "" {
		b.WriteString(" from=" + ev.OldMailbox)
	}
	if ev.UID != 0 {
		fmt.Fprintf(&b, " uid=%d", ev.UID)
	}
	if ev.Flags != nil {
		fmt.Fprintf(&b, " flags=%v", ev.Flags)
	}
	if ev.From != "" {
		b.WriteString(" from=" + ev.From)
	}
	if ev.Subject != "" {
		fmt.Fprintf(&b, " subject=%q", ev.Subject)
	}
	if ev.Text != "" {
		b.WriteString(" " + ev.Text)
	}
	if ev.Error != "" {
		b.WriteString(" error=" + ev.Error)
	}
	// Every field comes from a server, some from any sender of mail.
	return []byte(printable(b.String()) + "\n"), nil
}

// printable returns s with anything a terminal would act on — a newline
// that would split the line, an escape sequence from a hostile server —
// replaced by a space.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s) // invalid UTF-8 comes out as U+FFFD, which is printable
}

// where names the event's mailbox as account/mailbox, or just the account
// for an event of the whole connection (disconnected, say).
func (ev Event) where() string {
	if ev.Mailbox == "" {
		return ev.Account
	}
	return ev.Account + "/" + ev.Mailbox
}
