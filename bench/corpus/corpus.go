// Package corpus generates a deterministic, realistic mailbox for the
// benchmarks: RFC 5322 messages with varied headers (From, To, Cc, Date,
// Message-ID, In-Reply-To, References, Received, List-Id, DKIM-Signature),
// ASCII, RFC 2047-encoded and raw UTF-8 subjects and display names (a server
// sends raw 8-bit strings as literals inside ENVELOPE), text/plain,
// multipart/alternative and multipart/mixed messages with base64
// attachments of varied sizes.
//
// The same seed and count always give the same bytes. Besides the raw
// message, each Message carries the envelope and body structure it was built
// from, so that a synthetic server can answer FETCH ENVELOPE and
// BODYSTRUCTURE without parsing MIME.
package corpus

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Address is one mailbox of an envelope address list. Name is the display
// name exactly as it appears in the header (raw UTF-8, RFC 2047 encoded or
// plain ASCII); it may be empty.
type Address struct {
	Name    string
	Mailbox string
	Host    string
}

// Envelope is what a server reports as a message's ENVELOPE. String fields
// hold header values as they appear in the message (unfolded).
type Envelope struct {
	Date      string
	Subject   string
	From      []Address
	ReplyTo   []Address // empty means "same as From"
	To        []Address
	Cc        []Address
	InReplyTo string
	MessageID string
}

// Part is a node of a message's MIME structure, with the figures a server
// reports in BODYSTRUCTURE.
type Part struct {
	Type, Subtype string
	Params        [][2]string // Content-Type parameters, in order
	Encoding      string      // Content-Transfer-Encoding, e.g. "7bit", "base64"
	Size          int         // octets of the encoded body
	Lines         int         // lines of the body (text parts)
	Disposition   string      // "attachment", "inline" or ""
	DispParams    [][2]string
	Parts         []*Part // children of a multipart
}

// Message is one generated message.
type Message struct {
	Raw          []byte
	Envelope     Envelope
	Structure    *Part
	InternalDate time.Time
	Flags        []string
}

// Options tunes the generator. The zero value gives the default mix.
type Options struct {
	// BigAttachment, when positive, makes a single message whose attachment
	// takes about that many bytes once encoded (used for the large-literal
	// workload).
	BigAttachment int
}

// Generate returns n messages made from seed.
func Generate(seed uint64, n int) []*Message {
	g := newGen(seed)
	msgs := make([]*Message, n)
	for i := range msgs {
		msgs[i] = g.message(i, 0)
	}
	return msgs
}

// Big returns one message whose base64 attachment is about size bytes once
// encoded, so that the whole message is a single literal of that size.
func Big(seed uint64, size int) *Message {
	g := newGen(seed ^ 0x9e3779b97f4a7c15)
	return g.message(0, size)
}

// Tiny returns n minimal messages (about 300 bytes each), used to fill a
// mailbox for the large SEARCH workload.
func Tiny(seed uint64, n int) [][]byte {
	g := newGen(seed ^ 0x51ed270b27d3ef21)
	out := make([][]byte, n)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		from := g.address()
		d := base.Add(time.Duration(i) * time.Minute)
		out[i] = fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: note %d\r\nDate: %s\r\nMessage-ID: <%s>\r\n\r\nping %d\r\n",
			formatAddr(from), formatAddr(g.address()), i, d.Format(time.RFC1123Z), g.msgID(), i)
	}
	return out
}

// RawMessages returns the Raw bytes of msgs.
func RawMessages(msgs []*Message) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Raw
	}
	return out
}

type gen struct {
	r    *rand.Rand
	base time.Time
}

func newGen(seed uint64) *gen {
	return &gen{
		r:    rand.New(rand.NewPCG(seed, seed*0x2545f4914f6cdd1d+1)),
		base: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC),
	}
}

