package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// deliveryRecord is a delivery as stored at d/<id>: rswebhooks.Delivery
// with its event snapshot either inline (Event set, as schema 1 stored
// every delivery) or, with Event absent, at s/<EventID>, written once and
// shared by the event's deliveries. The outer Event field hides the
// embedded one from encoding/json.
type deliveryRecord struct {
	rswebhooks.Delivery
	Event *rswebhooks.Event `json:"Event,omitempty"`
}

func snapshotKey(eventID string) []byte { return key(pSnapshot, eventID) }

// decodeDelivery decodes the delivery record item into d, reading the
// shared snapshot in txn when the record does not hold it inline. A
// missing or undecodable snapshot makes the delivery unreadable.
func (db *DB) decodeDelivery(txn *badger.Txn, item *badger.Item, d *rswebhooks.Delivery) (inline bool, err error) {
	var rec deliveryRecord
	if err := decodeItem(item, &rec); err != nil {
		return false, err
	}
	*d = rec.Delivery
	if rec.Event != nil {
		d.Event = *rec.Event
		return true, nil
	}
	return false, db.loadSnapshot(txn, d)
}

// readDelivery reads and decodes the delivery id (ErrNotFound if absent).
func (db *DB) readDelivery(txn *badger.Txn, id string, d *rswebhooks.Delivery) (inline bool, err error) {
	item, err := getItem(txn, deliveryKey(id))
	if err != nil {
		return false, err
	}
	return db.decodeDelivery(txn, item, d)
}

// loadSnapshot sets d.Event from s/<d.EventID>, or from the cache: a
// snapshot's content never changes while it exists, and dropSnapshots
// forgets the ones it removes.
func (db *DB) loadSnapshot(txn *badger.Txn, d *rswebhooks.Delivery) error {
	if db.snaps.get(d.EventID, &d.Event) {
		return nil
	}
	item, err := txn.Get(snapshotKey(d.EventID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return unreadableAt(deliveryKey(d.ID), fmt.Errorf("its event snapshot %s is missing", d.EventID))
	}
	if err != nil {
		return err
	}
	err = item.Value(func(v []byte) error { return jsonUnmarshal(deliveryKey(d.ID), v, &d.Event) })
	if err != nil {
		return err
	}
	db.snaps.put(d.EventID, &d.Event)
	return nil
}

// snapshotCacheSize bounds the decoded snapshots kept: the deliveries of
// an event are attempted close together, so a few hundred events cover
// the ones in flight. An entry's slot is reused after as many insertions.
const snapshotCacheSize = 512

// snapshotCache keeps recently decoded snapshots by event id, so the
// deliveries of one event decode its snapshot once.
type snapshotCache struct {
	mu   sync.Mutex
	m    map[string]*rswebhooks.Event
	ring [snapshotCacheSize]string // insertion order, for eviction
	next int
}

func (c *snapshotCache) get(id string, ev *rswebhooks.Event) bool {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		*ev = cloneEvent(e)
	}
	return ok
}

func (c *snapshotCache) put(id string, ev *rswebhooks.Event) {
	e := cloneEvent(ev)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*rswebhooks.Event, snapshotCacheSize)
	}
	if _, ok := c.m[id]; !ok {
		if old := c.ring[c.next]; old != "" {
			delete(c.m, old)
		}
		c.ring[c.next] = id
		c.next = (c.next + 1) % snapshotCacheSize
	}
	c.m[id] = &e
}

// drop forgets the snapshot of event id (removed from the store).
func (c *snapshotCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id) // its ring slot is reused in turn
	c.mu.Unlock()
}

// cloneEvent copies ev with its slices and pointers, so a caller changing
// the delivery it got cannot change the cached snapshot.
func cloneEvent(ev *rswebhooks.Event) rswebhooks.Event {
	c := *ev
	c.Missing = slices.Clone(ev.Missing)
	c.DocumentIDs = slices.Clone(ev.DocumentIDs)
	c.Documents = slices.Clone(ev.Documents)
	if ev.ExecutionDateUTC != nil {
		t := *ev.ExecutionDateUTC
		c.ExecutionDateUTC = &t
	}
	if ev.AlertTriggered != nil {
		b := *ev.AlertTriggered
		c.AlertTriggered = &b
	}
	return c
}

