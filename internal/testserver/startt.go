package testserver

import "testing"

// StartT starts a server for a test with start, failing the test (never
// skipping it, except with -short: the edit-test loop runs what needs no
// server, and CI runs without it) if that is impossible, and stops the
// server when the test and its subtests finish. name says which server
// ("Cyrus IMAP") in messages.
func StartT[S interface{ Stop() error }](t testing.TB, name string, start func() (S, error)) S {
	t.Helper()
	if testing.Short() {
		t.Skip("needs " + name + ": skipped with -short")
	}
	s, err := start()
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping %s: %v", name, err)
		}
	})
	return s
}
