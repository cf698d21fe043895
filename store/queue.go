package store

import (
	"context"
	"encoding/binary"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// queueCursor keeps queue scans from wading through tombstones. Every
// delivered or rescheduled item leaves a deleted q/ key that iterators step
// over until compaction drops it (badger#496); at thousands of deliveries a
// second a scan from the start of q/ would grow without bound. The cursor
// is a lower bound of the due time of every live queue key: scans seek to it.
//
// Writers that add queue keys lower the bound before committing. A scan may
// raise it to the first live key it saw only if no queue writer was in
// flight at its end and none finished during it, so a key committed after
// the scan's snapshot can never fall below the bound.
type queueCursor struct {
	mu       sync.Mutex
	low      uint64 // due nanos; 0 after Open (scan from the start once)
	inflight int
	gen      uint64
}

func (c *queueCursor) lower(due uint64) {
	c.mu.Lock()
	if due < c.low {
		c.low = due
	}
	c.mu.Unlock()
}

// begin returns the bound and generation a scan starts from.
func (c *queueCursor) begin() (low, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.low, c.gen
}

// raise records the first live due a scan started at gen saw.
func (c *queueCursor) raise(gen, first uint64) {
	c.mu.Lock()
	if c.inflight == 0 && c.gen == gen && first > c.low {
		c.low = first
	}
	c.mu.Unlock()
}

// queueUpdate is update for operations that may add queue keys.
func (db *DB) queueUpdate(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	c := &db.queue
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

// scanQueue calls fn with each live queue key from the cursor on, in due
// order, until fn returns false. It maintains the cursor.
func (db *DB) scanQueue(txn *badger.Txn, gen, low uint64, fn func(due uint64, id string) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pQueue)})
	defer it.Close()
	seek := binary.BigEndian.AppendUint64([]byte(pQueue), low)
	first := true
	for it.Seek(seek); it.Valid(); it.Next() {
		due, id, err := parseQueueKey(it.Item().Key())
		if err != nil {
			return err
		}
		if first {
			db.queue.raise(gen, due)
			first = false
		}
		more, err := fn(due, id)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
