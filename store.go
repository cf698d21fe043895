package rswebhooks

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseRefused: Store.Lease did not lease the delivery because it is
// not pending, not due yet, leased by someone else, or its webhook already
// has the allowed number of leased deliveries. Nothing was changed.
var ErrLeaseRefused = errors.New("delivery not leased")

// LeaseRequest says who leases a delivery and for how long (Store.Lease).
type LeaseRequest struct {
	// Holder names the leaseholder (node and process); required. Release
	// only releases a lease its holder took.
	Holder string
	// For is how long the lease lasts; after that any dispatcher may lease
	// the delivery again (a node that died mid-attempt releases it so).
	// It must cover an attempt with its access check. Required (> 0).
	For time.Duration
	// PerWebhook, when positive, refuses the lease while the delivery's
	// webhook already has that many unexpired leases, on any node: the
	// per-webhook concurrency, held across a cluster.
	PerWebhook int
}

// Store is the storage contract: everything the product keeps (webhooks,
// events, deliveries and attempts, the execution watcher's state, learned
// tokens, remembered administrators, correlator and reconciler state) and
// the behaviour the other packages rely on. Package store implements it
// with Badger (one node) and package pgstore with PostgreSQL (a cluster of
// nodes sharing one database); the conformance suite in store/storetest
// runs unchanged against both, and a new engine is one package plus that
// suite. Consumers declare the few methods they call; this is the union.
//
// Ids are ULIDs (NewID), so id order is creation order. Errors for an
// unknown id wrap ErrNotFound; for an existing one, ErrConflict. A store in
// degraded mode returns errors matching ErrStoreUnavailable and wrote
// nothing.
type Store interface {
	WebhookStore
	EventStore
	DeliveryStore
	StateStore

	// Backend names the engine ("badger", "postgres") for /readyz and logs.
	Backend() string
	// Ping proves the store can write and read back.
	Ping(ctx context.Context) error
	// Unavailable returns the degraded-mode condition as an error (a
	// *StoreUnavailableError), or nil when the store accepts writes.
	Unavailable() error
	// Run does the store's upkeep (retention, GC, health) until ctx is
	// done, then returns nil.
	Run(ctx context.Context) error
	// Close releases the store; it is called once, after Run returned.
	Close() error
}

// WebhookStore keeps webhook registrations. Webhooks never expire.
type WebhookStore interface {
	// CreateWebhook stores a new webhook; ErrConflict if the id exists.
	CreateWebhook(ctx context.Context, w *Webhook) error
	// UpdateWebhook replaces a stored webhook (ErrNotFound if absent). A
	// zero CreatedUTC keeps the stored one; OwnerMissing is kept while the
	// owner stays the same and cleared when it changes.
	UpdateWebhook(ctx context.Context, w *Webhook) error
	GetWebhook(ctx context.Context, id string) (*Webhook, error)
	// ListWebhooks returns the webhooks of ownerID ("" = everyone's),
	// oldest first (CreatedUTC, then id).
	ListWebhooks(ctx context.Context, ownerID string) ([]*Webhook, error)
	// DeleteWebhook removes one (ErrNotFound if absent); its deliveries
	// stay until they finish and expire.
	DeleteWebhook(ctx context.Context, id string) error
	// DeleteWebhooksOf removes every webhook of ownerID and says how many.
	DeleteWebhooksOf(ctx context.Context, ownerID string) (int, error)
	// SetPaused sets IsPaused (and UpdatedUTC when it changes).
	SetPaused(ctx context.Context, id string, paused bool) error
	// SetOwnerMissing sets OwnerMissing on every webhook of ownerID and
	// returns the ids of those it changed.
	SetOwnerMissing(ctx context.Context, ownerID string, missing bool) ([]string, error)
	CountWebhooks(ctx context.Context) (WebhookCounts, error)
	// RotateSecret makes secret the webhook's secret. With a positive grace
	// the current secret is kept as Rotation.PreviousSecret until now+grace
	// (an error wrapping ErrRotationInProgress while another grace period
	// runs); a grace of 0 replaces it at once and ends any rotation. It
	// returns the stored webhook, or ErrNotFound.
	RotateSecret(ctx context.Context, id, secret string, grace time.Duration) (*Webhook, error)
	// PromoteRotation makes ms-signature use the new secret before the
	// grace period ends, and when uri is not empty also makes it the
	// webhook's URI in the same write; an error wrapping ErrNoRotation when
	// no grace period runs.
	PromoteRotation(ctx context.Context, id, uri string) (*Webhook, error)
	// EndRotations erases the previous secret of every webhook whose grace
	// period is over and returns their ids. The store's Run calls it; it is
	// safe to call at any time. UpdateWebhook keeps Rotation while the
	// secret is unchanged and drops it when a new secret is written.
	EndRotations(ctx context.Context) ([]string, error)
	// WebhooksVersion changes after every webhook write that has returned
	// in this process and, in a shared store, soon after one on any node;
	// caches re-read webhooks when it moves.
	WebhooksVersion() uint64
}

