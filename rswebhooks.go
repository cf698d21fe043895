// Package rswebhooks holds the domain types shared by the proxy, detect, store,
// deliver and admin packages: events, webhooks, deliveries, attempts and the
// identity of a caller. It has no dependencies beyond the standard library, so
// every other package can import it without cycles.
package rswebhooks

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
)

// Access decisions that are answers, not failures. An access checker returns
// them (wrapped or not) where it cannot say "allowed" or "denied"; any other
// error is transient and the decision is tried again later.
var (
	// ErrAccessUnknown: the owner's rights cannot be read (no service
	// account), so notifications are skipped with reason access_unknown.
	ErrAccessUnknown = errors.New("access unknown: no service account to read permissions")
	// ErrOwnerMissing: the report server says the webhook's owner does not
	// exist or is disabled; notifications are skipped with reason
	// owner_missing until the owner is back.
	ErrOwnerMissing = errors.New("owner missing: the report server does not know the user or has disabled it")
)

// Secret rotation conditions the store reports (wrapped) and the API turns
// into 409 answers.
var (
	// ErrRotationInProgress: a rotation with a grace period was asked for
	// while another one still runs.
	ErrRotationInProgress = errors.New("a secret rotation is already in its grace period")
	// ErrNoRotation: a promotion was asked for with no rotation running.
	ErrNoRotation = errors.New("no secret rotation is in its grace period")
)

// Filter names: the resource families a webhook can subscribe to. They are
// also the Action of every notification, so filters and receivers agree.
const (
	FilterReports     = "reports"
	FilterCategories  = "categories"
	FilterConnections = "connections"
	FilterTasks       = "tasks"
	FilterAlerts      = "alerts"
	// FilterAll is the wildcard stored when a webhook names no filter.
	FilterAll = "*"
)

// Filters lists the five filter names in the report server's order.
func Filters() []string {
	return []string{FilterReports, FilterCategories, FilterConnections, FilterTasks, FilterAlerts}
}

// Event types.
const (
	EventCreated  = "Created"
	EventUpdated  = "Updated"
	EventDeleted  = "Deleted"
	EventExecuted = "Executed"
)

// Event sources: what noticed the change.
const (
	// SourceProxy: a successful call through the proxy (knows the caller).
	SourceProxy = "proxy"
	// SourceWatch: an execution record the execution watcher found.
	SourceWatch = "watch"
	// SourceReconcile: a difference the reconciler found between the
	// report server's collections and its last snapshot (a change no rule
	// saw: the manager's own routes, storage tools, a node without a
	// sidecar, a cascade).
	SourceReconcile = "reconcile"
)

// EventTypes lists the four event types.
func EventTypes() []string {
	return []string{EventCreated, EventUpdated, EventDeleted, EventExecuted}
}

// Event is one change the report server made: a successful mutating call seen
// by the proxy, or an execution found by the watcher. Events are immutable
// once stored.
type Event struct {
	ID           string    `json:"Id"`     // sortable unique id (see NewID)
	Filter       string    `json:"Action"` // filter name: reports, categories, …
	Type         string    `json:"EventType"`
	ResourceID   string    `json:"ResourceId,omitempty"`
	ResourceName string    `json:"ResourceName,omitempty"`
	UserID       string    `json:"UserId,omitempty"`
	UserName     string    `json:"UserName,omitempty"`
	Time         time.Time `json:"TimestampUtc"`
	APIVersion   string    `json:"ApiVersion,omitempty"` // v1, v2 or v3
	Method       string    `json:"Method,omitempty"`
	Path         string    `json:"Path,omitempty"`
	RequestID    string    `json:"RequestId,omitempty"`
	// TraceParent is the W3C traceparent the event's deliveries continue:
	// the one of the report-server call that caused it (or of rswebhooks'
	// own span for it when spans are exported). Empty: a trace of its own.
	TraceParent string `json:"TraceParent,omitempty"`
	// TraceState is the W3C tracestate that came with TraceParent (vendor
	// data the caller's tracing system put there); attempts send it on.
	TraceState string `json:"TraceState,omitempty"`
	// Source is SourceProxy, SourceWatch or SourceReconcile. Events stored
	// before it existed have none; see EventSource.
	Source string `json:"Source,omitempty"`
	// Missing names the fields the event lacks: ResourceId, ResourceName
	// when the body that held them was not read (the proxy's capture
	// budget was spent, or the body exceeded the capture limit);
	// ExecutionId, ExecutionDateUtc, DocumentIds (and AlertTriggered) when
	// an execute call's run could not be read in time.
	Missing []string `json:"Missing,omitempty"`
	// Note says in words why fields are missing (no record in time, no
	// service account, links not possible), for people reading a delivery.
	Note string `json:"Note,omitempty"`
	// Reports only, when the call or the answer revealed it: the report's
	// category id and, when known, its name.
	CategoryID   string `json:"CategoryId,omitempty"`
	CategoryName string `json:"CategoryName,omitempty"`

	// Executions only.
	ExecutionID      string     `json:"ExecutionId,omitempty"`
	ExecutionDateUTC *time.Time `json:"ExecutionDateUtc,omitempty"`
	AlertTriggered   *bool      `json:"AlertTriggered,omitempty"`
	DocumentIDs      []string   `json:"DocumentIds,omitempty"`
	// Documents describes each document of the run (same order as
	// DocumentIDs) when the report server told; the delivery side adds a
	// download link per webhook.
	Documents []Document `json:"Documents,omitempty"`
}

