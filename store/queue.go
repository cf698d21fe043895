package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// cursor keeps scans of a consumed prefix from wading through tombstones.
// Every delivered or rescheduled queue item and every fanned-out event
// leaves a deleted key that iterators step over until compaction drops it
// (badger#496); at thousands of items a second a scan from the start of the
// prefix would grow without bound. The cursor is a lower bound of the sort
// position of every live key: scans seek to it.
//
// Writers that add keys lower the bound before committing. A scan may raise
// it to the first live key it saw only if no writer was in flight at its end
// and none finished during it, so a key committed after the scan's snapshot
// can never fall below the bound.
//
// The queue's cursor orders by due nanos (uint64), the fan-out markers' by
// event id (string; ULIDs sort by time, but the watcher writes ids with
// past times, which lower the bound like earlier due times do).
type cursor[T cmp.Ordered] struct {
	mu       sync.Mutex
	low      T // zero after Open: scan from the start once
	inflight int
	gen      uint64
}

func (c *cursor[T]) lower(v T) {
	c.mu.Lock()
	if v < c.low {
		c.low = v
	}
	c.mu.Unlock()
}

// begin returns the bound and generation a scan starts from.
func (c *cursor[T]) begin() (low T, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.low, c.gen
}

// raise records the first live position a scan started at gen saw.
func (c *cursor[T]) raise(gen uint64, first T) {
	c.mu.Lock()
	if c.inflight == 0 && c.gen == gen && first > c.low {
		c.low = first
	}
	c.mu.Unlock()
}

// cursorUpdate is db.update for operations that may add keys behind c.
func cursorUpdate[T cmp.Ordered](ctx context.Context, db *DB, c *cursor[T], op string, fn func(txn *badger.Txn) error) error {
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight--
		c.gen++
		c.mu.Unlock()
	}()
	return db.update(ctx, op, fn)
}

// queueUpdate is update for operations that may add queue keys.
func (db *DB) queueUpdate(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	return cursorUpdate(ctx, db, &db.queue, op, fn)
}

// scanQueue calls fn with each live queue key from the cursor on, in due
// order, until fn returns false. The item gives access to the key's value
// (the webhook id, or empty for keys written before it was stored there).
// It maintains the cursor.
func (db *DB) scanQueue(txn *badger.Txn, gen, low uint64, fn func(due uint64, id string, item *badger.Item) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pQueue)})
	defer it.Close()
	seek := binary.BigEndian.AppendUint64([]byte(pQueue), low)
	first := true
	for it.Seek(seek); it.Valid(); it.Next() {
		item := it.Item()
		due, id, err := parseQueueKey(item.Key())
		if err != nil {
			return err
		}
		if first {
			db.queue.raise(gen, due)
			first = false
		}
		more, err := fn(due, id, item)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// scanUnfanned returns up to limit (<= 0: all) ids of events waiting for
// fan-out, from the cursor on, in id order. It maintains the cursor.
func (db *DB) scanUnfanned(txn *badger.Txn, gen uint64, low string, limit int) ([]string, error) {
	prefix := []byte(pUnfanned)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var out []string
	for it.Seek(append(prefix, low...)); it.Valid(); it.Next() {
		id := string(it.Item().Key()[len(prefix):])
		if len(out) == 0 {
			db.unfanned.raise(gen, id)
		}
		out = append(out, id)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}
