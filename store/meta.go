package store

import (
	"context"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// SeenExecutions reports which of the execution ids were marked seen (and
// have not expired). The map holds only the seen ids.
func (db *DB) SeenExecutions(ctx context.Context, ids []string) (map[string]bool, error) {
	seen := make(map[string]bool)
	err := db.view(ctx, "seen executions", func(txn *badger.Txn) error {
		for _, id := range ids {
			ok, err := exists(txn, executionKey(id))
			if err != nil {
				return err
			}
			if ok {
				seen[id] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seen, nil
}

// MarkExecutionsSeen records execution ids as seen; they expire after
// Retention. Large sets are written in several transactions.
func (db *DB) MarkExecutionsSeen(ctx context.Context, ids []string) error {
	for i, id := range ids {
		if err := checkID(fmt.Sprintf("execution id [%d]", i), id); err != nil {
			return fmt.Errorf("store: mark executions seen: %w", err)
		}
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), deleteChunk)]
		ids = ids[len(chunk):]
		exp := db.expiresAt()
		err := db.update(ctx, "mark executions seen", func(txn *badger.Txn) error {
			for _, id := range chunk {
				if err := setRaw(txn, executionKey(id), nil, exp); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// GetMeta returns the value stored under key, or ErrNotFound.
func (db *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := db.view(ctx, "get meta "+key, func(txn *badger.Txn) error {
		var err error
		v, err = getRaw(txn, metaKey(key))
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// PutMeta stores a small value under key. The keys "schema", "ping" and
// "order-index" are reserved by the store.
func (db *DB) PutMeta(ctx context.Context, key string, v []byte) error {
	if key == "" || key == metaSchema || key == metaPing || key == metaOrder {
		return fmt.Errorf("store: put meta: key must be non-empty and not %q, %q or %q, got %q", metaSchema, metaPing, metaOrder, key)
	}
	return db.update(ctx, "put meta "+key, func(txn *badger.Txn) error {
		return txn.Set(metaKey(key), v)
	})
}

// PutMetaUntil stores a small value under key that disappears at expires
// (second resolution); an expiry in the past removes it.
func (db *DB) PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error {
	if key == "" || key == metaSchema || key == metaPing || key == metaOrder {
		return fmt.Errorf("store: put meta: key must be non-empty and not %q, %q or %q, got %q", metaSchema, metaPing, metaOrder, key)
	}
	if !expires.After(db.now()) {
		return db.update(ctx, "delete meta "+key, func(txn *badger.Txn) error {
			return txn.Delete(metaKey(key))
		})
	}
	return db.update(ctx, "put meta "+key, func(txn *badger.Txn) error {
		e := badger.NewEntry(metaKey(key), v)
		e.ExpiresAt = db.badgerExpiry(expires)
		return txn.SetEntry(e)
	})
}
