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
		if err := rswebhooks.CheckStoreID(fmt.Sprintf("execution id [%d]", i), id); err != nil {
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
	if err := checkMetaKey(key); err != nil {
		return err
	}
	return db.update(ctx, "put meta "+key, func(txn *badger.Txn) error {
		return txn.Set(metaKey(key), v)
	})
}

// PutMetaUntil stores a small value under key that disappears at expires
// (second resolution); an expiry in the past removes it.
func (db *DB) PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error {
	if err := checkMetaKey(key); err != nil {
		return err
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

// PutMetaIfAbsent stores v under key for good unless a value that has not
// expired is stored there, and returns the value now stored (v when it
// created it). The read and the write are one transaction: when another
// writes the key in between, Badger refuses the commit as a conflict and
// update runs it again, and then it finds that value.
func (db *DB) PutMetaIfAbsent(ctx context.Context, key string, v []byte) (stored []byte, created bool, err error) {
	if err := checkMetaKey(key); err != nil {
		return nil, false, err
	}
	if v == nil {
		v = []byte{}
	}
	err = db.update(ctx, "put meta if absent "+key, func(txn *badger.Txn) error {
		cur, err := getRaw(txn, metaKey(key))
		switch {
		case err == nil:
			if cur == nil {
				cur = []byte{}
			}
			stored, created = cur, false
			return nil
		case !errors.Is(err, rswebhooks.ErrNotFound):
			return err
		}
		stored, created = v, true
		return txn.Set(metaKey(key), v)
	})
	if err != nil {
		return nil, false, err
	}
	return stored, created, nil
}

// checkMetaKey refuses the empty key and the store's reserved ones.
func checkMetaKey(key string) error {
	if key == "" || key == metaSchema || key == metaPing || key == metaOrder {
		return fmt.Errorf("store: put meta: key must be non-empty and not %q, %q or %q, got %q", metaSchema, metaPing, metaOrder, key)
	}
	return nil
}

// ListMeta returns the unexpired values whose keys start with prefix, in
// key order.
func (db *DB) ListMeta(ctx context.Context, prefix string) ([]rswebhooks.MetaEntry, error) {
	if prefix == "" {
		return nil, errors.New("store: list meta: prefix must not be empty")
	}
	var out []rswebhooks.MetaEntry
	err := db.view(ctx, "list meta "+prefix, func(txn *badger.Txn) error {
		out = out[:0]
		return eachValue(txn, metaKey(prefix), func(k, v []byte) error {
			out = append(out, rswebhooks.MetaEntry{Key: string(k[len(pMeta):]), Value: append([]byte{}, v...)})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SwapMeta replaces the value under key with v if it is old, keeping its
// expiry. Badger's transactions detect a concurrent write of the key and
// the swap is retried on a fresh read, so two swaps from one old value
// cannot both succeed.
func (db *DB) SwapMeta(ctx context.Context, key string, old, v []byte) (bool, error) {
	if err := checkMetaKey(key); err != nil {
		return false, err
	}
	var swapped bool
	err := db.update(ctx, "swap meta "+key, func(txn *badger.Txn) error {
		swapped = false
		item, ok, err := metaItemIs(txn, key, old)
		if err != nil || !ok {
			return err
		}
		e := badger.NewEntry(metaKey(key), bytes.Clone(v))
		e.ExpiresAt = item.ExpiresAt()
		if err := txn.SetEntry(e); err != nil {
			return err
		}
		swapped = true
		return nil
	})
	return swapped, err
}

// DeleteMetaIf removes key if its value is old.
func (db *DB) DeleteMetaIf(ctx context.Context, key string, old []byte) (bool, error) {
	if err := checkMetaKey(key); err != nil {
		return false, err
	}
	var deleted bool
	err := db.update(ctx, "delete meta "+key, func(txn *badger.Txn) error {
		deleted = false
		_, ok, err := metaItemIs(txn, key, old)
		if err != nil || !ok {
			return err
		}
		if err := txn.Delete(metaKey(key)); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	return deleted, err
}

// metaItemIs reads key in txn and reports whether its value equals want.
func metaItemIs(txn *badger.Txn, key string, want []byte) (*badger.Item, bool, error) {
	item, err := txn.Get(metaKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	same := false
	err = item.Value(func(v []byte) error {
		same = bytes.Equal(v, want)
		return nil
	})
	return item, same, err
}
