package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
)

// maxStaleOrderKeys bounds the order keys OrderHead passes over whose
// delivery is gone or no longer pending (left by a release that did not
// keep the index) before it gives up and reports no head.
const maxStaleOrderKeys = 1000

// OrderHead returns the first pending delivery of the webhook in event
// order (event id, then delivery id; a ping's event id is the time it was
// asked for): the one an ordered webhook must send before any other. ok is
// false when none is pending. The order index (dp/) holds the deliveries
// of Ordered webhooks; for another webhook its deliveries are read one by
// one (orderHeadScan).
func (db *DB) OrderHead(ctx context.Context, webhookID string) (r rswebhooks.DueRef, ok bool, err error) {
	err = db.view(ctx, "order head of "+webhookID, func(txn *badger.Txn) error {
		if ordered, err := webhookOrdered(txn, webhookID); err != nil || !ordered {
			if err == nil {
				r, ok, err = db.orderHeadScan(txn, webhookID)
			}
			return err
		}
		prefix := orderPrefix(webhookID)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		stale := 0
		for it.Rewind(); it.Valid() && stale < maxStaleOrderKeys; it.Next() {
			k := it.Item().Key()
			i := bytes.LastIndexByte(k, '/')
			id := string(k[i+1:])
			if db.unreadable.has(rswebhooks.RecordDelivery, id) {
				stale++
				continue
			}
			var ix deliveryIndex
			if err := getJSON(txn, deliveryKey(id), &ix); err != nil {
				if errors.Is(err, rswebhooks.ErrNotFound) {
					stale++
					continue
				}
				if err = db.skipUnreadable(err); err == nil {
					stale++
					continue
				}
				return err
			}
			if !ix.ordered() || ix.WebhookID != webhookID {
				stale++
				continue
			}
			r, ok = rswebhooks.DueRef{ID: id, WebhookID: webhookID, Due: ix.NextUTC}, true
			return nil
		}
		return nil
	})
	return r, ok, err
}

// HoldDelivery moves a pending delivery due before until to until, with
// reason, and reports whether it moved it. It leaves a delivery that is no
// longer pending or already due at until or later as it is.
func (db *DB) HoldDelivery(ctx context.Context, id string, until time.Time, reason string) (bool, error) {
	return db.reschedule(ctx, "hold", id, until, func(d *rswebhooks.Delivery) bool {
		return d.NextUTC.Before(until)
	}, reason)
}

// ReleaseDelivery brings a pending delivery held with reason (see
// HoldDelivery) and due after now forward to now, clearing the reason, and
// reports whether it did.
func (db *DB) ReleaseDelivery(ctx context.Context, id string, now time.Time, reason string) (bool, error) {
	return db.reschedule(ctx, "release", id, now, func(d *rswebhooks.Delivery) bool {
		return d.Reason == reason && d.NextUTC.After(now)
	}, "")
}

func (db *DB) reschedule(ctx context.Context, op, id string, at time.Time, move func(*rswebhooks.Delivery) bool, reason string) (bool, error) {
	moved := false
	err := db.queueUpdate(ctx, op+" delivery "+id, func(txn *badger.Txn) error {
		moved = false
		var d rswebhooks.Delivery
		old, err := db.readDelivery(txn, id, &d)
		if err != nil {
			return err
		}
		if d.State != rswebhooks.DeliveryPending || !move(&d) {
			return nil
		}
		d.NextUTC = at.UTC()
		d.Reason = reason
		d.UpdatedUTC = db.now().UTC()
		moved = true
		return db.putDelivery(txn, &d, old, old.inline(), nil)
	})
	if err != nil {
		return false, fmt.Errorf("store: %s delivery %s: %w", op, id, err)
	}
	return moved, nil
}

// buildOrderIndex writes the dp/ key of every pending delivery once per
// data directory (stores written before the order index existed), then
// records m/order-index. Releases without the index ignore both.
func (db *DB) buildOrderIndex(bdb *badger.DB) error {
	done := false
	err := bdb.View(func(txn *badger.Txn) error {
		ok, err := exists(txn, metaKey(metaOrder))
		done = ok
		return err
	})
	if err != nil || done {
		return err
	}
	var keys [][]byte
	err = bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pQueue)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, id, err := parseQueueKey(it.Item().Key())
			if err != nil {
				continue
			}
			var ix deliveryIndex
			if err := getJSON(txn, deliveryKey(id), &ix); err != nil || !ix.ordered() {
				continue // unreadable or gone: the queue scans skip it too
			}
			keys = append(keys, orderKey(ix.WebhookID, ix.EventID, id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: build the order index in %s: %w", db.opts.Dir, err)
	}
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), deleteChunk)]
		keys = keys[len(chunk):]
		if err := bdb.Update(func(txn *badger.Txn) error {
			for _, k := range chunk {
				if err := txn.Set(k, nil); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("store: build the order index in %s: %w", db.opts.Dir, err)
		}
	}
	return bdb.Update(func(txn *badger.Txn) error { return txn.Set(metaKey(metaOrder), []byte("1")) })
}
