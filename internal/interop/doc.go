// Package interop holds no code: its tests run the library's command suite
// and the watcher's scenarios against every IMAP server the project tests
// with (Dovecot, Cyrus, Courier and mox, each started privately on
// loopback by its harness under internal/), with the differences each
// server is allowed stated in one table (differences_test.go), and keep
// docs/compatibility.md, the compatibility table, in step with what the
// run showed.
//
// Run it with
//
//	go test ./internal/interop
//
// and regenerate the table after changing a check or a difference with
//
//	go test ./internal/interop -run TestInterop -update
package interop
