package oauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// maxMargin is how long ahead of its expiry an access token is renewed, at
// most: a token handed out is then still good when the server checks it.
const maxMargin = 60 * time.Second

// refreshTimeout bounds one refresh, for callers whose context has no
// deadline (Token has none).
const refreshTimeout = 30 * time.Second

// FileSource hands out the access token of a token file, refreshing it
// ahead of its expiry and writing the new tokens back to the file. It is
// an oauth2.TokenSource, and safe for concurrent use; other processes may
// share the file (it is read again when it changes on disk).
type FileSource struct {
	path string
	// lock is held while the state is read or changed, a refresh
	// included: one refresh at a time, and waiting for it honours the
	// waiter's context, which a mutex would not.
	lock chan struct{}

	file      *File
	stat      fileStamp // of the file on disk when file was read or written
	renewAt   time.Time // when file.AccessToken is due to be renewed; zero: never
	unwritten error     // why the last refreshed tokens are not in the file yet
}

// fileStamp tells whether the file on disk changed. Modification times
// are coarse (a kernel tick), so two writes of the same size within one
// tick look alike: the file identity tells them apart, as WriteFile
// always renames a new file into place.
type fileStamp struct {
	fi os.FileInfo // nil: no file
}

func (a fileStamp) same(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == b.fi
	}
	return os.SameFile(a.fi, b.fi) && a.fi.ModTime().Equal(b.fi.ModTime()) && a.fi.Size() == b.fi.Size()
}

func (a fileStamp) mtime() time.Time {
	if a.fi == nil {
		return time.Time{}
	}
	return a.fi.ModTime()
}

// OpenFile reads the token file at path. The errors are those of
// ReadFile.
func OpenFile(path string) (*FileSource, error) {
	s := &FileSource{path: path, lock: make(chan struct{}, 1)}
	if err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns a valid access token, refreshing it when it is due. It is
// TokenContext without a deadline beyond a refresh's own bound.
//
// When refreshed tokens could not be written to the file, Token returns
// the (good) token together with that error, and tries the write again at
// every call until it succeeds: the tokens are kept in memory meanwhile.
func (s *FileSource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a valid access token, refreshing it when it is
// due; ctx bounds the wait for another caller's refresh and the refresh.
func (s *FileSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	if s.valid() {
		return s.token(), s.writeBack()
	}
	if err := s.readIfChanged(); err != nil {
		return nil, err
	}
	if s.valid() { // another process refreshed meanwhile
		return s.token(), nil
	}
	return s.refresh(ctx)
}

// RenewToken returns an access token other than refused, which a server
// did not accept (revoked early, say): it refreshes even if refused has
// not expired yet. When another caller (or process) has renewed since
// refused was handed out, it returns that newer token rather than
// refreshing again. A nil refused always refreshes.
func (s *FileSource) RenewToken(ctx context.Context, refused *oauth2.Token) (*oauth2.Token, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	newer := func() bool {
		return refused != nil && s.file.AccessToken != refused.AccessToken && s.valid()
	}
	if newer() {
		return s.token(), s.writeBack()
	}
	if err := s.readIfChanged(); err != nil {
		return nil, err
	}
	if newer() {
		return s.token(), nil
	}
	return s.refresh(ctx)
}

func (s *FileSource) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("oauth: waiting for the token of %s: %w", s.path, context.Cause(ctx))
	}
}

func (s *FileSource) release() { <-s.lock }

// valid tells whether the current access token may still be handed out.
func (s *FileSource) valid() bool {
	return s.file.AccessToken != "" && (s.renewAt.IsZero() || time.Now().Before(s.renewAt))
}

// token is the current access token. The refresh token stays here: the
// callers need only the access token.
func (s *FileSource) token() *oauth2.Token {
	return &oauth2.Token{AccessToken: s.file.AccessToken, TokenType: "Bearer", Expiry: s.file.Expiry}
}

// renewTime is when a token obtained at obtained and expiring at expiry is
// due for renewal: a margin ahead of expiry, at most maxMargin and at most
// a quarter of the token's lifetime, so that short-lived tokens are still
// used for most of their life rather than refreshed at every call.
func renewTime(obtained, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return time.Time{}
	}
	lifetime := expiry.Sub(obtained)
	if lifetime <= 0 {
		return expiry
	}
	return expiry.Add(-min(maxMargin, lifetime/4))
}