// EventStore keeps events and fans them out into deliveries.
type EventStore interface {
	// AppendEvent stores a new event, waiting for fan-out; ErrConflict if
	// the id exists (deterministic ids make a repeated append harmless).
	// An event waiting for fan-out never expires.
	AppendEvent(ctx context.Context, e *Event) error
	GetEvent(ctx context.Context, id string) (*Event, error)
	// ListEvents returns up to limit (<= 0: all) events with ids after
	// afterID ("" = from the first), in id order: afterID is a cursor.
	ListEvents(ctx context.Context, afterID string, limit int) ([]*Event, error)
	// ScanEvents calls fn with the events whose ids lie in [from, to) ("" =
	// open), newest first when newestFirst is set, until fn returns false
	// or an error (returned as is).
	ScanEvents(ctx context.Context, from, to string, newestFirst bool, fn func(*Event) (bool, error)) error
	// UnfannedEvents returns up to limit (<= 0: all) events waiting for
	// fan-out, oldest (lowest id) first.
	UnfannedEvents(ctx context.Context, limit int) ([]*Event, error)
	// UnfannedStats counts the events waiting for fan-out and gives the
	// time of the oldest (zero when none).
	UnfannedStats(ctx context.Context) (n int, oldest time.Time, err error)
	// FanOut stores an event's deliveries and marks it fanned out, from
	// when it expires after the retention. It is idempotent: for an event
	// already fanned out (by any node) or unknown it writes nothing and
	// returns nil; a delivery id stored for another event or webhook is
	// ErrConflict. Pending deliveries enter the due queue and wake the
	// dispatchers (DueSignal).
	FanOut(ctx context.Context, eventID string, ds []*Delivery) error
}

// EventFanOut is one event's fan-out, for FanOutBatcher.
type EventFanOut struct {
	EventID    string
	Deliveries []*Delivery
}

// FanOutBatcher is implemented by stores that fan out several events in
// one call for much less than a call each (a shared store: one round trip
// and one transaction instead of one per event). Consumers use it when the
// store has it and fall back on FanOut.
type FanOutBatcher interface {
	// FanOutEvents is EventStore.FanOut for each of fs, in order, with
	// FanOut's guarantees per event (idempotent; an ErrConflict or other
	// failure of one event leaves the others' fan-out as if it were alone).
	// errs[i] is fs[i]'s error; errs is nil when all succeeded.
	FanOutEvents(ctx context.Context, fs []EventFanOut) (errs []error)
}

// NodeUnfanned is implemented by shared stores, where every node's
// delivery engine would otherwise read and fan out every node's new events
// (the copies after the first writing nothing, at the cost of a read, the
// deliveries built and a round trip each). The engine reads with it
// instead of UnfannedEvents when the store has it.
type NodeUnfanned interface {
	// NodeUnfannedEvents is UnfannedEvents (up to limit events waiting for
	// fan-out, oldest first) restricted to the events appended through
	// this store and, from any node, those whose time is more than a grace
	// period (a few seconds) old, so each node fans out its own events
	// and those of a node that died are still fanned out.
	NodeUnfannedEvents(ctx context.Context, limit int) ([]*Event, error)
}

// NodeWaker is implemented by shared stores where waking the other nodes'
// dispatchers is not free: each wake-up costs every node a due-queue read,
// and the writing transaction a turn on the server's notification queue.
// A node's engine fans out its own events (NodeUnfanned) and starts their
// deliveries itself; with NodeWaker it fans out without waking the other
// nodes and wakes them (WakeNodes) only when its dispatcher holds due
// deliveries it cannot start and another node could: no worker free, an
// owner at this node's limit, or more due than it read. Deliveries that
// became due otherwise (a node that died before starting its own, retries
// coming due) are found by the other nodes' own reads and polls.
type NodeWaker interface {
	// FanOutEventsHere is FanOutBatcher.FanOutEvents (same guarantees)
	// waking no dispatcher, on this node (DueSignal) or another: the
	// caller starts the deliveries or wakes the others.
	FanOutEventsHere(ctx context.Context, fs []EventFanOut) (errs []error)
	// WakeNodes wakes the dispatchers of every node sharing the store
	// soon, as a write that made deliveries due would. It never blocks
	// and calls close together cost one wake-up; a failure is the
	// store's to log (the nodes then find the deliveries at their poll).
	WakeNodes()
}

