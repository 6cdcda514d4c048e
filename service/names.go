package service

import (
	"fmt"
	"regexp"
)

// Names of the streams, subjects and buckets in NATS.
const (
	StreamEvents   = "IMAPKIT_EVENTS"
	StreamDead     = "IMAPKIT_DEAD"
	BucketAccounts = "IMAPKIT_ACCOUNTS"
	BucketState    = "IMAPKIT_STATE"
	BucketLeases   = "IMAPKIT_LEASES"
	BucketNodes    = "IMAPKIT_NODES"
	BucketStatus   = "IMAPKIT_STATUS"

	// SubjectEvents prefixes the subject of every event:
	// imapkit.events.ACCOUNT.KIND.
	SubjectEvents = "imapkit.events"
	// SubjectDead prefixes the subject of every dead letter:
	// imapkit.dead.ACCOUNT.KIND.
	SubjectDead = "imapkit.dead"
)

// accountName is what an account name may be: it is a token of NATS
// subjects and a KV key, so letters, digits, '-' and '_' only.
var accountName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports why name cannot name an account, or nil.
func ValidName(name string) error {
	if !accountName.MatchString(name) {
		return fmt.Errorf("account name %q: use 1 to 64 letters, digits, '-' or '_' (it is a NATS subject token and a KV key)", name)
	}
	return nil
}

// EventSubject is the subject of an event of account's of the given kind.
func EventSubject(account, kind string) string {
	return SubjectEvents + "." + account + "." + kind
}

// DeadSubject is the subject of a dead letter of account's of the given
// kind.
func DeadSubject(account, kind string) string {
	return SubjectDead + "." + account + "." + kind
}