var (
	firstNames = []string{
		"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
		"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yuki",
		"José", "Zoë", "Øyvind", "Françoise", "Jürgen", "Łukasz", "Søren", "Ángel", "İlkay", "Михаил",
		"太郎", "Ngọc", "Nuño", "Björk", "Chloé",
	}
	lastNames = []string{
		"Smith", "Johnson", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson", "Thomas",
		"Müller", "Østergård", "Nuñez", "Kowalczyk", "Dubois", "Schröder", "Иванов", "山田", "Nguyễn", "O'Brien",
	}
	domains = []string{
		"example.com", "example.org", "mail.example.net", "lists.example.org", "corp.example.co.uk",
		"univ.example.edu", "example.de", "example.fr", "eng.example.io", "example.jp",
	}
	subjectWords = []string{
		"quarterly", "report", "meeting", "notes", "follow-up", "invoice", "draft", "review", "build",
		"release", "planning", "budget", "schedule", "update", "question", "proposal", "minutes",
		"deploy", "incident", "postmortem", "offsite", "travel", "contract", "design", "feedback",
	}
	utf8Subjects = []string{
		"Réunion de l'équipe — ordre du jour", "Überprüfung der Änderungen", "Предложение по проекту",
		"会議の議事録について", "Zpráva o stavu projektu", "¿Podemos hablar mañana?", "Årsrapport för 2024",
		"Ολοκλήρωση εργασιών", "Cập nhật tiến độ dự án", "Café ☕ on Friday?", "Déjà vu: the naïve façade",
		"Spotkanie zespołu — środa", "Fwd: Ärger mit der Übersetzung",
	}
	lorem = strings.Fields(`lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor
incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco
laboris nisi ut aliquip ex ea commodo consequat duis aute irure dolor in reprehenderit in voluptate velit
esse cillum dolore eu fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt in culpa
qui officia deserunt mollit anim id est laborum the build is green again thanks for the quick review
please find attached see you tomorrow let me know if anything is missing`)
	mailers   = []string{"Mutt/2.2.12", "Apple Mail (2.3774)", "Microsoft Outlook 16.0", "Thunderbird 128.4.0", "aerc 0.18.2", "Roundcube Webmail/1.6.9"}
	flagSets  = [][]string{{`\Seen`}, {`\Seen`}, {`\Seen`}, {}, {`\Seen`, `\Answered`}, {`\Seen`, `\Flagged`}, {}}
	attachExt = []struct{ typ, sub, ext string }{
		{"application", "pdf", "pdf"}, {"image", "png", "png"}, {"image", "jpeg", "jpg"},
		{"application", "zip", "zip"}, {"text", "csv", "csv"},
		{"application", "vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"},
	}
)

func (g *gen) pick(list []string) string { return list[g.r.IntN(len(list))] }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (g *gen) address() Address {
	first, last := g.pick(firstNames), g.pick(lastNames)
	local := strings.ToLower(asciiFold(first) + "." + asciiFold(last))
	a := Address{Mailbox: local, Host: g.pick(domains)}
	switch n := g.r.IntN(10); {
	case n == 0:
		// bare address
	case n < 3 && !isASCII(first+last):
		a.Name = encodeWord(first + " " + last)
	default:
		a.Name = first + " " + last
	}
	return a
}

// asciiFold keeps only ASCII letters, for local parts.
func asciiFold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}

func encodeWord(s string) string {
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func formatAddr(a Address) string {
	addr := a.Mailbox + "@" + a.Host
	if a.Name == "" {
		return addr
	}
	name := a.Name
	if strings.ContainsAny(name, `'.,"`) && !strings.HasPrefix(name, "=?") {
		name = `"` + strings.ReplaceAll(name, `"`, `\"`) + `"`
	}
	return name + " <" + addr + ">"
}

func formatList(as []Address) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = formatAddr(a)
	}
	return strings.Join(parts, ",\r\n\t")
}

func (g *gen) msgID() string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [20]byte
	for i := range b {
		b[i] = alnum[g.r.IntN(len(alnum))]
	}
	return string(b[:12]) + "." + string(b[12:]) + "@" + g.pick(domains)
}

func (g *gen) subject() string {
	switch n := g.r.IntN(100); {
	case n < 18:
		return g.pick(utf8Subjects) // raw UTF-8: sent as a literal
	case n < 28:
		return encodeWord(g.pick(utf8Subjects))
	case n < 32:
		return `Re: "` + g.pick(subjectWords) + `" \ status`
	default:
		k := 2 + g.r.IntN(6)
		w := make([]string, k)
		for i := range w {
			w[i] = g.pick(subjectWords)
		}
		s := strings.Join(w, " ")
		s = strings.ToUpper(s[:1]) + s[1:]
		if g.r.IntN(4) == 0 {
			s = "Re: " + s
		}
		return s
	}
}