// shareSnapshot prepares the shared snapshot of eventID for deliveries
// written in txn: it stores s/<eventID> from ev (without a TTL: see
// dropSnapshots) unless it is there already, and returns the snapshot the
// deliveries may refer to, or nil when the stored one differs from ev (they
// then keep theirs inline). Reading the key puts it in the transaction's
// read set, so a concurrent dropSnapshots makes one of the two retry.
func shareSnapshot(txn *badger.Txn, eventID string, ev *rswebhooks.Event) (*rswebhooks.Event, error) {
	if rswebhooks.CheckStoreID("", eventID) != nil || ev.ID != eventID {
		return nil, nil
	}
	enc, err := encodeJSON(snapshotKey(eventID), ev)
	if err != nil {
		return nil, err
	}
	item, err := txn.Get(snapshotKey(eventID))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return ev, txn.Set(snapshotKey(eventID), enc)
	case err != nil:
		return nil, err
	}
	same := false
	if err := item.Value(func(v []byte) error { same = bytes.Equal(v, enc); return nil }); err != nil {
		return nil, err
	}
	if !same {
		return nil, nil
	}
	return ev, nil
}

// refers reports whether d may refer to the shared snapshot ref of its
// event instead of holding its own.
func refers(d *rswebhooks.Delivery, ref *rswebhooks.Event) bool {
	return ref != nil && d.EventID == ref.ID && (&d.Event == ref || reflect.DeepEqual(&d.Event, ref))
}

// snapshotBatch is how many snapshots one dropSnapshots transaction looks at.
const snapshotBatch = 256

// dropSnapshots removes the shared snapshots no delivery refers to any
// more, and returns how many it removed. A snapshot has no TTL of its own:
// it lives while any by-event key de/<eventID>/… does, and those live
// exactly as long as their delivery (same TTL, written in the same
// transactions), so a delivery stays readable with its event for all of
// its retention, pending for however long. Only snapshots of events older
// than the retention are looked at (younger ones have deliveries unless
// all were discarded, and are looked at once they are old). Run calls it
// on every GC tick.
func (db *DB) dropSnapshots(ctx context.Context) (int, error) {
	horizon := rswebhooks.IDFrom(db.now().Add(-db.opts.Retention), [10]byte{})
	after := ""
	dropped := 0
	for {
		var ids []string
		err := db.view(ctx, "list event snapshots", func(txn *badger.Txn) error {
			prefix := []byte(pSnapshot)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Seek(append(snapshotKey(after), 0)); it.Valid() && len(ids) < snapshotBatch; it.Next() {
				id := string(it.Item().Key()[len(prefix):])
				if id >= horizon {
					break
				}
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil || len(ids) == 0 {
			return dropped, err
		}
		var gone []string
		err = db.update(ctx, "drop event snapshots", func(txn *badger.Txn) error {
			gone = gone[:0]
			for _, id := range ids {
				// Read first: a writer adding a delivery that refers to it
				// (fan-out) writes or reads the key, so one of us retries.
				if _, err := txn.Get(snapshotKey(id)); err != nil {
					if errors.Is(err, badger.ErrKeyNotFound) {
						continue
					}
					return err
				}
				live, err := keySuffixes(txn, byEventPrefix(id), 1)
				if err != nil {
					return err
				}
				if len(live) > 0 {
					continue
				}
				if err := txn.Delete(snapshotKey(id)); err != nil {
					return err
				}
				gone = append(gone, id)
			}
			return nil
		})
		if err != nil {
			return dropped, err
		}
		for _, id := range gone {
			db.snaps.drop(id)
		}
		dropped += len(gone)
		if len(ids) < snapshotBatch {
			return dropped, nil
		}
		after = ids[len(ids)-1]
	}
}

// encodeJSON encodes v as the store does (without HTML escaping, so raw
// JSON values are stored byte for byte).
func encodeJSON(key []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
