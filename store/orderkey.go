package store

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// userMetaOrdered is the Badger user-meta bit of a w/ key whose webhook is
// Ordered: a write transaction learns it from the key alone (webhookOrdered)
// and, having read the key, conflicts with a change of it.
const userMetaOrdered byte = 1

// putWebhook stores w at w/<id>, its Ordered flag in the key's user meta.
func putWebhook(txn *badger.Txn, w *rswebhooks.Webhook) error {
	b, err := encodeJSON(webhookKey(w.ID), w)
	if err != nil {
		return err
	}
	e := badger.NewEntry(webhookKey(w.ID), b)
	if w.Ordered {
		e = e.WithMeta(userMetaOrdered)
	}
	return txn.SetEntry(e)
}

// webhookOrdered reports whether the webhook id is Ordered (false when it
// is not stored).
func webhookOrdered(txn *badger.Txn, id string) (bool, error) {
	item, err := txn.Get(webhookKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return item.UserMeta()&userMetaOrdered != 0, nil
}

// orderBackfillChunk is how many deliveries one transaction of
// backfillOrder gives an order key at most.
const orderBackfillChunk = 512

// backfillOrder gives the pending deliveries of webhook id that have no
// order key one (dp/ key, OrderKey in the record), so a webhook that
// becomes Ordered finds its earlier deliveries in OrderHead. It works in
// transactions of orderBackfillChunk before the webhook is written (extra
// keys for a webhook not yet ordered are harmless: they go when the
// delivery finishes); the write itself calls backfillOrderTxn for what was
// added since, in its own transaction.
func (db *DB) backfillOrder(ctx context.Context, id string) error {
	for {
		n := 0
		err := db.update(ctx, "order index of "+id, func(txn *badger.Txn) error {
			var err error
			n, err = backfillOrderTxn(txn, id, orderBackfillChunk)
			return err
		})
		if err != nil || n < orderBackfillChunk {
			return err
		}
	}
}

// backfillOrderTxn is one step of backfillOrder: up to max (<= 0: all)
// deliveries, found by their dw/ keys without a TTL (pending ones).
func backfillOrderTxn(txn *badger.Txn, id string, max int) (int, error) {
	prefix := byWebhookPrefix(id)
	var pending []string
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	for it.Rewind(); it.Valid(); it.Next() {
		if it.Item().ExpiresAt() == 0 {
			pending = append(pending, string(it.Item().Key()[len(prefix):]))
		}
	}
	it.Close()
	n := 0
	for _, did := range pending {
		item, err := getItem(txn, deliveryKey(did))
		if errors.Is(err, rswebhooks.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		var rec deliveryRecord
		if err := decodeItem(item, &rec); err != nil {
			if errors.Is(err, rswebhooks.ErrUnreadable) {
				continue
			}
			return n, err
		}
		if rec.State != rswebhooks.DeliveryPending || rec.EventID == "" || rec.OrderKey || rec.WebhookID != id {
			continue
		}
		rec.OrderKey = true
		if err := setJSON(txn, deliveryKey(did), &rec, 0); err != nil {
			return n, err
		}
		if err := txn.Set(orderKey(id, rec.EventID, did), nil); err != nil {
			return n, err
		}
		if n++; max > 0 && n >= max {
			break
		}
	}
	return n, nil
}

// orderHeadScan is OrderHead for a webhook that is not Ordered, whose
// deliveries have no order keys: the first of its pending deliveries (dw/
// keys without a TTL) in event order, read one by one. The engine asks
// only for ordered webhooks.
func (db *DB) orderHeadScan(txn *badger.Txn, webhookID string) (r rswebhooks.DueRef, ok bool, err error) {
	prefix := byWebhookPrefix(webhookID)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var best deliveryIndex
	for it.Rewind(); it.Valid(); it.Next() {
		if it.Item().ExpiresAt() != 0 {
			continue
		}
		id := string(it.Item().Key()[len(prefix):])
		if db.unreadable.has(rswebhooks.RecordDelivery, id) {
			continue
		}
		var ix deliveryIndex
		if err := getJSON(txn, deliveryKey(id), &ix); err != nil {
			if errors.Is(err, rswebhooks.ErrNotFound) {
				continue
			}
			if err = db.skipUnreadable(err); err == nil {
				continue
			}
			return r, false, fmt.Errorf("order head of %s: %w", webhookID, err)
		}
		if ix.State != rswebhooks.DeliveryPending || ix.EventID == "" || ix.WebhookID != webhookID {
			continue
		}
		if !ok || ix.EventID < best.EventID || ix.EventID == best.EventID && id < r.ID {
			best, ok = ix, true
			r = rswebhooks.DueRef{ID: id, WebhookID: webhookID, Due: ix.NextUTC}
		}
	}
	return r, ok, nil
}
