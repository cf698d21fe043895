package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
)

// deliveryIndex is the part of a stored delivery its index keys derive
// from; decoding only these fields skips the event snapshot's maps.
type deliveryIndex struct {
	WebhookID string    `json:"WebhookId"`
	EventID   string    `json:"EventId"`
	Ping      bool      `json:"Ping,omitempty"`
	State     string    `json:"State"`
	NextUTC   time.Time `json:"NextAttemptUtc"`
	// Event is non-nil when the record holds its event snapshot inline
	// (see deliveryRecord); its fields are not decoded.
	Event    *struct{} `json:"Event,omitempty"`
	OrderKey bool      `json:"OrderKey,omitempty"`
	// Final is non-nil when the record holds the attempt that finished it
	// (see deliveryRecord.FinalAttempt); its fields are not decoded.
	Final *struct{} `json:"FinalAttempt,omitempty"`
}

func indexOf(d *rswebhooks.Delivery, inline, orderKey bool) *deliveryIndex {
	ix := &deliveryIndex{WebhookID: d.WebhookID, EventID: d.EventID, Ping: d.Ping, State: d.State, NextUTC: d.NextUTC, OrderKey: orderKey}
	if inline {
		ix.Event = &struct{}{}
	}
	return ix
}

// inline reports whether the record holds its event snapshot.
func (ix *deliveryIndex) inline() bool { return ix.Event != nil }

// ordered reports whether the delivery has a key in the order index: a
// pending one (a ping too: its event id is the time it was asked for) of a
// webhook that was Ordered when it was queued (see deliveryRecord.OrderKey).
func (ix *deliveryIndex) ordered() bool {
	return ix.State == rswebhooks.DeliveryPending && ix.EventID != "" && ix.OrderKey
}

// putDelivery writes d with its indexes, replacing old (nil for a new one):
// the queue key (whose value is the webhook id) follows the state and
// NextUTC, and finished deliveries get the retention TTL, on the record and
// on its dw/ key alike. With inline the record holds d.Event and has a de/
// key (with the record's TTL); otherwise it refers to the shared snapshot
// s/<EventID>, which the caller made sure holds d.Event and lists d.ID (a
// replaced record keeps its form, unless its event id changes). final, if
// non-nil, is kept in the record as its FinalAttempt; one the replaced
// record held goes to its own a/ key first (see spillFinal).
func (db *DB) putDelivery(txn *badger.Txn, d *rswebhooks.Delivery, old *deliveryIndex, inline bool, final *rswebhooks.Attempt) error {
	if old != nil && !old.inline() && old.EventID != d.EventID {
		inline = true // the shared snapshot is another event's
	}
	if old != nil && old.Final != nil {
		if err := db.spillFinal(txn, d.ID); err != nil {
			return err
		}
	}
	pending := d.State == rswebhooks.DeliveryPending
	// A pending delivery of an Ordered webhook keeps (or gets) an order key.
	keyed := false
	if pending && d.EventID != "" {
		if old != nil && old.ordered() && old.WebhookID == d.WebhookID && old.EventID == d.EventID {
			keyed = true
		} else {
			var err error
			if keyed, err = webhookOrdered(txn, d.WebhookID); err != nil {
				return err
			}
		}
	}
	ix := indexOf(d, inline, keyed)
	if old != nil {
		if old.State == rswebhooks.DeliveryPending {
			if err := txn.Delete(queueKey(old.NextUTC, d.ID)); err != nil {
				return err
			}
		}
		if old.ordered() && (!ix.ordered() || old.WebhookID != ix.WebhookID || old.EventID != ix.EventID) {
			if err := txn.Delete(orderKey(old.WebhookID, old.EventID, d.ID)); err != nil {
				return err
			}
		}
		if old.WebhookID != d.WebhookID {
			if err := txn.Delete(byWebhookKey(old.WebhookID, d.ID)); err != nil {
				return err
			}
		}
		if old.inline() && old.EventID != d.EventID && old.EventID != "" {
			if err := txn.Delete(byEventKey(old.EventID, d.ID)); err != nil {
				return err
			}
		}
	}
	var exp uint64
	if !pending {
		exp = db.expiresAt()
	}
	rec := deliveryRecord{Delivery: *d, OrderKey: keyed, FinalAttempt: final}
	if inline {
		rec.Event = &rec.Delivery.Event
	}
	dk := deliveryKey(d.ID)
	v, err := encodeDelivery(dk, &rec)
	if err != nil {
		return err
	}
	if err := setRaw(txn, dk, v, exp); err != nil {
		return err
	}
	// The index keys carry the record's TTL: rewritten when it changes (a
	// new record, one that finishes or finished again, one queued again),
	// not while a pending one moves in the queue.
	moved := old == nil || old.WebhookID != d.WebhookID || old.EventID != d.EventID
	if moved || !pending || old.State != rswebhooks.DeliveryPending {
		if err := setRaw(txn, byWebhookKey(d.WebhookID, d.ID), nil, exp); err != nil {
			return err
		}
		if inline && d.EventID != "" && rswebhooks.CheckStoreID("", d.EventID) == nil {
			// The event's deliveries (see EventDeliveries) are found by this
			// key, or, referring to its shared snapshot, listed there.
			if err := setRaw(txn, byEventKey(d.EventID, d.ID), nil, exp); err != nil {
				return err
			}
		}
	}
	if ix.ordered() && (old == nil || !old.ordered() || old.WebhookID != d.WebhookID || old.EventID != d.EventID) {
		if err := txn.Set(orderKey(d.WebhookID, d.EventID, d.ID), nil); err != nil {
			return err
		}
	}
	if pending {
		db.queue.lower(txn, dueNanos(d.NextUTC))
		return txn.Set(queueKey(d.NextUTC, d.ID), []byte(d.WebhookID))
	}
	return nil
}