// Document is one document an execution produced.
type Document struct {
	ID       string `json:"Id"`
	Name     string `json:"Name,omitempty"`
	Format   string `json:"Format,omitempty"`
	MimeType string `json:"MimeType,omitempty"`
}

// EventSource returns e.Source, or for an event stored before sources were
// recorded, the one that made it: the watcher for an execution found without
// a call, else the proxy.
func EventSource(e *Event) string {
	switch {
	case e.Source != "":
		return e.Source
	case e.Type == EventExecuted && e.ExecutionID != "" && e.Method == "":
		return SourceWatch
	}
	return SourceProxy
}

// User names the report-server user who owns a webhook or made a call.
type User struct {
	ID   string `json:"Id"`
	Name string `json:"Name"`
}

// Identity is an authenticated caller of the admin API.
type Identity struct {
	User
	// Admin is true for report-server administrators and the operator.
	Admin bool
	// Operator is true when the caller presented the operator token.
	Operator bool
}

// Webhook is a registration, in the report server's (ASP.NET WebHooks) JSON
// shape plus the read-only extensions User, CreatedUtc and UpdatedUtc.
type Webhook struct {
	ID          string            `json:"Id"`
	URI         string            `json:"WebHookUri"`
	Secret      string            `json:"Secret"`
	Description string            `json:"Description"`
	IsPaused    bool              `json:"IsPaused"`
	Filters     []string          `json:"Filters"`
	Headers     map[string]string `json:"Headers"`
	// Properties values are kept as the JSON the client sent (compacted),
	// so numbers and strings read back and are delivered exactly.
	Properties map[string]json.RawMessage `json:"Properties"`
	User       User                       `json:"User"`
	// OwnerMissing is set (read-only) while the report server answers that
	// the owner does not exist or is disabled: notifications are skipped
	// with reason owner_missing. It clears by itself when the owner is back
	// and when an administrator gives the webhook another owner.
	OwnerMissing bool `json:"OwnerMissing,omitempty"`
	// Rotation is set (read-only) while a secret rotation is in its grace
	// period: Secret is already the new secret and the replaced one still
	// signs alongside it (see SigningSecrets). Absent otherwise.
	Rotation   *Rotation `json:"Rotation,omitempty"`
	CreatedUTC time.Time `json:"CreatedUtc"`
	UpdatedUTC time.Time `json:"UpdatedUtc"`
	// Ordered sends the webhook's notifications one at a time in event
	// order: one that fails holds the ones behind it until it succeeds or
	// its retries run out. False (the default) sends up to the per-webhook
	// concurrency at once, so a retried notification can arrive after later
	// ones.
	Ordered bool `json:"Ordered"`
	// MaxPerSecond bounds how many notifications per second go to the
	// webhook (a token bucket; see package deliver). 0 (the default) sets
	// no bound beyond the per-webhook concurrency.
	MaxPerSecond float64 `json:"MaxPerSecond"`
}

// Secret rotation limits: the grace period a rotation gets when it names
// none, and the longest one it may ask for.
const (
	DefaultRotationGrace = 24 * time.Hour
	MaxRotationGrace     = 7 * 24 * time.Hour
)

// Rotation is a secret rotation in progress. During the grace period the
// Standard Webhooks webhook-signature carries a signature with the new
// secret and one with the previous secret; ms-signature, which holds one
// signature, keeps using the previous secret until the rotation is promoted
// or the grace period ends. The store erases the previous secret once the
// grace period is over.
type Rotation struct {
	// PreviousSecret is the secret Secret replaced. It is stored, but never
	// shown by the API.
	PreviousSecret string `json:"PreviousSecret,omitempty"`
	// StartedUTC is when the rotation began.
	StartedUTC time.Time `json:"StartedUtc"`
	// GraceUntilUTC is when the previous secret stops signing.
	GraceUntilUTC time.Time `json:"GraceUntilUtc"`
	// Promoted is true once ms-signature uses the new secret (before the
	// grace period ends, on the operator's word).
	Promoted bool `json:"Promoted"`
}

// Active reports whether the rotation's grace period still runs at now.
func (r *Rotation) Active(now time.Time) bool {
	return r != nil && r.PreviousSecret != "" && now.Before(r.GraceUntilUTC)
}

// SigningSecrets returns the secrets a notification sent at now is signed
// with: standard for webhook-signature (the current secret first, then the
// previous one during a rotation's grace period) and ms for ms-signature
// (the previous secret during the grace period until the rotation is
// promoted, else the current one).
func (w *Webhook) SigningSecrets(now time.Time) (standard []string, ms string) {
	if !w.Rotation.Active(now) {
		return []string{w.Secret}, w.Secret
	}
	ms = w.Rotation.PreviousSecret
	if w.Rotation.Promoted {
		ms = w.Secret
	}
	return []string{w.Secret, w.Rotation.PreviousSecret}, ms
}

