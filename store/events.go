package store

import (
	"context"
	"errors"
	"fmt"

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
	if err := checkID("event Id", e.ID); err != nil {
		return fmt.Errorf("store: append event: %w", err)
	}
	return cursorUpdate(ctx, db, &db.unfanned, "append event "+e.ID, func(txn *badger.Txn) error {
		ok, err := exists(txn, eventKey(e.ID))
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("event %s: %w", e.ID, ErrConflict)
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
				if errors.Is(err, ErrNotFound) {
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

// FanOut atomically marks the event fanned out and stores its deliveries
// (pending ones enter the due queue at NextUTC). It is idempotent: if the
// event is already fanned out (or unknown) it writes nothing and returns nil.
// From here on the event expires after Retention.
//
// A fan-out must fit in one Badger transaction (15% of the memtable, about
// 1.2 MB by default, i.e. roughly a thousand deliveries); a larger one fails
// with badger.ErrTxnTooBig and changes nothing.
func (db *DB) FanOut(ctx context.Context, eventID string, ds []*rswebhooks.Delivery) error {
	for i, d := range ds {
		if err := checkDelivery(d); err != nil {
			return fmt.Errorf("store: fan out %s: delivery %d: %w", eventID, i, err)
		}
	}
	update := db.update // no pending delivery: no queue key added
	for _, d := range ds {
		if d.State == rswebhooks.DeliveryPending {
			update = db.queueUpdate
			break
		}
	}
	return update(ctx, "fan out "+eventID, func(txn *badger.Txn) error {
		ok, err := exists(txn, unfannedKey(eventID))
		if err != nil || !ok {
			return err
		}
		if err := txn.Delete(unfannedKey(eventID)); err != nil {
			return err
		}
		ev, err := getRaw(txn, eventKey(eventID))
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			if err := setRaw(txn, eventKey(eventID), ev, db.expiresAt()); err != nil {
				return err
			}
		}
		for _, d := range ds {
			ok, err := exists(txn, deliveryKey(d.ID))
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("delivery %s: %w", d.ID, ErrConflict)
			}
			if err := db.putDelivery(txn, d, nil); err != nil {
				return err
			}
		}
		return nil
	})
}