// text returns about n bytes of CRLF-terminated prose lines.
func (g *gen) text(n int, utf8 bool) []byte {
	var b bytes.Buffer
	line := 0
	for b.Len() < n {
		w := g.pick(lorem)
		if utf8 && g.r.IntN(30) == 0 {
			w = g.pick([]string{"naïve", "déjà", "Grüße", "años", "żółw", "счёт", "東京"})
		}
		if line > 0 && line+1+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
			if g.r.IntN(6) == 0 {
				b.WriteString("\r\n")
			}
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func countLines(b []byte) int { return bytes.Count(b, []byte("\n")) }

func (g *gen) textPart(sub string, n int) (*Part, []byte, []byte) {
	utf8 := g.r.IntN(3) == 0
	body := g.text(n, utf8)
	if sub == "html" {
		var h bytes.Buffer
		h.WriteString("<html><head><meta charset=\"utf-8\"></head><body>\r\n")
		for _, para := range bytes.Split(body, []byte("\r\n\r\n")) {
			h.WriteString("<p>")
			h.Write(bytes.ReplaceAll(para, []byte("\r\n"), []byte("<br>\r\n")))
			h.WriteString("</p>\r\n")
		}
		h.WriteString("</body></html>\r\n")
		body = h.Bytes()
	}
	charset, enc := "us-ascii", "7bit"
	if utf8 {
		charset, enc = "utf-8", "8bit"
	}
	p := &Part{Type: "text", Subtype: sub, Params: [][2]string{{"charset", charset}}, Encoding: enc, Size: len(body), Lines: countLines(body)}
	hdr := fmt.Appendf(nil, "Content-Type: text/%s; charset=%s\r\nContent-Transfer-Encoding: %s\r\n", sub, charset, enc)
	return p, hdr, body
}

func (g *gen) attachment(size int) (*Part, []byte, []byte) {
	a := attachExt[g.r.IntN(len(attachExt))]
	raw := make([]byte, size*3/4)
	for i := 0; i < len(raw); i += 8 {
		v := g.r.Uint64()
		for j := 0; j < 8 && i+j < len(raw); j++ {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var body bytes.Buffer
	body.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		body.WriteString(enc[:76])
		body.WriteString("\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc)
	body.WriteString("\r\n")
	name := fmt.Sprintf("%s-%d.%s", g.pick(subjectWords), g.r.IntN(1000), a.ext)
	if g.r.IntN(5) == 0 {
		name = "résumé-" + name
	}
	p := &Part{
		Type: a.typ, Subtype: a.sub, Params: [][2]string{{"name", name}}, Encoding: "base64",
		Size: body.Len(), Lines: countLines(body.Bytes()),
		Disposition: "attachment", DispParams: [][2]string{{"filename", name}},
	}
	hdr := fmt.Appendf(nil, "Content-Type: %s/%s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n", a.typ, a.sub, name, name)
	return p, hdr, body.Bytes()
}

func (g *gen) boundary() string {
	return fmt.Sprintf("----=_Part_%d_%d.%d", g.r.IntN(1_000_000), g.r.IntN(1_000_000_000), g.r.IntN(1<<30))
}

// multipart assembles children into a multipart body.
func multipart(sub, boundary string, parts []*Part, hdrs, bodies [][]byte) (*Part, []byte, []byte) {
	var b bytes.Buffer
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for i := range parts {
		b.WriteString("\r\n--" + boundary + "\r\n")
		b.Write(hdrs[i])
		b.WriteString("\r\n")
		b.Write(bodies[i])
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	p := &Part{Type: "multipart", Subtype: sub, Params: [][2]string{{"boundary", boundary}}, Parts: parts, Size: b.Len(), Lines: countLines(b.Bytes())}
	hdr := fmt.Appendf(nil, "Content-Type: multipart/%s;\r\n\tboundary=\"%s\"\r\n", sub, boundary)
	return p, hdr, b.Bytes()
}

func (g *gen) alternative() (*Part, []byte, []byte) {
	n := 250 + g.r.IntN(900)
	p1, h1, b1 := g.textPart("plain", n)
	p2, h2, b2 := g.textPart("html", n)
	return multipart("alternative", g.boundary(), []*Part{p1, p2}, [][]byte{h1, h2}, [][]byte{b1, b2})
}

// attachmentSize draws a size with a long tail: mostly a few KB, sometimes
// tens of KB.
func (g *gen) attachmentSize() int {
	switch n := g.r.IntN(10); {
	case n < 6:
		return 600 + g.r.IntN(2400)
	case n < 9:
		return 3000 + g.r.IntN(6000)
	default:
		return 9000 + g.r.IntN(24000)
	}
}

func (g *gen) message(i, big int) *Message {
	date := g.base.Add(time.Duration(i)*37*time.Minute + time.Duration(g.r.IntN(3600))*time.Second)
	zones := []int{0, -5 * 3600, -8 * 3600, 3600, 2 * 3600, 9 * 3600, 5*3600 + 1800}
	zdate := date.In(time.FixedZone("", zones[g.r.IntN(len(zones))]))

	env := Envelope{
		Date:      zdate.Format("Mon, 02 Jan 2006 15:04:05 -0700"),
		Subject:   g.subject(),
		From:      []Address{g.address()},
		MessageID: "<" + g.msgID() + ">",
	}
	for range 1 + g.r.IntN(3) {
		env.To = append(env.To, g.address())
	}
	if g.r.IntN(10) < 3 {
		for range 1 + g.r.IntN(4) {
			env.Cc = append(env.Cc, g.address())
		}
	}
	if g.r.IntN(10) == 0 {
		env.ReplyTo = []Address{g.address()}
	}
	var refs []string
	if g.r.IntN(10) < 4 {
		for range 1 + g.r.IntN(4) {
			refs = append(refs, "<"+g.msgID()+">")
		}
		env.InReplyTo = refs[len(refs)-1]
	}
	if big > 0 {
		env.Subject = "Large attachment: " + g.pick(subjectWords)
	}

	// Body.
	var part *Part
	var ctHdr, body []byte
	switch n := g.r.IntN(100); {
	case big > 0:
		p1, h1, b1 := g.textPart("plain", 400)
		p2, h2, b2 := g.attachment(big)
		part, ctHdr, body = multipart("mixed", g.boundary(), []*Part{p1, p2}, [][]byte{h1, h2}, [][]byte{b1, b2})
	case n < 45:
		part, ctHdr, body = g.textPart("plain", 200+g.r.IntN(1800))
	case n < 75:
		part, ctHdr, body = g.alternative()
	default:
		var ps []*Part
		var hs, bs [][]byte
		if g.r.IntN(2) == 0 {
			p, h, b := g.alternative()
			ps, hs, bs = append(ps, p), append(hs, h), append(bs, b)
		} else {
			p, h, b := g.textPart("plain", 200+g.r.IntN(1200))
			ps, hs, bs = append(ps, p), append(hs, h), append(bs, b)
		}
		for range 1 + g.r.IntN(2) {
			p, h, b := g.attachment(g.attachmentSize())
			ps, hs, bs = append(ps, p), append(hs, h), append(bs, b)
		}
		part, ctHdr, body = multipart("mixed", g.boundary(), ps, hs, bs)
	}

	// Header.
	var h bytes.Buffer
	hops := 1 + g.r.IntN(3)
	for k := range hops {
		fmt.Fprintf(&h, "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby imap.example.com (Postfix) with ESMTPS id %X\r\n\tfor <%s@%s>; %s\r\n",
			k, g.pick(domains), k, g.pick(domains), g.r.IntN(250)+1, g.r.Uint32(), env.To[0].Mailbox, env.To[0].Host,
			zdate.Add(time.Duration(hops-k)*time.Second).Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	if g.r.IntN(3) == 0 {
		sig := make([]byte, 256)
		for k := range sig {
			sig[k] = byte(g.r.Uint32())
		}
		s := base64.StdEncoding.EncodeToString(sig)
		fmt.Fprintf(&h, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=sel1;\r\n\th=from:to:subject:date:message-id;\r\n\tbh=%s;\r\n\tb=%s\r\n\t %s\r\n",
			env.From[0].Host, s[:44], s[:70], s[70:140])
	}
	fmt.Fprintf(&h, "Date: %s\r\nFrom: %s\r\n", env.Date, formatAddr(env.From[0]))
	if len(env.ReplyTo) > 0 {
		fmt.Fprintf(&h, "Reply-To: %s\r\n", formatList(env.ReplyTo))
	}
	fmt.Fprintf(&h, "To: %s\r\n", formatList(env.To))
	if len(env.Cc) > 0 {
		fmt.Fprintf(&h, "Cc: %s\r\n", formatList(env.Cc))
	}
	fmt.Fprintf(&h, "Subject: %s\r\nMessage-ID: %s\r\n", env.Subject, env.MessageID)
	if env.InReplyTo != "" {
		fmt.Fprintf(&h, "In-Reply-To: %s\r\nReferences: %s\r\n", env.InReplyTo, strings.Join(refs, "\r\n "))
	}
	if g.r.IntN(4) == 0 {
		fmt.Fprintf(&h, "List-Id: <%s.%s>\r\nList-Unsubscribe: <mailto:leave-%s@%s>\r\n", g.pick(subjectWords), g.pick(domains), g.pick(subjectWords), g.pick(domains))
	}
	fmt.Fprintf(&h, "User-Agent: %s\r\nMIME-Version: 1.0\r\n", g.pick(mailers))
	h.Write(ctHdr)
	h.WriteString("\r\n")
	h.Write(body)

	flags := flagSets[g.r.IntN(len(flagSets))]
	return &Message{
		Raw:          h.Bytes(),
		Envelope:     env,
		Structure:    part,
		InternalDate: date.Add(time.Duration(hops+1) * time.Second),
		Flags:        flags,
	}
}
