// Package synth produces, from a generated corpus, the responses Dovecot
// would send for the benchmark workloads, imitating its output format
// (string quoting rules, literals for 8-bit strings, ENVELOPE and extended
// BODYSTRUCTURE layout, EXPUNGE order). It lets the micro-benchmarks and a
// machine without Dovecot run every contender without a recording.
package synth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/imapkit/imap/bench/corpus"
	"github.com/imapkit/imap/bench/replay"
)

// Mailbox names, matching the recorder's.
const (
	MailboxMain    = "INBOX"
	MailboxBig     = "big"
	MailboxSearch  = "search"
	MailboxExpunge = "expunge"
)

// Config sizes a synthetic set.
type Config struct {
	Seed     uint64
	Corpus   []*corpus.Message // INBOX contents; generated from Seed and Messages when nil
	Messages int
	BigSize  int // attachment size of the big message; 0 leaves it out
	SearchN  int // UIDs returned by SEARCH
	ExpungeN int // EXPUNGE lines pushed during IDLE
}

// Set builds a replay.Set for cfg.
func Set(cfg Config) *replay.Set {
	msgs := cfg.Corpus
	if msgs == nil {
		msgs = corpus.Generate(cfg.Seed, cfg.Messages)
	}
	s := replay.NewSet()
	s.Meta["source"] = "synthetic (Dovecot-like format)"
	s.Meta["server"] = "synthetic"
	s.Meta["seed"] = strconv.FormatUint(cfg.Seed, 10)
	s.Meta["messages"] = strconv.Itoa(len(msgs))
	s.Add(MailboxMain, replay.KindSelect, Select(len(msgs)))
	s.Add(MailboxMain, replay.KindFetchMeta, FetchMeta(msgs))
	s.Add(MailboxMain, replay.KindFetchBody, FetchBody(msgs))
	if cfg.BigSize > 0 {
		big := corpus.Big(cfg.Seed, cfg.BigSize)
		s.Meta["big_message_bytes"] = strconv.Itoa(len(big.Raw))
		s.Add(MailboxBig, replay.KindSelect, Select(1))
		s.Add(MailboxBig, replay.KindFetchBody, FetchBody([]*corpus.Message{big}))
	}
	if cfg.SearchN > 0 {
		s.Add(MailboxSearch, replay.KindSelect, Select(cfg.SearchN))
		s.Add(MailboxSearch, replay.KindSearch, Search(cfg.SearchN))
	}
	if cfg.ExpungeN > 0 {
		s.Add(MailboxExpunge, replay.KindSelect, Select(cfg.ExpungeN))
		s.Add(MailboxExpunge, replay.KindIdle, Expunges(cfg.ExpungeN))
	}
	return s
}

// Select answers EXAMINE of a mailbox holding n messages.
func Select(n int) *replay.Recording {
	return &replay.Recording{
		Untagged: fmt.Appendf(nil, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"+
			"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n* %d EXISTS\r\n* 0 RECENT\r\n"+
			"* OK [UIDVALIDITY 1795334472] UIDs valid\r\n* OK [UIDNEXT %d] Predicted next UID\r\n", n, n+1),
		Tagged: "OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).",
	}
}

// FetchMeta answers FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE
// BODYSTRUCTURE).
func FetchMeta(msgs []*corpus.Message) *replay.Recording {
	var b []byte
	for i, m := range msgs {
		b = fmt.Appendf(b, "* %d FETCH (FLAGS (%s) INTERNALDATE \"%s\" RFC822.SIZE %d ENVELOPE ",
			i+1, strings.Join(sortedFlags(m.Flags), " "), m.InternalDate.UTC().Format("02-Jan-2006 15:04:05 -0700"), len(m.Raw))
		b = appendEnvelope(b, &m.Envelope)
		b = append(b, " BODYSTRUCTURE "...)
		b = appendBody(b, m.Structure)
		b = append(b, ")\r\n"...)
	}
	return &replay.Recording{Untagged: b, Tagged: "OK Fetch completed (0.012 + 0.000 + 0.011 secs)."}
}

// FetchBody answers FETCH 1:* BODY.PEEK[].
func FetchBody(msgs []*corpus.Message) *replay.Recording {
	n := 0
	for _, m := range msgs {
		n += len(m.Raw) + 40
	}
	b := make([]byte, 0, n)
	for i, m := range msgs {
		b = fmt.Appendf(b, "* %d FETCH (BODY[] {%d}\r\n", i+1, len(m.Raw))
		b = append(b, m.Raw...)
		b = append(b, ")\r\n"...)
	}
	return &replay.Recording{Untagged: b, Tagged: "OK Fetch completed (0.002 + 0.000 + 0.001 secs)."}
}