// read reads the file and notes its stamp.
func (s *FileSource) read() error {
	// The stamp is taken first: a change between the two is then seen as
	// a change at the next check, never missed.
	st, err := s.stamp()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("oauth: token file: %w", err)
	}
	f, err := ReadFile(s.path)
	if err != nil {
		return err
	}
	s.file, s.stat, s.unwritten = f, st, nil
	// The file was written when its token was obtained, so its mtime
	// stands for that time, unless the clock says otherwise.
	obtained := st.mtime()
	if obtained.IsZero() || obtained.After(time.Now()) {
		obtained = time.Now()
	}
	s.renewAt = renewTime(obtained, f.Expiry)
	return nil
}

func (s *FileSource) stamp() (fileStamp, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi}, nil
}

// readIfChanged reads the file again if it changed on disk since it was
// last read or written here: `imapkit login` or another process's refresh
// may have replaced the tokens, and a rotated refresh token makes the old
// one useless. Refreshed tokens not yet written are kept.
func (s *FileSource) readIfChanged() error {
	if s.unwritten != nil {
		return nil
	}
	st, err := s.stamp()
	if err == nil && st.same(s.stat) {
		return nil
	}
	return s.read()
}

// refresh redeems the refresh token for a new access token and writes
// the answer to the file.
func (s *FileSource) refresh(ctx context.Context) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	used := s.file.RefreshToken
	t, err := s.redeem(ctx)
	var refused *endpointError
	if errors.As(err, &refused) && refused.needsLogin() && s.unwritten == nil {
		// Another process may have rotated the refresh token just now,
		// making ours void: its successor is in the file then.
		if rerr := s.readIfChanged(); rerr == nil && s.file.RefreshToken != used {
			if s.valid() {
				return s.token(), nil
			}
			t, err = s.redeem(ctx)
		}
	}
	if errors.As(err, &refused) && refused.needsLogin() {
		return nil, &reauthError{msg: fmt.Sprintf("oauth: %s refused the refresh token of %s (%s): run imapkit login again to authorize anew", refused.URL, s.path, refused.brief())}
	}
	if err != nil {
		return nil, fmt.Errorf("oauth: refreshing the access token of %s: %w", s.path, err)
	}
	f := *s.file
	f.AccessToken, f.Expiry = t.AccessToken, t.Expiry
	if t.RefreshToken != "" { // rotated; else the old one stays good
		f.RefreshToken = t.RefreshToken
	}
	s.file = &f
	s.renewAt = renewTime(t.Obtained, t.Expiry)
	s.unwritten = errors.New("not written yet")
	return s.token(), s.writeBack()
}

// redeem sends the refresh request.
func (s *FileSource) redeem(ctx context.Context) (*tokenAnswer, error) {
	form := clientForm(s.file.ClientID, s.file.ClientSecret)
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", s.file.RefreshToken)
	if len(s.file.Scopes) > 0 {
		// Microsoft wants the scopes again; others accept them.
		form.Set("scope", strings.Join(s.file.Scopes, " "))
	}
	return requestToken(ctx, nil, s.file.TokenURL, form)
}

// writeBack writes refreshed tokens to the file if they are not there
// yet. Until that succeeds they are kept here (a rotated refresh token
// exists nowhere else) and every call reports the failure.
func (s *FileSource) writeBack() error {
	if s.unwritten == nil {
		return nil
	}
	if err := WriteFile(s.path, s.file); err != nil {
		s.unwritten = err
		return fmt.Errorf("oauth: the refreshed tokens are not saved (they are kept in memory; a rotated refresh token is lost if this process ends): %w", err)
	}
	s.unwritten = nil
	st, err := s.stamp()
	if err != nil {
		return fmt.Errorf("oauth: token file: %w", err)
	}
	s.stat = st
	return nil
}

// FileSource is used where x/oauth2 wants a TokenSource.
var _ oauth2.TokenSource = (*FileSource)(nil)