// DueScanPacer is implemented by stores whose due-queue reads (ScanDue)
// each cost a round trip to a shared server. DueScanInterval is the least
// time a dispatcher leaves between the reads that wake-ups and its own
// timer trigger (new events, DueSignal, the sweep of a long queue), so a
// burst of them costs one read, not one each; one within it is served at
// its end. Reads after a finished attempt are not held back.
type DueScanPacer interface {
	DueScanInterval() time.Duration
}

// LeaseChainer is implemented by stores whose Lease and Complete each cost
// a round trip to a shared server. The delivery engine then lets an attempt
// slot that just delivered go on with its webhook's next due delivery
// leased in the same transaction that recorded the attempt, so a slot's
// cycle is the attempt and one round trip, not three steps.
type LeaseChainer interface {
	// CompleteAndLease is Complete(d, a) and, in the same transaction,
	// when d was leased to req.Holder and that lease had not expired at
	// now, moves the lease (req.Holder, until now+req.For) to the earliest
	// due (due time, then id) pending delivery of d's webhook that is not
	// under an unexpired lease, and returns that delivery. It returns nil
	// when d was not so leased, when no delivery is free, or when the
	// webhook holds more than req.PerWebhook unexpired leases, d's
	// included (the limit was lowered): a moved lease leaves the
	// webhook's count as it was, so the limit holds cluster-wide.
	// Complete's failures are its errors, and then nothing was written or
	// leased. A delivery another transaction is leasing or completing at
	// that moment may be passed over.
	CompleteAndLease(ctx context.Context, d *Delivery, a *Attempt, now time.Time, req LeaseRequest) (next *Delivery, err error)
}

// DueByWebhookScanner is implemented by stores that can read the due queue
// bounded per webhook for much less than reading it in due order (a shared
// store: one statement that probes each webhook's own due order instead of
// walking one webhook's whole backlog). The delivery engine then reads at
// most what each webhook could start, and needs no sweep past a long
// backlog of one webhook.
type DueByWebhookScanner interface {
	// ScanDueByWebhook calls fn, in due order (then id), with the pending
	// deliveries due at or before now and not under an unexpired lease
	// that are among the earliest (due time, then id) perWebhook minus
	// the webhook's unexpired leases (none when that is 0 or less) of
	// their webhook, each with the number of leases its webhook holds,
	// until fn returns false or max (> 0) were read. A webhook at or over
	// perWebhook leases contributes nothing.
	ScanDueByWebhook(ctx context.Context, now time.Time, perWebhook, max int, fn func(DueRef) bool) error
}

// DeliveryStore keeps deliveries, their due queue, leases and attempts.
// Pending deliveries never expire; finished ones and attempts expire after
// the retention.
type DeliveryStore interface {
	// PutDelivery stores a new delivery (a ping); ErrConflict if the id
	// exists. A pending one enters the due queue and wakes dispatchers.
	PutDelivery(ctx context.Context, d *Delivery) error
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
	// ListDeliveries returns up to limit (<= 0: all) deliveries of a
	// webhook, newest (highest id) first.
	ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*Delivery, error)
	// ScanDue calls fn with each pending delivery due at or before now and
	// not under an unexpired lease, in due order (then id), until fn
	// returns false or max (> 0) were read.
	ScanDue(ctx context.Context, now time.Time, max int, fn func(DueRef) bool) error
	// ScanDueAfter is ScanDue resumed past after, a ref an earlier scan
	// passed to fn (due time, then id), for walking a long queue in steps.
	ScanDueAfter(ctx context.Context, now time.Time, after DueRef, max int, fn func(DueRef) bool) error
	// NextDue returns the earliest time a pending delivery is due; ok is
	// false when none is pending. A shared store may report when a leased
	// one's lease ends instead of its (past) due time.
	NextDue(ctx context.Context) (t time.Time, ok bool, err error)
	// QueueStats counts pending deliveries (leased or not) and gives the
	// earliest due time (zero when none).
	QueueStats(ctx context.Context) (depth int, oldestDue time.Time, err error)
	// Lease leases a pending delivery due at or before now to
	// req.Holder until now+req.For and returns it: while the lease lasts
	// no other Lease of it succeeds, on any node. ErrNotFound if absent;
	// ErrLeaseRefused (nothing changed) if not pending, not due, leased by
	// someone else, or its webhook holds req.PerWebhook leases.
	Lease(ctx context.Context, id string, now time.Time, req LeaseRequest) (*Delivery, error)
	// Release ends holder's lease of the delivery (an attempt interrupted
	// before it was recorded); a lease held by another or none is left
	// alone and is not an error.
	Release(ctx context.Context, id, holder string) error
	// Complete records attempt a (if non-nil, as number a.N) and d's new
	// state atomically, and ends any lease of d: d replaces the stored
	// delivery (ErrNotFound if absent), staying in the due queue at
	// d.NextUTC while pending.
	Complete(ctx context.Context, d *Delivery, a *Attempt) error
	// DiscardDelivery removes a delivery with its attempts (ErrNotFound if
	// absent).
	DiscardDelivery(ctx context.Context, id string) error
	// Attempts returns a delivery's attempts in attempt order.
	Attempts(ctx context.Context, deliveryID string) ([]*Attempt, error)
	// Redeliver queues a finished delivery again, due at now, keeping its
	// attempt count and history; a pending one waiting for a later retry is
	// brought forward to now and one already due is returned unchanged.
	Redeliver(ctx context.Context, id string, now time.Time) (*Delivery, error)
	// OrderHead returns the first pending delivery of a webhook in event
	// order (ordered webhooks send it before any other); ok is false when
	// none is pending.
	OrderHead(ctx context.Context, webhookID string) (r DueRef, ok bool, err error)
	// HoldDelivery moves a pending delivery due before until to until,
	// with reason, and reports whether it moved it.
	HoldDelivery(ctx context.Context, id string, until time.Time, reason string) (bool, error)
	// ReleaseDelivery brings a pending delivery held with reason and due
	// after now forward to now, clearing the reason; it reports whether it
	// did.
	ReleaseDelivery(ctx context.Context, id string, now time.Time, reason string) (bool, error)
	// PutDeliveries stores new deliveries (a replay) and returns how many
	// it wrote; an existing id is ErrConflict.
	PutDeliveries(ctx context.Context, ds []*Delivery) (int, error)
	// EventDeliveries returns the deliveries made for an event, oldest first.
	EventDeliveries(ctx context.Context, eventID string) ([]*Delivery, error)
	// DueSignal receives a value soon after deliveries became due through
	// a write of this store or, in a shared store, of any node (within
	// milliseconds), so dispatchers need not wait for their next poll.
	// Signals coalesce; the channel is never closed.
	DueSignal() <-chan struct{}
}