// Bounds of Webhook.MaxPerSecond: 0 (no limit) or within
// [MinPerSecond, MaxPerSecondLimit].
const (
	// MinPerSecond is the smallest positive MaxPerSecond: one notification
	// per 100 s. It is also the floor of a rate lowered after 429 answers.
	MinPerSecond = 0.01
	// MaxPerSecondLimit is the largest MaxPerSecond.
	MaxPerSecondLimit = 1000
)

// Matches reports whether the webhook subscribes to the filter name. It does
// not look at IsPaused or at access rights.
func (w *Webhook) Matches(filter string) bool {
	for _, f := range w.Filters {
		if f == FilterAll || strings.EqualFold(f, filter) {
			return true
		}
	}
	return false
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	DeliveryGone      = "gone"
	DeliverySkipped   = "skipped"
)

// Delivery is one event (or ping) on its way to one webhook. Its ID is the
// notification body's Id and the webhook-id header, stable across attempts.
type Delivery struct {
	ID         string    `json:"Id"`
	WebhookID  string    `json:"WebhookId"`
	EventID    string    `json:"EventId"`
	Event      Event     `json:"Event"` // snapshot, so retention of events cannot break a delivery
	Ping       bool      `json:"Ping,omitempty"`
	State      string    `json:"State"`
	Reason     string    `json:"Reason,omitempty"` // why skipped or failed
	Attempts   int       `json:"Attempts"`
	NextUTC    time.Time `json:"NextAttemptUtc"` // when the next attempt is due (pending only)
	CreatedUTC time.Time `json:"CreatedUtc"`
	UpdatedUTC time.Time `json:"UpdatedUtc"`
	LastStatus int       `json:"LastStatusCode,omitempty"`
	LastError  string    `json:"LastError,omitempty"`
	// AccessPending is true from fan-out until the owner's right to read
	// the event was decided (just before the first attempt). Such a
	// delivery is shown to administrators only.
	AccessPending bool `json:"AccessPending,omitempty"`
}

// DeliveryID returns the id of the delivery of an event to a webhook: the
// event's time and 80 bits of a hash of both ids, so a fan-out that is
// repeated (after a crash) derives the same ids and writes nothing twice.
func DeliveryID(ev *Event, webhookID string) string {
	h := sha256.Sum256([]byte(ev.ID + "/" + webhookID))
	var e [10]byte
	copy(e[:], h[:])
	return IDFrom(ev.Time, e)
}

// Attempt records one try of a delivery.
type Attempt struct {
	DeliveryID      string              `json:"DeliveryId"`
	N               int                 `json:"Attempt"`
	StartedUTC      time.Time           `json:"StartedUtc"`
	Duration        time.Duration       `json:"DurationNs"`
	StatusCode      int                 `json:"StatusCode,omitempty"`
	Error           string              `json:"Error,omitempty"`
	ResponseHeaders map[string][]string `json:"ResponseHeaders,omitempty"`
	ResponseBody    string              `json:"ResponseBody,omitempty"` // first 16 KiB
}

// NewID returns a 26-character ULID: 48 bits of milliseconds then 80 random
// bits, in Crockford base32. IDs sort by creation time as strings.
func NewID(t time.Time) string {
	var entropy [10]byte
	_, _ = rand.Read(entropy[:])
	return IDFrom(t, entropy)
}

// IDFrom returns the ULID of t (milliseconds; times before 1970 count as 0)
// with the given 80 bits in place of random ones, for ids that must be the
// same each time they are derived.
func IDFrom(t time.Time, entropy [10]byte) string {
	var b [16]byte
	ms := max(t.UnixMilli(), 0)
	binary.BigEndian.PutUint64(b[0:8], uint64(ms)<<16)
	copy(b[6:], entropy[:])
	return encodeULID(b)
}

// IDSource hands out ULIDs that sort in the order they were handed out,
// also within one millisecond and when the clock steps back: an id in the
// same (or an earlier) millisecond as the previous one is the previous one
// plus one. Event order, which ordered webhooks keep, is id order. The
// zero value is ready; it is safe for concurrent use.
type IDSource struct {
	mu   sync.Mutex
	last [16]byte
	set  bool
}

// Next returns an id for an event at time t, greater than every id this
// source returned before.
func (s *IDSource) Next(t time.Time) string {
	var b [16]byte
	ms := max(t.UnixMilli(), 0)
	binary.BigEndian.PutUint64(b[0:8], uint64(ms)<<16)
	_, _ = rand.Read(b[6:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set && binary.BigEndian.Uint64(b[0:8])>>16 <= binary.BigEndian.Uint64(s.last[0:8])>>16 {
		b = s.last
		for i := 15; i >= 0; i-- { // add one; an overflow carries into the time
			b[i]++
			if b[i] != 0 {
				break
			}
		}
	}
	s.last, s.set = b, true
	return encodeULID(b)
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func encodeULID(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
