package testserver

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// Greeting connects to addr — with TLS when cfg is not nil — reads the
// server's first line, answers it with bye (for example "z LOGOUT\r\n"),
// and returns the line without its CRLF. Harnesses use it to learn that a
// listener is up and is theirs; each checks the line itself. The dial
// gives up at deadline, the rest after 5 s.
func Greeting(addr string, cfg *tls.Config, deadline time.Time, bye string) (string, error) {
	d := net.Dialer{Deadline: deadline, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	// Closed through the TLS layer, if any, so that the server sees a
	// close_notify rather than logging an unexpected shutdown.
	defer func() { c.Close() }()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if cfg != nil {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c = tc
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading the greeting from %s: %w", addr, err)
	}
	c.Write([]byte(bye))
	return strings.TrimRight(line, "\r\n"), nil
}
