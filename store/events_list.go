package store

import (
	"context"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// ListEvents returns up to limit (<= 0: all) stored events with ids after
// afterID ("" = from the first), oldest first. Event ids are ULIDs, so this
// is creation order and afterID works as a cursor.
func (db *DB) ListEvents(ctx context.Context, afterID string, limit int) ([]*rswebhooks.Event, error) {
	var out []*rswebhooks.Event
	err := db.view(ctx, "list events", func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pEvent), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		start := []byte(pEvent)
		if afterID != "" {
			start = append(eventKey(afterID), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			var e rswebhooks.Event
			err := it.Item().Value(func(v []byte) error { return jsonUnmarshal(it.Item().Key(), v, &e) })
			if errors.Is(err, rswebhooks.ErrUnreadable) {
				db.noteUnreadable(err)
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, &e)
		}
		return nil
	})
	return out, err
}
