package store

import (
	"bytes"
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
// Writers that add keys lower the bound (lower, inside their transaction)
// before committing. A scan raises it to the first live key it saw, but
// never above a position lowered by a writer whose commit the scan's
// snapshot may miss: one still in flight at the raise, or one that lowered
// or finished after the scan began. So a key committed after the snapshot
// never falls below the bound, while writers that add nothing (a finished
// delivery, a fan-out without pending deliveries) do not hold it back.
//
// The queue's cursor orders by due nanos (uint64), the fan-out markers' by
// event id (string; ULIDs sort by time, but the watcher writes ids with
// past times, which lower the bound like earlier due times do).
type cursor[T cmp.Ordered] struct {
	mu      sync.Mutex
	low     T                        // zero after Open: scan from the start once
	writers map[*badger.Txn]*mark[T] // transactions of writers in flight
	scans   map[*mark[T]]struct{}    // scans in progress: what they must not pass
}

// mark is the lowest position lowered by one writer, or the lowest a scan
// must not raise past.
type mark[T cmp.Ordered] struct {
	v   T
	set bool
}

func (m *mark[T]) add(v T) {
	if !m.set || v < m.v {
		m.v, m.set = v, true
	}
}

// lower records that txn adds a key at v.
func (c *cursor[T]) lower(txn *badger.Txn, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v < c.low {
		c.low = v
	}
	if w := c.writers[txn]; w != nil {
		w.add(v)
	}
	for s := range c.scans {
		s.add(v)
	}
}

// bound returns the current bound.
func (c *cursor[T]) bound() T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.low
}

// begin returns the bound a scan starts from and registers the scan; call
// end when it is over.
func (c *cursor[T]) begin() (T, *mark[T]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &mark[T]{}
	if c.scans == nil {
		c.scans = map[*mark[T]]struct{}{}
	}
	c.scans[s] = struct{}{}
	return c.low, s
}

func (c *cursor[T]) end(s *mark[T]) {
	c.mu.Lock()
	delete(c.scans, s)
	c.mu.Unlock()
}

// raise records the first live position scan s saw.
func (c *cursor[T]) raise(s *mark[T], first T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := mark[T]{}
	limit.add(first)
	if s.set {
		limit.add(s.v)
	}
	for _, w := range c.writers {
		if w.set {
			limit.add(w.v)
		}
	}
	if limit.v > c.low {
		c.low = limit.v
	}
}

// cursorUpdate is db.update for operations that may add keys behind c: fn
// must call c.lower with its txn for each key it adds.
func cursorUpdate[T cmp.Ordered](ctx context.Context, db *DB, c *cursor[T], op string, fn func(txn *badger.Txn) error) error {
	w := &mark[T]{}
	var txns []*badger.Txn // one per try (conflict retries)
	defer func() {
		c.mu.Lock()
		for _, txn := range txns {
			delete(c.writers, txn)
		}
		if w.set {
			// Committed (or not) after scans in progress began: they may
			// not have seen it.
			for s := range c.scans {
				s.add(w.v)
			}
		}
		c.mu.Unlock()
	}()
	return db.update(ctx, op, func(txn *badger.Txn) error {
		c.mu.Lock()
		if c.writers == nil {
			c.writers = map[*badger.Txn]*mark[T]{}
		}
		c.writers[txn] = w
		txns = append(txns, txn)
		c.mu.Unlock()
		return fn(txn)
	})
}

// queueUpdate is update for operations that may add queue keys.
func (db *DB) queueUpdate(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	return cursorUpdate(ctx, db, &db.queue, op, fn)
}

// scanQueue calls fn with each live queue key from the cursor on, in due
// order, until fn returns false. The item gives access to the key's value
// (the webhook id, or empty for keys written before it was stored there).
// It maintains the cursor.
//
// With after (a queue key an earlier scan returned), the scan resumes past
// that key and leaves the cursor alone: the keys it skips are not known to
// be dead.
func (db *DB) scanQueue(txn *badger.Txn, sc *mark[uint64], low uint64, after []byte, fn func(due uint64, id string, item *badger.Item) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pQueue)})
	defer it.Close()
	seek := binary.BigEndian.AppendUint64([]byte(pQueue), low)
	first := after == nil
	if after != nil && bytes.Compare(after, seek) > 0 {
		seek = after
	}
	for it.Seek(seek); it.Valid(); it.Next() {
		item := it.Item()
		if after != nil && bytes.Equal(item.Key(), after) {
			continue
		}
		due, id, err := parseQueueKey(item.Key())
		if err != nil {
			return err
		}
		if first {
			db.queue.raise(sc, due)
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
func (db *DB) scanUnfanned(txn *badger.Txn, sc *mark[string], low string, limit int) ([]string, error) {
	var out []string
	err := db.eachUnfanned(txn, sc, low, func(id string) (bool, error) {
		out = append(out, id)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// eachUnfanned calls fn with the id of each event waiting for fan-out, from
// the cursor on, in id order, until fn returns false. It maintains the
// cursor.
func (db *DB) eachUnfanned(txn *badger.Txn, sc *mark[string], low string, fn func(id string) (bool, error)) error {
	prefix := []byte(pUnfanned)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	first := true
	for it.Seek(append(prefix, low...)); it.Valid(); it.Next() {
		id := string(it.Item().Key()[len(prefix):])
		if first {
			db.unfanned.raise(sc, id)
			first = false
		}
		more, err := fn(id)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
