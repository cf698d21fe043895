package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// migrateBatch is how many delivery records one migration transaction
// converts.
const migrateBatch = FanOutChunk

// checkSchema writes m/schema on a new store, refuses newer ones and
// brings older ones to SchemaVersion (migrate; from schema 2 only the
// version changes).
func (db *DB) checkSchema(bdb *badger.DB) error {
	err := bdb.Update(func(txn *badger.Txn) error {
		v, err := getRaw(txn, metaKey(metaSchema))
		if errors.Is(err, rswebhooks.ErrNotFound) {
			return txn.Set(metaKey(metaSchema), []byte(strconv.Itoa(SchemaVersion)))
		}
		if err != nil {
			return fmt.Errorf("store: read schema version in %s: %w", db.opts.Dir, err)
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("store: schema version %q in %s is not a number", v, db.opts.Dir)
		}
		if n > SchemaVersion {
			return fmt.Errorf("store: %s has schema %d, this release supports up to %d: %w",
				db.opts.Dir, n, SchemaVersion, ErrSchemaTooNew)
		}
		if n < 2 {
			// Marked before anything is converted, with the new version: from
			// here on releases that know only schema 1 refuse the directory
			// (they would read converted deliveries without their event),
			// and a restart after a crash resumes the conversion.
			if err := txn.Set(metaKey(metaMigrate), []byte("2")); err != nil {
				return err
			}
			return txn.Set(metaKey(metaSchema), []byte(strconv.Itoa(SchemaVersion)))
		}
		if n < SchemaVersion {
			// Schema 2 → 3 converts nothing: new records are written in the
			// new form from here on, and releases of schema 2 must refuse
			// the directory (see SchemaVersion).
			return txn.Set(metaKey(metaSchema), []byte(strconv.Itoa(SchemaVersion)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.migrate(bdb)
}

// migrate finishes a conversion to schema 2 that checkSchema started (or
// a crash interrupted): every delivery record that holds its event snapshot
// inline is rewritten to refer to the event's shared snapshot s/<eventID>
// (written from the first of them that equals the event, while the event
// is kept, and listing them), keeping its TTL; its de/ key goes (schema 1
// gave it the event's TTL). One left inline keeps a de/ key with its own
// TTL. Pending deliveries are marked as having their order key (schema 1
// gave every one a dp/ key), and Ordered webhooks are written again with
// the flag in their key's user meta (see webhookOrdered). Each transaction
// converts up to migrateBatch records on its own, so a crash loses nothing
// and a restart goes on from what is left; m/migrating is removed at the
// end. A record whose snapshot differs from the shared one, or that cannot
// be decoded, stays as it is (both forms are read).
func (db *DB) migrate(bdb *badger.DB) error {
	marked := false
	if err := bdb.View(func(txn *badger.Txn) error {
		ok, err := exists(txn, metaKey(metaMigrate))
		marked = ok
		return err
	}); err != nil || !marked {
		return err
	}
	db.log.Info().Str("dir", db.opts.Dir).Msg("converting the stored deliveries to schema 2 (one shared snapshot per event); this runs once")
	// Webhooks first: their Ordered flag goes into the key's user meta.
	if err := bdb.Update(func(txn *badger.Txn) error {
		var ws []*rswebhooks.Webhook
		err := eachValue(txn, []byte(pWebhook), func(k, v []byte) error {
			w := new(rswebhooks.Webhook)
			if jsonUnmarshal(k, v, w) == nil && w.Ordered {
				ws = append(ws, w)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, w := range ws {
			if err := putWebhook(txn, w); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("store: convert %s to schema 2: %w", db.opts.Dir, err)
	}
	after := []byte(pDelivery)
	converted := 0
	for {
		var ids []string
		err := bdb.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pDelivery)})
			defer it.Close()
			for it.Seek(after); it.Valid() && len(ids) < migrateBatch; it.Next() {
				if k := it.Item().Key(); string(k) != string(after) {
					ids = append(ids, string(k[len(pDelivery):]))
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: convert %s to schema 2: %w", db.opts.Dir, err)
		}
		if len(ids) == 0 {
			break
		}
		n := 0
		err = bdb.Update(func(txn *badger.Txn) error {
			n = 0
			for _, id := range ids {
				ok, err := convertDelivery(txn, id)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: convert %s to schema 2: %w", db.opts.Dir, err)
		}
		converted += n
		db.migrated += n
		if db.opts.onMigrate != nil {
			db.opts.onMigrate(converted)
		}
		after = deliveryKey(ids[len(ids)-1])
	}
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Delete(metaKey(metaMigrate)) }); err != nil {
		return fmt.Errorf("store: convert %s to schema 2: %w", db.opts.Dir, err)
	}
	db.log.Info().Str("dir", db.opts.Dir).Int("deliveries", converted).Msg("store converted to schema 2")
	return nil
}

// convertDelivery rewrites one schema-1 delivery record (see migrate) and
// reports whether it now refers to a shared snapshot.
func convertDelivery(txn *badger.Txn, id string) (bool, error) {
	item, err := getItem(txn, deliveryKey(id))
	if errors.Is(err, rswebhooks.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var rec deliveryRecord
	if err := decodeItem(item, &rec); err != nil {
		if errors.Is(err, rswebhooks.ErrUnreadable) {
			return false, nil // left for the unreadable-record handling
		}
		return false, err
	}
	if rec.Event == nil {
		return false, nil // converted before a crash
	}
	exp := item.ExpiresAt()
	d := rec.Delivery
	d.Event = *rec.Event
	// Schema 1 gave every pending delivery an order key.
	rec.OrderKey = d.State == rswebhooks.DeliveryPending && d.EventID != ""
	indexed := d.EventID != "" && rswebhooks.CheckStoreID("", d.EventID) == nil
	share, err := convertShare(txn, &d)
	if err != nil {
		return false, err
	}
	if !share.add(&d) {
		// Keeps its own snapshot, and its de/ key, now with its TTL.
		if indexed {
			if err := setRaw(txn, byEventKey(d.EventID, d.ID), nil, exp); err != nil {
				return false, err
			}
		}
		if rec.OrderKey {
			return false, setJSON(txn, deliveryKey(d.ID), &rec, exp)
		}
		return false, nil
	}
	if err := share.commit(txn); err != nil {
		return false, err
	}
	if indexed { // listed in the snapshot instead
		if err := txn.Delete(byEventKey(d.EventID, d.ID)); err != nil {
			return false, err
		}
	}
	return true, setJSON(txn, deliveryKey(d.ID), &deliveryRecord{Delivery: d, OrderKey: rec.OrderKey}, exp)
}

// convertShare is shareSnapshot for the conversion: the first converted
// delivery of an event stores the shared snapshot, but not one that
// differs from the event itself while the event is kept.
func convertShare(txn *badger.Txn, d *rswebhooks.Delivery) (*snapshotShare, error) {
	if ok, err := exists(txn, snapshotKey(d.EventID)); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		stored, err := getRaw(txn, eventKey(d.EventID))
		if err != nil && !errors.Is(err, rswebhooks.ErrNotFound) {
			return nil, err
		}
		if err == nil {
			enc, err := encodeJSON(snapshotKey(d.EventID), &d.Event)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(enc, stored) {
				return &snapshotShare{}, nil
			}
		}
	}
	return shareSnapshot(txn, d.EventID, &d.Event)
}
