package imap_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"time"

	"github.com/imapkit/imap"
)

// exampleServer starts a one-connection fake IMAP server on 127.0.0.1 for
// the examples and returns its address. It answers each command with the
// reply script gives for the command's name ("TAG" stands for the
// command's tag; the untagged DONE that ends IDLE is looked up as "DONE"
// and uses IDLE's tag), or with a plain OK.
func exampleServer(script map[string]string) string {
	replies := map[string]string{
		"CAPABILITY": "* CAPABILITY IMAP4rev1 IDLE\r\nTAG OK CAPABILITY completed\r\n",
		"LOGIN":      "TAG OK [CAPABILITY IMAP4rev1 IDLE] LOGIN completed\r\n",
		"SELECT":     "* 3 EXISTS\r\n* OK [UIDVALIDITY 42] UIDs valid\r\nTAG OK [READ-WRITE] SELECT completed\r\n",
		"DONE":       "TAG OK IDLE terminated\r\n",
		"LOGOUT":     "* BYE logging out\r\nTAG OK LOGOUT completed\r\n",
	}
	for name, reply := range script {
		replies[name] = reply
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		defer ln.Close()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "* OK [CAPABILITY IMAP4rev1 IDLE] example server ready\r\n")
		r := bufio.NewReader(conn)
		tag := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\r\n")
			name := "DONE"
			if line != "DONE" {
				var rest string
				tag, rest, _ = strings.Cut(line, " ")
				name, _, _ = strings.Cut(rest, " ")
				name = strings.ToUpper(name)
			}
			reply, ok := replies[name]
			if !ok {
				reply = "TAG OK " + name + " completed\r\n"
			}
			if _, err := io.WriteString(conn, strings.ReplaceAll(reply, "TAG", tag)); err != nil || name == "LOGOUT" {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// Connect, log in, select a mailbox and fetch a header field.
func ExampleDial() {
	addr := exampleServer(map[string]string{ // a local fake server
		"FETCH": "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: Hello\r\n\r\n)\r\nTAG OK FETCH completed\r\n",
	})
	ctx := context.Background()
	// Real servers: imap.DialTLS(ctx, "imap.example.com", nil). The fake
	// server speaks plain TCP, so credentials need InsecureAuth.
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Logout(ctx)

	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	res, err := c.Select(ctx, "INBOX", false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("messages:", string(res.Data[0].Text))
	fmt.Println("uidvalidity:", c.Response("UIDVALIDITY").Last())

	res, err = c.Fetch(ctx, "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range res.Data {
		if d.IsLiteral() {
			fmt.Println(strings.TrimSpace(string(d.Literal)))
		}
	}
	// Output:
	// messages: 3
	// uidvalidity: 42
	// Subject: Hello
}

// Fetch typed messages: each FETCH response is parsed as it is read, so
// the raw response is never held in memory.
func ExampleClient_FetchMessages() {
	addr := exampleServer(map[string]string{
		"FETCH": "* 1 FETCH (UID 7 FLAGS (\\Seen) ENVELOPE (\"Mon, 1 Jun 2026 10:00:00 +0000\" {7}\r\nGrüße ((\"Ada\" NIL \"ada\" \"example.org\")) NIL NIL NIL NIL NIL NIL \"<1@example.org>\"))\r\n" +
			"* 2 FETCH (UID 9 FLAGS () ENVELOPE (NIL \"Lunch?\" ((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL NIL NIL NIL NIL))\r\n" +
			"TAG OK FETCH completed\r\n",
	})
	ctx := context.Background()
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Logout(ctx)
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", true); err != nil {
		log.Fatal(err)
	}
	msgs, err := c.FetchMessages(ctx, "1:*", "(UID FLAGS ENVELOPE)")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Println(m.UID, m.HasFlag(`\Seen`), m.Envelope.Subject, m.Envelope.From[0].Addr())
	}
	// Output:
	// 7 true Grüße ada@example.org
	// 9 false Lunch? bob@example.org
}

// Index a large mailbox in constant memory: FetchEachMessage hands over
// each message as soon as it is parsed, and keeps none of them.
func ExampleClient_FetchEachMessage() {
	addr := exampleServer(map[string]string{
		"FETCH": "* 1 FETCH (UID 7 RFC822.SIZE 1200 ENVELOPE (NIL \"Agenda\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n" +
			"* 2 FETCH (UID 9 RFC822.SIZE 56000 ENVELOPE (NIL \"Photos\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n" +
			"TAG OK FETCH completed\r\n",
	})
	ctx := context.Background()
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Logout(ctx)
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", true); err != nil {
		log.Fatal(err)
	}
	var total int64
	err = c.FetchEachMessage(ctx, "1:*", "(UID RFC822.SIZE ENVELOPE)", func(m *imap.Message) error {
		total += m.Size
		fmt.Println(m.UID, m.Envelope.Subject)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("total", total)
	// Output:
	// 7 Agenda
	// 9 Photos
	// total 57200
}

// Walk a large mailbox in constant memory: FetchEach hands over each raw
// response as it is read; copy what you keep.
func ExampleClient_FetchEach() {
	addr := exampleServer(map[string]string{
		"FETCH": "* 1 FETCH (UID 7 RFC822.SIZE 1200)\r\n* 2 FETCH (UID 9 RFC822.SIZE 56000)\r\nTAG OK FETCH completed\r\n",
	})
	ctx := context.Background()
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Logout(ctx)
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", true); err != nil {
		log.Fatal(err)
	}
	var total int64
	_, err = c.FetchEach(ctx, "1:*", "(UID RFC822.SIZE)", func(r imap.Response) error {
		m, err := imap.ParseFetchResponse(r) // or keep bytes.Clone(r.Data[0].Text)
		if err != nil {
			return err
		}
		total += m.Size
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bytes in mailbox:", total)
	// Output:
	// bytes in mailbox: 57200
}

// Wait for changes to the selected mailbox with IDLE, for a limited time.
func ExampleClient_Idle() {
	addr := exampleServer(map[string]string{ // a local fake server
		"IDLE": "+ idling\r\n* 4 EXISTS\r\n* 1 EXPUNGE\r\n",
	})
	ctx := context.Background()
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Logout(ctx)
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		log.Fatal(err)
	}

	// Real code idles for up to 29 minutes, then issues IDLE again.
	idler, err := c.Idle(ctx, 300*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	for r, err := range idler.Responses() { // ends at the deadline
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Type, string(r.Data[0].Text))
	}
	if err := idler.Close(); err != nil { // sends DONE
		log.Fatal(err)
	}
	// Output:
	// EXISTS 4
	// EXPUNGE 1
}

// Handle a run of responses, such as the EXPUNGEs of a bulk delete, as one
// batch.
func ExampleIdler_Burst() {
	addr := exampleServer(map[string]string{ // a local fake server
		"IDLE": "+ idling\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n",
	})
	ctx := context.Background()
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Logout(ctx)
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		log.Fatal(err)
	}

	idler, err := c.Idle(ctx, 29*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	for batch, err := range idler.Burst(100 * time.Millisecond) {
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range batch {
			fmt.Println(r.Type, string(r.Data[0].Text))
		}
		break // one batch, like imaplib's burst()
	}
	if err := idler.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// EXPUNGE 3
	// EXPUNGE 2
	// EXPUNGE 1
}
