package rswebhooks

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on with errors.Is. The store returns them
// (wrapped); the delivery engine, the watcher, the reconciler and the
// registrations API match them without depending on the store.
var (
	// ErrNotFound: the id or key does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrConflict: an object with that id already exists.
	ErrConflict = errors.New("already exists")
)

// Kinds of stored records, the kind label of
// rswebhooks_store_unreadable_records_total and UnreadableError.Kind.
const (
	RecordWebhook  = "webhook"
	RecordEvent    = "event"
	RecordDelivery = "delivery"
	RecordAttempt  = "attempt"
)

// RecordKinds lists the record kinds.
func RecordKinds() []string {
	return []string{RecordWebhook, RecordEvent, RecordDelivery, RecordAttempt}
}

// ErrUnreadable is matched (errors.Is) by every UnreadableError.
var ErrUnreadable = errors.New("stored record cannot be decoded")

// UnreadableError reports a stored record that cannot be decoded (written
// by another release, by a bug, or damaged on disk). Listings skip such
// records; reads of one by id return this error. The store's
// DeleteUnreadable removes one without decoding it.
type UnreadableError struct {
	Kind string // RecordWebhook, RecordEvent, RecordDelivery or RecordAttempt
	// ID is the record's id; for an attempt "<deliveryID>.<n>".
	ID string
	// Owner is the owner index entry of an unreadable webhook ("" if none).
	Owner string
	Err   error
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("%s %s: %s: %v", e.Kind, e.ID, ErrUnreadable, e.Err)
}

// Is makes errors.Is(err, ErrUnreadable) true.
func (e *UnreadableError) Is(target error) bool { return target == ErrUnreadable }

func (e *UnreadableError) Unwrap() error { return e.Err }

// Unreadable describes one unreadable record for administrators.
type Unreadable struct {
	Kind  string `json:"Kind"`
	ID    string `json:"Id"`
	Error string `json:"Error"`
}

// DueRef is a pending delivery as the store's due queue lists it.
type DueRef struct {
	ID        string
	WebhookID string
	Due       time.Time
	// Leased is how many deliveries of the webhook were leased (attempts in
	// flight, on any node) when the queue was read; dispatchers use it to
	// keep the per-webhook concurrency across a cluster.
	Leased int
}

// WebhookCounts is the number of webhooks in each state of the
// rswebhooks_webhooks gauge. A paused webhook counts as paused whatever its
// owner; owner_missing counts the others whose owner is missing.
type WebhookCounts struct {
	Active, Paused, OwnerMissing int
}