// PutDelivery stores a new delivery (for example a ping); a pending one
// enters the due queue. ErrConflict if the id exists.
func (db *DB) PutDelivery(ctx context.Context, d *rswebhooks.Delivery) error {
	if err := rswebhooks.CheckStoredDelivery(d); err != nil {
		return fmt.Errorf("store: put delivery: %w", err)
	}
	err := db.queueUpdate(ctx, "put delivery "+d.ID, func(txn *badger.Txn) error {
		ok, err := exists(txn, deliveryKey(d.ID))
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("delivery %s: %w", d.ID, rswebhooks.ErrConflict)
		}
		return db.putDelivery(txn, d, nil, true, nil)
	})
	if err == nil {
		db.signalDue(d)
	}
	return err
}

// GetDelivery returns the delivery, ErrNotFound, or an *UnreadableError if
// the record cannot be decoded (the due queue then skips it: see DueRefs).
func (db *DB) GetDelivery(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	var d rswebhooks.Delivery
	err := db.view(ctx, "get delivery "+id, func(txn *badger.Txn) error {
		_, err := db.readDelivery(txn, id, &d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// ListDeliveries returns up to limit (<= 0: all) deliveries of a webhook,
// newest first. Unreadable ones are skipped (see UnreadableError).
func (db *DB) ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*rswebhooks.Delivery, error) {
	var out []*rswebhooks.Delivery
	err := db.view(ctx, "list deliveries of "+webhookID, func(txn *badger.Txn) error {
		prefix := byWebhookPrefix(webhookID)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		for it.Seek(append(prefix, 0xff)); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefix):])
			var d rswebhooks.Delivery
			if _, err := db.readDelivery(txn, id, &d); err != nil {
				if errors.Is(err, rswebhooks.ErrNotFound) {
					continue // expired between index and record
				}
				if err = db.skipUnreadable(err); err == nil {
					continue
				}
				return err
			}
			out = append(out, &d)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Due returns up to limit (<= 0: all) pending deliveries with NextUTC <= now,
// in due order. It scans only the due part of the q/ keys.
func (db *DB) Due(ctx context.Context, now time.Time, limit int) ([]*rswebhooks.Delivery, error) {
	var out []*rswebhooks.Delivery
	low, sc := db.queue.begin()
	defer db.queue.end(sc)
	err := db.view(ctx, "due deliveries", func(txn *badger.Txn) error {
		ids, err := db.dueIDs(txn, sc, low, dueNanos(now), limit)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var d rswebhooks.Delivery
			if _, err := db.readDelivery(txn, id, &d); err != nil {
				if errors.Is(err, rswebhooks.ErrNotFound) {
					// Cannot happen with this package's writes; do not wedge the queue.
					db.log.Error().Str("delivery_id", id).Msg("queue entry without delivery; skipped")
					continue
				}
				if err = db.skipUnreadable(err); err == nil {
					continue
				}
				return err
			}
			out = append(out, &d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DueRefs is Due without loading the deliveries: up to limit (<= 0: all)
// pending deliveries with NextUTC <= now, in due order, read from the queue
// keys alone. Callers load a delivery (GetDelivery) when they act on it and
// must check it is still pending then. Deliveries found unreadable (by
// GetDelivery or otherwise) are left out, here and in Due, NextDue and
// QueueStats, so they neither wedge nor spin the queue.
func (db *DB) DueRefs(ctx context.Context, now time.Time, limit int) ([]rswebhooks.DueRef, error) {
	var out []rswebhooks.DueRef
	err := db.ScanDue(ctx, now, 0, func(r rswebhooks.DueRef) bool {
		out = append(out, r)
		return limit <= 0 || len(out) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScanDue calls fn with each pending delivery due at or before now and not
// leased, in due order, from the queue keys alone, until fn returns false
// or max (> 0) keys were read.
func (db *DB) ScanDue(ctx context.Context, now time.Time, max int, fn func(rswebhooks.DueRef) bool) error {
	return db.scanDue(ctx, now, nil, max, fn)
}

// ScanDueAfter is ScanDue resumed past after, a ref an earlier scan passed
// to fn: it calls fn with the pending deliveries due at or before now that
// sort after it in due order (due time, then id). A caller that walks a
// long queue in bounded steps resumes with the last ref it saw.
func (db *DB) ScanDueAfter(ctx context.Context, now time.Time, after rswebhooks.DueRef, max int, fn func(rswebhooks.DueRef) bool) error {
	return db.scanDue(ctx, now, queueKey(after.Due, after.ID), max, fn)
}

func (db *DB) scanDue(ctx context.Context, now time.Time, after []byte, max int, fn func(rswebhooks.DueRef) bool) error {
	leased, perHook := db.leasedNow(now)
	low, sc := db.queue.begin()
	defer db.queue.end(sc)
	var hooks interned // a backlog has few webhooks: one string each
	return db.view(ctx, "due deliveries", func(txn *badger.Txn) error {
		n := 0
		return db.scanQueue(txn, sc, low, after, func(due uint64, id string, item *badger.Item) (bool, error) {
			if due > dueNanos(now) {
				return false, nil
			}
			if db.unreadable.has(rswebhooks.RecordDelivery, id) || leased[id] {
				return true, nil
			}
			r := rswebhooks.DueRef{ID: id, Due: nanosTime(due)}
			if err := item.Value(func(v []byte) error { r.WebhookID = hooks.intern(v); return nil }); err != nil {
				return false, err
			}
			if r.WebhookID == "" {
				// Queued before the key held the webhook id.
				var ix deliveryIndex
				if err := getJSON(txn, deliveryKey(id), &ix); err != nil {
					if errors.Is(err, rswebhooks.ErrNotFound) {
						db.log.Error().Str("delivery_id", id).Msg("queue entry without delivery; skipped")
						return true, nil
					}
					return errors.Is(err, rswebhooks.ErrUnreadable), db.skipUnreadable(err)
				}
				r.WebhookID = ix.WebhookID
			}
			r.Leased = perHook[r.WebhookID]
			n++
			return fn(r) && (max <= 0 || n < max), nil
		})
	})
}

// interned hands out one string per distinct value, for the webhook ids a
// queue scan reads from every key.
type interned map[string]string

func (m *interned) intern(b []byte) string {
	if s, ok := (*m)[string(b)]; ok {
		return s
	}
	if *m == nil {
		*m = map[string]string{}
	}
	s := string(b)
	if len(*m) < 1024 {
		(*m)[s] = s
	}
	return s
}

// dueIDs returns the ids in q/ due at or before maxDue, in order.
func (db *DB) dueIDs(txn *badger.Txn, sc *mark[uint64], low, maxDue uint64, limit int) ([]string, error) {
	var ids []string
	err := db.scanQueue(txn, sc, low, nil, func(due uint64, id string, _ *badger.Item) (bool, error) {
		if due > maxDue {
			return false, nil
		}
		if db.unreadable.has(rswebhooks.RecordDelivery, id) {
			return true, nil
		}
		ids = append(ids, id)
		return limit <= 0 || len(ids) < limit, nil
	})
	return ids, err
}

// NextDue returns the earliest NextUTC of any pending delivery; ok is false
// when none is pending.
func (db *DB) NextDue(ctx context.Context) (t time.Time, ok bool, err error) {
	low, sc := db.queue.begin()
	defer db.queue.end(sc)
	err = db.view(ctx, "next due", func(txn *badger.Txn) error {
		return db.scanQueue(txn, sc, low, nil, func(due uint64, id string, _ *badger.Item) (bool, error) {
			if db.unreadable.has(rswebhooks.RecordDelivery, id) {
				return true, nil
			}
			t, ok = nanosTime(due), true
			return false, nil
		})
	})
	return t, ok, err
}

// QueueStats returns the number of pending deliveries and the earliest due
// time (zero when none). It counts keys only.
func (db *DB) QueueStats(ctx context.Context) (depth int, oldestDue time.Time, err error) {
	low, sc := db.queue.begin()
	defer db.queue.end(sc)
	err = db.view(ctx, "queue stats", func(txn *badger.Txn) error {
		return db.scanQueue(txn, sc, low, nil, func(due uint64, id string, _ *badger.Item) (bool, error) {
			if db.unreadable.has(rswebhooks.RecordDelivery, id) {
				return true, nil
			}
			if depth == 0 {
				oldestDue = nanosTime(due)
			}
			depth++
			return true, nil
		})
	})
	return depth, oldestDue, err
}

// Complete records an attempt and the delivery's new state in one
// transaction: attempt a (if non-nil) is stored as attempt a.N, d replaces
// the stored delivery (ErrNotFound if absent), and the queue key moves to
// d.NextUTC while pending or is removed once finished.
func (db *DB) Complete(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt) error {
	if err := rswebhooks.CheckStoredDelivery(d); err != nil {
		return fmt.Errorf("store: complete delivery: %w", err)
	}
	if err := rswebhooks.CheckCompletedAttempt(d, a); err != nil {
		return fmt.Errorf("store: complete %w", err)
	}
	// Only a delivery that stays pending adds a queue key; a finishing one
	// must not hold the queue cursor back (see cursor).
	update := db.update
	if d.State == rswebhooks.DeliveryPending {
		update = db.queueUpdate
	}
	err := update(ctx, "complete delivery "+d.ID, func(txn *badger.Txn) error {
		// Read in the transaction (a concurrent change makes it conflict);
		// decoded only if it changed since its lease read it.
		item, err := getItem(txn, deliveryKey(d.ID))
		if err != nil {
			return err
		}
		old, ok := db.leases.index(d.ID, item.Version())
		if !ok {
			if err := decodeItem(item, &old); err != nil {
				return err
			}
		}
		// The attempt that finishes the delivery goes into its record (the
		// same TTL as an a/ key would get); one after which it stays pending
		// gets its own key, written after the record (whose rewrite may move
		// an attempt it held to its key: the newer one wins, as before).
		if a == nil || d.State != rswebhooks.DeliveryPending {
			return db.putDelivery(txn, d, &old, old.inline(), a)
		}
		if err := db.putDelivery(txn, d, &old, old.inline(), nil); err != nil {
			return err
		}
		k := attemptKey(d.ID, a.N)
		v, err := encodeAttempt(k, a)
		if err != nil {
			return err
		}
		return setRaw(txn, k, v, db.expiresAt())
	})
	if err == nil {
		db.leases.drop(d.ID)
		db.signalDue(d)
	}
	return err
}

// DiscardDelivery removes a delivery that must not be kept (its owner may
// not see the event), with its indexes and attempts. ErrNotFound if absent.
func (db *DB) DiscardDelivery(ctx context.Context, id string) error {
	defer db.leases.drop(id)
	return db.update(ctx, "discard delivery "+id, func(txn *badger.Txn) error {
		var old deliveryIndex
		if err := getJSON(txn, deliveryKey(id), &old); err != nil {
			return err
		}
		if old.State == rswebhooks.DeliveryPending {
			if err := txn.Delete(queueKey(old.NextUTC, id)); err != nil {
				return err
			}
		}
		if old.ordered() {
			if err := txn.Delete(orderKey(old.WebhookID, old.EventID, id)); err != nil {
				return err
			}
		}
		if err := txn.Delete(byWebhookKey(old.WebhookID, id)); err != nil {
			return err
		}
		if old.EventID != "" {
			if err := txn.Delete(byEventKey(old.EventID, id)); err != nil {
				return err
			}
		}
		keys, err := keySuffixes(txn, attemptPrefix(id), 0)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := txn.Delete(append(attemptPrefix(id), k...)); err != nil {
				return err
			}
		}
		return txn.Delete(deliveryKey(id))
	})
}

// Attempts returns the stored attempts of a delivery in attempt order: the
// a/ keys and the one its record holds (FinalAttempt).
func (db *DB) Attempts(ctx context.Context, deliveryID string) ([]*rswebhooks.Attempt, error) {
	var out []*rswebhooks.Attempt
	err := db.view(ctx, "attempts of "+deliveryID, func(txn *badger.Txn) error {
		out = out[:0]
		err := eachValue(txn, attemptPrefix(deliveryID), func(k, v []byte) error {
			a := new(rswebhooks.Attempt)
			if err := jsonUnmarshal(k, v, a); err != nil {
				return db.skipUnreadable(err)
			}
			out = append(out, a)
			return nil
		})
		if err != nil {
			return err
		}
		a, err := finalAttempt(txn, deliveryID)
		if err != nil || a == nil {
			return db.skipUnreadable(err)
		}
		// Usually the last; an a/ key of the same number is an older
		// attempt the record's replaced (a number recorded twice: the newer
		// one is listed, as when it overwrote the key).
		i, found := slices.BinarySearchFunc(out, a.N, func(x *rswebhooks.Attempt, n int) int { return cmp.Compare(x.N, n) })
		if found {
			out[i] = a
		} else {
			out = slices.Insert(out, i, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// finalAttemptField marks a record that may hold a FinalAttempt; records
// without it are not decoded.
var finalAttemptField = []byte(`"FinalAttempt":`)

// finalAttempt returns the attempt the delivery's record holds, nil if it
// holds none or does not exist.
func finalAttempt(txn *badger.Txn, id string) (*rswebhooks.Attempt, error) {
	item, err := txn.Get(deliveryKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec struct {
		FinalAttempt *rswebhooks.Attempt
	}
	err = item.Value(func(v []byte) error {
		if !bytes.Contains(v, finalAttemptField) {
			return nil
		}
		return jsonUnmarshal(item.Key(), v, &rec)
	})
	return rec.FinalAttempt, err
}

// spillFinal moves the FinalAttempt of the delivery's record to its own a/
// key, byte for byte, before the record is rewritten without it (a finished
// delivery queued again, or finished again). The key gets the retention TTL
// from now.
func (db *DB) spillFinal(txn *badger.Txn, id string) error {
	item, err := getItem(txn, deliveryKey(id))
	if err != nil {
		return err
	}
	var rec struct {
		FinalAttempt json.RawMessage
	}
	if err := item.Value(func(v []byte) error { return jsonUnmarshal(item.Key(), v, &rec) }); err != nil {
		return err
	}
	if len(rec.FinalAttempt) == 0 || string(rec.FinalAttempt) == "null" {
		return nil
	}
	var n struct {
		N int `json:"Attempt"`
	}
	if err := jsonUnmarshal(item.Key(), rec.FinalAttempt, &n); err != nil {
		return err
	}
	return setRaw(txn, attemptKey(id, n.N), rec.FinalAttempt, db.expiresAt())
}

// Redeliver puts a finished delivery back in the queue, due at now, keeping
// its attempt count and history; a pending one waiting for a later retry is
// brought forward to now, and one already due is returned unchanged.
// ErrNotFound if absent.
func (db *DB) Redeliver(ctx context.Context, id string, now time.Time) (*rswebhooks.Delivery, error) {
	var d rswebhooks.Delivery
	err := db.queueUpdate(ctx, "redeliver "+id, func(txn *badger.Txn) error {
		old, err := db.readDelivery(txn, id, &d)
		if err != nil {
			return err
		}
		if d.State == rswebhooks.DeliveryPending && !d.NextUTC.After(now) {
			return nil // already due
		}
		// A pending delivery waiting for its next retry is brought forward
		// to now; a finished one is queued again.
		d.State = rswebhooks.DeliveryPending
		d.Reason = ""
		d.NextUTC = now.UTC()
		d.UpdatedUTC = now.UTC()
		return db.putDelivery(txn, &d, old, old.inline(), nil)
	})
	if err != nil {
		return nil, err
	}
	db.signalDue(&d)
	return &d, nil
}
