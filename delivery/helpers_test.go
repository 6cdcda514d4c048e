package delivery

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor waits until cond holds, failing the test if it does not within
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond) // a polling interval, not a wait for an outcome
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ev returns a "new" event of account/mailbox with the given UID.
func ev(account, mailbox string, uid uint32) Event {
	return Event{
		ID: fmt.Sprintf("%s-%s-%d", account, mailbox, uid), Kind: "new", Time: "2025-03-04T07:06:10Z",
		Account: account, Mailbox: mailbox, UIDValidity: 7, UID: uid,
	}
}

// lines splits s into its lines.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
