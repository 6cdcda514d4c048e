package dovecot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// userMaildir returns the root of user's Maildir.
func (s *Server) userMaildir(user string) (string, error) {
	if user == "" || strings.ContainsAny(user, "/\x00") || user == "." || user == ".." {
		return "", fmt.Errorf("dovecot: invalid user name %q", user)
	}
	return filepath.Join(s.mailDir, user), nil
}

// mailboxDir maps an IMAP mailbox name to its Maildir++ folder.
// The namespace separator is "/"; on disk Maildir++ uses "." instead.
func mailboxDir(root, mailbox string) (string, error) {
	if strings.EqualFold(mailbox, "INBOX") {
		return root, nil
	}
	if mailbox == "" || strings.ContainsAny(mailbox, ".\x00\r\n") ||
		strings.HasPrefix(mailbox, "/") || strings.HasSuffix(mailbox, "/") || strings.Contains(mailbox, "//") {
		return "", fmt.Errorf("dovecot: unsupported mailbox name %q for Maildir delivery", mailbox)
	}
	return filepath.Join(root, "."+strings.ReplaceAll(mailbox, "/", ".")), nil
}

// mkdirOwned creates dir (and missing parents up to s.mailDir) owned by the
// dovecot user.
func (s *Server) mkdirOwned(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != s.mailDir && parent != dir {
		if err := s.mkdirOwned(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	return os.Chown(dir, s.uid, s.gid)
}

// DeliverMaildir writes msgs straight into user's Maildir as unseen
// messages in cur/, bypassing IMAP, so that large mailboxes can be set up
// quickly (10,000 messages take well under a few seconds). mailbox is
// "INBOX" or a mailbox name using "/" as the hierarchy separator (it may not
// contain "."); its folder is created if missing. Messages should use CRLF
// line endings, as messages appended over IMAP do. Dovecot picks the
// messages up at the next mailbox sync (SELECT, NOOP, IDLE, ...).
func (s *Server) DeliverMaildir(user, mailbox string, msgs [][]byte) error {
	root, err := s.userMaildir(user)
	if err != nil {
		return err
	}
	box, err := mailboxDir(root, mailbox)
	if err != nil {
		return err
	}
	for _, d := range []string{root, box, filepath.Join(box, "cur"), filepath.Join(box, "new"), filepath.Join(box, "tmp")} {
		if err := s.mkdirOwned(d); err != nil {
			return fmt.Errorf("dovecot: creating Maildir folder for %s of user %s: %w", mailbox, user, err)
		}
	}
	if box != root {
		// Dovecot marks Maildir++ folders with this (empty) file.
		f := filepath.Join(box, "maildirfolder")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		if err := os.Chown(f, s.uid, s.gid); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}

	// Write to tmp/ and rename into cur/, as Maildir requires, so Dovecot
	// never sees a partial file. Messages get consecutive mtimes (their
	// INTERNALDATE), oldest first, so that Dovecot's UIDs follow msgs order
	// when it sorts new files.
	base := time.Now().Add(-time.Duration(len(msgs)) * time.Second)
	const workers = 8
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		next     atomic.Int64
	)
	next.Store(-1)
	for range min(workers, len(msgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i >= len(msgs) {
					return
				}
				if err := s.writeMessage(box, base.Add(time.Duration(i)*time.Second), msgs[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("dovecot: delivering to %s of user %s: %w", mailbox, user, firstErr)
	}
	return nil
}

// writeMessage stores one message in box/cur with the given mtime.
func (s *Server) writeMessage(box string, mtime time.Time, msg []byte) error {
	seq := s.seq.Add(1)
	name := fmt.Sprintf("%d.M%dP%dQ%d.imapkit,S=%d", mtime.Unix(), mtime.Nanosecond()/1000, os.Getpid(), seq, len(msg))
	tmp := filepath.Join(box, "tmp", name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		return err
	}
	if err := os.Chown(tmp, s.uid, s.gid); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(box, "cur", name+":2,"))
}
