package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
)

// AppendEvent stores a new event (e.ID set by the caller, a ULID) together
// with its fan-out marker, in one transaction. ErrConflict if the id exists.
// The event gets no TTL until FanOut, so an event never expires unfanned.
func (db *DB) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e == nil {
		return errors.New("store: append event: event is nil")
	}
	if err := rswebhooks.CheckStoreID("event Id", e.ID); err != nil {
		return fmt.Errorf("store: append event: %w", err)
	}
	return cursorUpdate(ctx, db, &db.unfanned, "append event "+e.ID, func(txn *badger.Txn) error {
		ok, err := exists(txn, eventKey(e.ID))
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("event %s: %w", e.ID, rswebhooks.ErrConflict)
		}
		if err := setJSON(txn, eventKey(e.ID), e, 0); err != nil {
			return err
		}
		// The watcher's ids carry the execution's time, possibly older than
		// the markers already scanned past: lower the cursor first.
		db.unfanned.lower(txn, e.ID)
		return txn.Set(unfannedKey(e.ID), nil)
	})
}

// GetEvent returns the event or ErrNotFound (also once it has expired).
func (db *DB) GetEvent(ctx context.Context, id string) (*rswebhooks.Event, error) {
	var e rswebhooks.Event
	err := db.view(ctx, "get event "+id, func(txn *badger.Txn) error {
		return getJSON(txn, eventKey(id), &e)
	})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// UnfannedEvents returns up to limit (<= 0: all) events not yet fanned out,
// oldest first. It seeks to an in-memory lower bound of the waiting
// markers, so the tombstones of fanned-out events are not rescanned.
// Unreadable events (see UnreadableError) are skipped and do not count
// towards limit, so however many there are, the others still flow.
func (db *DB) UnfannedEvents(ctx context.Context, limit int) ([]*rswebhooks.Event, error) {
	var out []*rswebhooks.Event
	low, sc := db.unfanned.begin()
	defer db.unfanned.end(sc)
	err := db.view(ctx, "unfanned events", func(txn *badger.Txn) error {
		return db.eachUnfanned(txn, sc, low, func(id string) (bool, error) {
			var e rswebhooks.Event
			if err := getJSON(txn, eventKey(id), &e); err != nil {
				if errors.Is(err, rswebhooks.ErrNotFound) {
					db.log.Error().Str("event_id", id).Msg("fan-out marker without event; skipped")
					return true, nil
				}
				return true, db.skipUnreadable(err)
			}
			out = append(out, &e)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UnfannedStats returns how many events wait for fan-out and the time of
// the oldest (zero when none). It reads the markers from the cursor on.
func (db *DB) UnfannedStats(ctx context.Context) (n int, oldest time.Time, err error) {
	low, sc := db.unfanned.begin()
	defer db.unfanned.end(sc)
	err = db.view(ctx, "unfanned stats", func(txn *badger.Txn) error {
		ids, err := db.scanUnfanned(txn, sc, low, 0)
		if err != nil {
			return err
		}
		n = len(ids)
		for i, id := range ids {
			if i == 256 {
				break // ids sort by time: the oldest is among the first
			}
			var e struct {
				Time time.Time `json:"TimestampUtc"`
			}
			if err := getJSON(txn, eventKey(id), &e); err != nil {
				if errors.Is(err, rswebhooks.ErrNotFound) {
					continue
				}
				if err = db.skipUnreadable(err); err == nil {
					continue
				}
				return err
			}
			if oldest.IsZero() || e.Time.Before(oldest) {
				oldest = e.Time
			}
		}
		return nil
	})
	return n, oldest, err
}

// FanOutChunk is how many deliveries one fan-out transaction writes at
// most: a Badger transaction holds about 1.2 MB by default (15% of the
// memtable), and one delivery with its index keys takes up to a few KiB
// (with its own event snapshot, when it cannot share the event's).
const FanOutChunk = 128

// FanOut marks the event fanned out and stores its deliveries (pending ones
// enter the due queue at NextUTC). It is idempotent: if the event is already
// fanned out (or unknown) it writes nothing and returns nil.
// From here on the event expires after Retention.
//
// Up to FanOutChunk deliveries are written in one transaction with the
// marker's removal, atomically (ErrConflict, and nothing written, if a
// delivery id exists). More are written in transactions of FanOutChunk, the
// marker removed last: a fan-out cut short (crash, error) leaves the event
// waiting and is repeated; a delivery whose id is already stored for the
// same event and webhook is then kept, not written twice. Callers derive
// ids with rswebhooks.DeliveryID so a repeated fan-out finds them.
func (db *DB) FanOut(ctx context.Context, eventID string, ds []*rswebhooks.Delivery) error {
	for i, d := range ds {
		if err := rswebhooks.CheckStoredDelivery(d); err != nil {
			return fmt.Errorf("store: fan out %s: delivery %d: %w", eventID, i, err)
		}
	}
	defer db.signalDue(ds...)
	if len(ds) <= FanOutChunk {
		return db.fanOutTxn(ctx, eventID, ds, true, false)
	}
	for i := 0; i < len(ds); i += FanOutChunk {
		if err := db.fanOutTxn(ctx, eventID, ds[i:min(i+FanOutChunk, len(ds))], false, true); err != nil {
			if errors.Is(err, errFannedOut) {
				return nil
			}
			return err
		}
	}
	return db.fanOutTxn(ctx, eventID, nil, true, false)
}

// errFannedOut stops a chunked fan-out that another caller finished.
var errFannedOut = errors.New("event already fanned out")

// fanOutTxn writes ds in one transaction if the event still waits for
// fan-out; finish also removes the marker and starts the event's retention.
// With keep, a delivery already stored for the same event and webhook is
// left as it is; otherwise an existing id is ErrConflict.
func (db *DB) fanOutTxn(ctx context.Context, eventID string, ds []*rswebhooks.Delivery, finish, keep bool) error {
	update := db.update // no pending delivery: no queue key added
	for _, d := range ds {
		if d.State == rswebhooks.DeliveryPending {
			update = db.queueUpdate
			break
		}
	}
	return update(ctx, "fan out "+eventID, func(txn *badger.Txn) error {
		ok, err := exists(txn, unfannedKey(eventID))
		if err != nil {
			return err
		}
		if !ok {
			if keep {
				return errFannedOut
			}
			return nil
		}
		// The deliveries of an event share one copy of its snapshot.
		share := &snapshotShare{}
		if len(ds) > 0 {
			if share, err = shareSnapshot(txn, eventID, &ds[0].Event); err != nil {
				return err
			}
		}
		for _, d := range ds {
			var old struct {
				WebhookID string `json:"WebhookId"`
				EventID   string `json:"EventId"`
			}
			// Looked up without getJSON: a new delivery (the rule) is not
			// found, and that needs no error message.
			item, err := txn.Get(deliveryKey(d.ID))
			if err == nil {
				err = decodeItem(item, &old)
			}
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			case keep && old.EventID == d.EventID && old.WebhookID == d.WebhookID:
				continue // written by an earlier, interrupted fan-out
			default:
				return fmt.Errorf("delivery %s: %w", d.ID, rswebhooks.ErrConflict)
			}
			if err := db.putDelivery(txn, d, nil, !share.add(d), nil); err != nil {
				return err
			}
		}
		if err := share.commit(txn); err != nil {
			return err
		}
		if !finish {
			return nil
		}
		if err := txn.Delete(unfannedKey(eventID)); err != nil {
			return err
		}
		ev, err := getRaw(txn, eventKey(eventID))
		switch {
		case errors.Is(err, rswebhooks.ErrNotFound):
		case err != nil:
			return err
		default:
			if err := setRaw(txn, eventKey(eventID), ev, db.expiresAt()); err != nil {
				return err
			}
		}
		return nil
	})
}