// StateStore keeps the small state of the other parts: the execution
// watcher's seen executions, and metadata (learned tokens under a hash of
// the token, remembered administrators, the correlator's claims, the
// watcher's and reconciler's state).
type StateStore interface {
	// SeenExecutions reports which ids were marked seen (and have not
	// expired); the map holds only those.
	SeenExecutions(ctx context.Context, ids []string) (map[string]bool, error)
	// MarkExecutionsSeen records ids as seen; they expire after the
	// retention.
	MarkExecutionsSeen(ctx context.Context, ids []string) error
	// GetMeta returns the value under key, or ErrNotFound (also once it
	// has expired).
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta stores a small value under key, for good. The keys "schema"
	// and "ping" are reserved.
	PutMeta(ctx context.Context, key string, v []byte) error
	// PutMetaUntil stores a value that disappears at expires (second
	// resolution); an expiry in the past removes it.
	PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error
	// PutMetaIfAbsent stores v under key for good unless a value is stored
	// there already (an expired one does not count), atomically for every
	// process sharing the store, and returns the value now stored: v with
	// created true when this call stored it, else the existing value. Of
	// several calls racing on one key exactly one creates and all return
	// the same value: a key made once by whichever node starts first. The
	// reserved keys are refused as by PutMeta.
	PutMetaIfAbsent(ctx context.Context, key string, v []byte) (stored []byte, created bool, err error)
	// ListMeta returns the unexpired values whose keys start with prefix
	// (not empty), in byte order of the keys. It is meant for small sets
	// (the correlator's claims), not for scanning the whole store.
	ListMeta(ctx context.Context, prefix string) ([]MetaEntry, error)
	// SwapMeta replaces the value under key with v only if the stored,
	// unexpired value equals old (byte for byte), keeping its expiry, and
	// reports whether it did. It is atomic across every node sharing the
	// store: of several swaps from the same old value, one succeeds. The
	// reserved keys are refused as by PutMeta.
	SwapMeta(ctx context.Context, key string, old, v []byte) (bool, error)
	// DeleteMetaIf removes key only if its stored, unexpired value equals
	// old, and reports whether it did (atomic as SwapMeta).
	DeleteMetaIf(ctx context.Context, key string, old []byte) (bool, error)
	// UnreadableRecords lists stored records that cannot be decoded.
	UnreadableRecords(ctx context.Context) ([]Unreadable, error)
	// DeleteUnreadable removes one record by kind and id without decoding
	// it (ErrNotFound if absent).
	DeleteUnreadable(ctx context.Context, kind, id string) error
}

// MetaEntry is one key and value of StateStore.ListMeta.
type MetaEntry struct {
	Key   string
	Value []byte
}
