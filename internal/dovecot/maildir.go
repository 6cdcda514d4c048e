package dovecot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// userMaildir returns the root of user's Maildir, which holds INBOX.
func (s *Server) userMaildir(user string) (string, error) {
	if user == "" || strings.ContainsAny(user, "/\x00") || strings.HasPrefix(user, ".") {
		return "", fmt.Errorf("dovecot: invalid user name %q", user)
	}
	return filepath.Join(s.mailDir, user), nil
}

// mkdirOwned creates dir, if missing, owned by the dovecot user.
func (s *Server) mkdirOwned(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	return os.Chown(dir, s.uid, s.gid)
}

// doveadm runs "doveadm -c CONFIG args..." and returns its standard output.
func (s *Server) doveadm(args ...string) (string, error) {
	cmd := exec.Command(s.doveadmBin, append([]string{"-c", s.ConfigFile}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("dovecot: %s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// mailboxDir returns the Maildir folder of user's mailbox, creating the
// mailbox through doveadm if needed, so that Dovecot's mailbox list index
// (and so LIST in sessions already logged in) knows about it.
func (s *Server) mailboxDir(user, mailbox string) (string, error) {
	root, err := s.userMaildir(user)
	if err != nil {
		return "", err
	}
	if strings.EqualFold(mailbox, "INBOX") {
		if err := s.mkdirOwned(root); err != nil {
			return "", fmt.Errorf("dovecot: creating Maildir of user %s: %w", user, err)
		}
		return root, nil
	}
	if mailbox == "" || strings.ContainsAny(mailbox, "\x00\r\n") {
		return "", fmt.Errorf("dovecot: invalid mailbox name %q", mailbox)
	}
	key := [2]string{user, mailbox}
	s.boxMu.Lock()
	defer s.boxMu.Unlock()
	if dir, ok := s.boxes[key]; ok {
		return dir, nil
	}
	out, err := s.doveadm("mailbox", "path", "-u", user, mailbox)
	if err != nil {
		return "", err
	}
	dir := strings.TrimSpace(out)
	if i := strings.LastIndexByte(dir, '\n'); i >= 0 {
		dir = dir[i+1:]
	}
	if !filepath.IsAbs(dir) || !strings.HasPrefix(dir, root+string(filepath.Separator)) {
		return "", fmt.Errorf("dovecot: doveadm mailbox path for %q of user %s printed %q, not a folder in %s", mailbox, user, out, root)
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if _, err := s.doveadm("mailbox", "create", "-u", user, mailbox); err != nil && !strings.Contains(err.Error(), "already exists") {
			return "", err
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("dovecot: Maildir folder %s of mailbox %q (user %s) missing after doveadm mailbox create: %v", dir, mailbox, user, err)
	}
	if s.boxes == nil {
		s.boxes = map[[2]string]string{}
	}
	s.boxes[key] = dir
	return dir, nil
}

// DeliverMaildir writes msgs straight into user's Maildir as new, unseen
// messages (in cur/, without flags), bypassing IMAP, so that large
// mailboxes can be set up quickly: 10,000 messages take about as long as
// writing 10,000 files. mailbox is "INBOX" or any mailbox name, in UTF-8,
// with "/" as the hierarchy separator; a missing mailbox is created with
// "doveadm mailbox create" (tens of milliseconds). The user need not have
// logged in before. Messages should use CRLF line endings, as messages
// appended over IMAP do. Their UIDs follow the order of msgs; their
// INTERNALDATEs are one second apart, the last one about now. Sessions see
// the messages at their next mailbox sync (NOOP, IDLE, ...).
func (s *Server) DeliverMaildir(user, mailbox string, msgs [][]byte) error {
	box, err := s.mailboxDir(user, mailbox)
	if err != nil {
		return err
	}
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := s.mkdirOwned(filepath.Join(box, d)); err != nil {
			return fmt.Errorf("dovecot: creating Maildir folder for %s of user %s: %w", mailbox, user, err)
		}
	}

	if len(msgs) == 0 {
		return nil
	}
	// Messages get mtimes (their INTERNALDATE) one second apart, oldest
	// first, and file names that start with that time, by which Dovecot
	// sorts new files when it assigns UIDs. The times keep increasing
	// across calls for the same mailbox, so that UIDs follow call order
	// even without a sync in between.
	n := time.Duration(len(msgs))
	base := time.Now().Truncate(time.Second).Add(-n * time.Second)
	s.boxMu.Lock()
	if last, ok := s.stamps[box]; ok && !base.After(last) {
		base = last.Add(time.Second)
	}
	if s.stamps == nil {
		s.stamps = map[string]time.Time{}
	}
	s.stamps[box] = base.Add((n - 1) * time.Second)
	s.boxMu.Unlock()

	// Write to tmp/ and rename into cur/, as Maildir requires, so Dovecot
	// never sees a partial file.
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
