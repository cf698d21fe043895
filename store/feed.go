package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// ScanEvents calls fn with the stored events whose ids lie in [from, to)
// ("" leaves that end open), newest first when newestFirst is set, else
// oldest first, until fn returns false or an error (returned as is).
// Event ids are ULIDs, so the range is a range of the times in the ids.
// Unreadable events are skipped (see UnreadableError). The scan runs in
// one read transaction: callers bound it by returning false.
func (db *DB) ScanEvents(ctx context.Context, from, to string, newestFirst bool, fn func(*rswebhooks.Event) (bool, error)) error {
	return db.view(ctx, "scan events", func(txn *badger.Txn) error {
		prefix := []byte(pEvent)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: newestFirst, PrefetchValues: true, PrefetchSize: 32})
		defer it.Close()
		lo, hi := eventKey(from), eventKey(to)
		start := lo
		if newestFirst {
			// Reverse iteration seeks to the largest key <= start: just
			// below "to" (exclusive), or past every event.
			start = append(bytes.Clone(prefix), 0xff)
			if to != "" {
				start = hi
			}
		}
		for it.Seek(start); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			if to != "" && bytes.Compare(k, hi) >= 0 {
				if newestFirst {
					continue // the seek landed on "to" itself
				}
				return nil
			}
			if from != "" && bytes.Compare(k, lo) < 0 {
				if newestFirst {
					return nil
				}
				continue
			}
			var e rswebhooks.Event
			err := it.Item().Value(func(v []byte) error { return jsonUnmarshal(k, v, &e) })
			if errors.Is(err, rswebhooks.ErrUnreadable) {
				db.noteUnreadable(err)
				continue
			}
			if err != nil {
				return err
			}
			more, err := fn(&e)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// EventDeliveries returns the deliveries made for an event (by fan-out,
// replay or redelivery of those), oldest first: those with their own
// snapshot by their de/ keys, those sharing the event's snapshot from its
// list. Deliveries stored by a release without the event index are not
// found. Unreadable ones are skipped.
func (db *DB) EventDeliveries(ctx context.Context, eventID string) ([]*rswebhooks.Delivery, error) {
	if rswebhooks.CheckStoreID("event Id", eventID) != nil {
		return nil, nil //nolint:nilerr // no event can have this id, so it has no deliveries
	}
	var out []*rswebhooks.Delivery
	err := db.view(ctx, "deliveries of event "+eventID, func(txn *badger.Txn) error {
		ids, err := keySuffixes(txn, byEventPrefix(eventID), 0)
		if err != nil {
			return err
		}
		// Those referring to the shared snapshot are listed there.
		item, err := txn.Get(snapshotKey(eventID))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			var rec storedSnapshot
			err := item.Value(func(v []byte) error { return jsonUnmarshal(snapshotKey(eventID), v, &rec) })
			if err != nil && !errors.Is(err, rswebhooks.ErrUnreadable) {
				return err
			}
			ids = append(ids, rec.Deliveries...)
			slices.Sort(ids)
			ids = slices.Compact(ids)
		}
		for _, id := range ids {
			var d rswebhooks.Delivery
			if _, err := db.readDelivery(txn, id, &d); err != nil {
				if errors.Is(err, rswebhooks.ErrNotFound) {
					continue // discarded, or expired before its index
				}
				if err = db.skipUnreadable(err); err == nil {
					continue
				}
				return err
			}
			if d.EventID == eventID { // not one moved to another event since
				out = append(out, &d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutDeliveries stores new deliveries (a replay), FanOutChunk per
// transaction; pending ones enter the due queue. A delivery whose id exists
// stops it with ErrConflict; the chunks written before stay (each delivery
// is complete on its own), and the count of deliveries written is returned.
func (db *DB) PutDeliveries(ctx context.Context, ds []*rswebhooks.Delivery) (int, error) {
	for i, d := range ds {
		if err := rswebhooks.CheckStoredDelivery(d); err != nil {
			return 0, fmt.Errorf("store: put deliveries: delivery %d: %w", i, err)
		}
	}
	n := 0
	for i := 0; i < len(ds); i += FanOutChunk {
		chunk := ds[i:min(i+FanOutChunk, len(ds))]
		err := db.queueUpdate(ctx, fmt.Sprintf("put %d deliveries", len(chunk)), func(txn *badger.Txn) error {
			for _, d := range chunk {
				ok, err := exists(txn, deliveryKey(d.ID))
				if err != nil {
					return err
				}
				if ok {
					return fmt.Errorf("delivery %s: %w", d.ID, rswebhooks.ErrConflict)
				}
				if err := db.putDelivery(txn, d, nil, true, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}