// Search answers UID SEARCH ALL in a mailbox with UIDs 1..n.
func Search(n int) *replay.Recording {
	b := make([]byte, 0, 8+n*7)
	b = append(b, "* SEARCH"...)
	for i := 1; i <= n; i++ {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(i), 10)
	}
	b = append(b, "\r\n"...)
	return &replay.Recording{Untagged: b, Tagged: "OK Search completed (0.001 + 0.000 secs)."}
}

// Expunges is what an idling client receives when all n messages of its
// mailbox are expunged: Dovecot reports them highest first.
func Expunges(n int) *replay.Recording {
	var b []byte
	for i := n; i >= 1; i-- {
		b = fmt.Appendf(b, "* %d EXPUNGE\r\n", i)
	}
	return &replay.Recording{Untagged: b, Tagged: "OK Idle completed (0.503 + 0.501 + 0.502 secs)."}
}

func sortedFlags(fs []string) []string {
	out := slices.Clone(fs)
	slices.Sort(out)
	return out
}

func hasParam(ps [][2]string, name string) bool {
	for _, p := range ps {
		if strings.EqualFold(p[0], name) {
			return true
		}
	}
	return false
}

// appendString writes s the way Dovecot does: NIL when empty, a literal
// when it holds 8-bit bytes, CR, LF, '"' or '\', a quoted string otherwise.
func appendString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "NIL"...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c == '\r' || c == '\n' || c == '"' || c == '\\' {
			b = fmt.Appendf(b, "{%d}\r\n", len(s))
			return append(b, s...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendAddrs(b []byte, as []corpus.Address) []byte {
	if len(as) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range as {
		b = append(b, '(')
		b = appendString(b, a.Name)
		b = append(b, " NIL "...)
		b = appendString(b, a.Mailbox)
		b = append(b, ' ')
		b = appendString(b, a.Host)
		b = append(b, ')')
	}
	return append(b, ')')
}

func appendEnvelope(b []byte, e *corpus.Envelope) []byte {
	b = append(b, '(')
	b = appendString(b, e.Date)
	b = append(b, ' ')
	b = appendString(b, e.Subject)
	b = append(b, ' ')
	b = appendAddrs(b, e.From)
	b = append(b, ' ')
	b = appendAddrs(b, e.From) // sender
	b = append(b, ' ')
	if len(e.ReplyTo) > 0 {
		b = appendAddrs(b, e.ReplyTo)
	} else {
		b = appendAddrs(b, e.From)
	}
	b = append(b, ' ')
	b = appendAddrs(b, e.To)
	b = append(b, ' ')
	b = appendAddrs(b, e.Cc)
	b = append(b, " NIL "...) // bcc
	b = appendString(b, e.InReplyTo)
	b = append(b, ' ')
	b = appendString(b, e.MessageID)
	return append(b, ')')
}

func appendParams(b []byte, ps [][2]string) []byte {
	if len(ps) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendString(b, p[0])
		b = append(b, ' ')
		b = appendString(b, p[1])
	}
	return append(b, ')')
}

func appendDisposition(b []byte, p *corpus.Part) []byte {
	if p.Disposition == "" {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	b = appendString(b, p.Disposition)
	b = append(b, ' ')
	b = appendParams(b, p.DispParams)
	return append(b, ')')
}

// appendBody writes an extended BODYSTRUCTURE.
func appendBody(b []byte, p *corpus.Part) []byte {
	b = append(b, '(')
	if p.Type == "multipart" {
		for _, c := range p.Parts {
			b = appendBody(b, c)
		}
		b = append(b, ' ')
		b = appendString(b, p.Subtype)
		b = append(b, ' ')
		b = appendParams(b, p.Params)
		b = append(b, ' ')
		b = appendDisposition(b, p)
		return append(b, " NIL NIL)"...)
	}
	b = appendString(b, p.Type)
	b = append(b, ' ')
	b = appendString(b, p.Subtype)
	b = append(b, ' ')
	params := p.Params
	if p.Type == "text" && !hasParam(params, "charset") {
		params = append(params[:len(params):len(params)], [2]string{"charset", "us-ascii"})
	}
	b = appendParams(b, params)
	b = append(b, " NIL NIL "...)
	b = appendString(b, p.Encoding)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(p.Size), 10)
	if p.Type == "text" {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(p.Lines), 10)
	}
	b = append(b, " NIL "...) // md5
	b = appendDisposition(b, p)
	return append(b, " NIL NIL)"...)
}
