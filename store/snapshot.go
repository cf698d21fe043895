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
	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

// deliveryRecord is a delivery as stored at d/<id>: rswebhooks.Delivery
// with its event snapshot either inline (Event set, as schema 1 stored
// every delivery) or, with Event absent, at s/<EventID>, written once and
// shared by the event's deliveries. The outer Event field hides the
// embedded one from encoding/json.
type deliveryRecord struct {
	rswebhooks.Delivery
	Event *rswebhooks.Event `json:"Event,omitempty"`
	// OrderKey: the pending delivery has a key in the order index (dp/):
	// its webhook was Ordered when it was queued (see webhookOrdered).
	OrderKey bool `json:"OrderKey,omitempty"`
	// FinalAttempt (schema 3) is the attempt that finished the delivery,
	// kept in the record instead of at its own a/ key: one Badger entry
	// fewer per finished delivery. Attempts lists it with the a/ ones; a
	// rewrite of the record that does not carry it moves it to its a/ key
	// (see spillFinal). Records of schema 2 have none.
	FinalAttempt *rswebhooks.Attempt `json:"FinalAttempt,omitempty"`
}

func snapshotKey(eventID string) []byte { return key(pSnapshot, eventID) }

// decodeDelivery decodes the delivery record item into d, reading the
// shared snapshot in txn when the record does not hold it inline. A
// missing or undecodable snapshot makes the delivery unreadable.
// It returns the record's index fields.
func (db *DB) decodeDelivery(txn *badger.Txn, item *badger.Item, d *rswebhooks.Delivery) (*deliveryIndex, error) {
	var rec deliveryRecord
	err := item.Value(func(v []byte) error { return decodeDeliveryRecord(item.Key(), v, &rec) })
	if err != nil {
		return nil, err
	}
	*d = rec.Delivery
	ix := indexOf(d, rec.Event != nil, rec.OrderKey)
	if rec.FinalAttempt != nil {
		ix.Final = &struct{}{}
	}
	if rec.Event != nil {
		d.Event = *rec.Event
		return ix, nil
	}
	return ix, db.loadSnapshot(txn, d)
}

// readDelivery reads and decodes the delivery id (ErrNotFound if absent)
// and returns its index fields.
func (db *DB) readDelivery(txn *badger.Txn, id string, d *rswebhooks.Delivery) (*deliveryIndex, error) {
	item, err := getItem(txn, deliveryKey(id))
	if err != nil {
		return nil, err
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
	var rec snapshotRecord
	err = item.Value(func(v []byte) error { return jsonUnmarshal(deliveryKey(d.ID), v, &rec) })
	if err != nil {
		return err
	}
	d.Event = rec.Event
	db.snaps.put(d.EventID, &d.Event)
	return nil
}

// snapshotRecord is the value at s/<eventID>: the event as its deliveries
// saw it at fan-out, and the ids of the deliveries that refer to it (they
// have no de/ key: EventDeliveries and dropSnapshots find them here).
type snapshotRecord struct {
	Event      rswebhooks.Event `json:"Event"`
	Deliveries []string         `json:"Deliveries"`
}

// storedSnapshot is snapshotRecord with the event kept as stored, for
// comparing it byte for byte.
type storedSnapshot struct {
	Event      json.RawMessage `json:"Event"`
	Deliveries []string        `json:"Deliveries"`
}

// snapshotCacheSize bounds the decoded snapshots kept: the deliveries of
// an event are attempted close together, so a few hundred events cover
// the ones in flight. An entry's slot is reused after as many insertions.
const snapshotCacheSize = 1024

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

// snapshotShare is the shared snapshot of one event within a write
// transaction: begin reads it (or finds none), add notes each delivery
// that refers to it, commit stores it with those ids.
type snapshotShare struct {
	eventID string
	ref     *rswebhooks.Event // nil: the deliveries keep their own snapshot
	enc     []byte            // ref's encoding
	ids     []string          // the referring deliveries, stored and new
	added   bool
}

// shareSnapshot prepares the shared snapshot of eventID for deliveries
// written in txn, from ev unless one is stored already: ref is nil when the
// stored one differs from ev (the deliveries then keep theirs inline).
// Reading the key puts it in the transaction's read set, so a concurrent
// dropSnapshots makes one of the two retry.
func shareSnapshot(txn *badger.Txn, eventID string, ev *rswebhooks.Event) (*snapshotShare, error) {
	sh := &snapshotShare{eventID: eventID}
	if ev.ID != eventID || rswebhooks.CheckStoreID("", eventID) != nil {
		return sh, nil //nolint:nilerr // no stored event has such an id: nothing to share
	}
	enc, err := encodeJSON(snapshotKey(eventID), ev)
	if err != nil {
		return nil, err
	}
	item, err := txn.Get(snapshotKey(eventID))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		sh.ref, sh.enc = ev, enc
		return sh, nil
	case err != nil:
		return nil, err
	}
	var stored storedSnapshot
	if err := item.Value(func(v []byte) error { return jsonUnmarshal(snapshotKey(eventID), v, &stored) }); err != nil {
		if errors.Is(err, rswebhooks.ErrUnreadable) {
			return sh, nil // an unreadable snapshot is not shared: the deliveries keep their own
		}
		return nil, err
	}
	if bytes.Equal(stored.Event, enc) {
		sh.ref, sh.enc, sh.ids = ev, enc, stored.Deliveries
	}
	return sh, nil
}

// add reports whether d may refer to the shared snapshot instead of
// holding its own, and if so notes its id.
func (sh *snapshotShare) add(d *rswebhooks.Delivery) bool {
	if !refers(d, sh.ref) {
		return false
	}
	if !slices.Contains(sh.ids, d.ID) {
		sh.ids = append(sh.ids, d.ID)
		sh.added = true
	}
	return true
}

// commit stores the snapshot with the ids of its deliveries (no TTL: see
// dropSnapshots), if a delivery was added.
func (sh *snapshotShare) commit(txn *badger.Txn) error {
	if !sh.added {
		return nil
	}
	b := make([]byte, 0, len(sh.enc)+32+30*len(sh.ids))
	b = append(b, `{"Event":`...)
	b = append(b, sh.enc...)
	b = append(b, `,"Deliveries":`...)
	ids, err := json.Marshal(sh.ids)
	if err != nil {
		return err
	}
	b = append(b, ids...)
	b = append(b, '}')
	return txn.Set(snapshotKey(sh.eventID), b)
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
// it stays while any delivery it lists is stored (pending for however
// long, or finished and within its retention), so a delivery is readable
// with its event for all of its retention. Only snapshots of events older
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
				// Read in the transaction: a writer adding a delivery that
				// refers to it (fan-out) reads and writes the key, and one
				// changing a listed delivery writes its record, so either
				// makes one of us retry.
				item, err := txn.Get(snapshotKey(id))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var rec storedSnapshot
				if err := item.Value(func(v []byte) error { return jsonUnmarshal(snapshotKey(id), v, &rec) }); err != nil {
					if errors.Is(err, rswebhooks.ErrUnreadable) {
						continue // left alone, like any unreadable record
					}
					return err
				}
				live := false
				for _, d := range rec.Deliveries {
					if live, err = exists(txn, deliveryKey(d)); err != nil || live {
						break
					}
				}
				if err != nil {
					return err
				}
				if live {
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
	b, err := recjson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	return b, nil
}
