package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// lease is one delivery leased to an attempt in flight.
type lease struct {
	holder  string
	webhook string
	until   time.Time
	// version is the Badger version of the record Lease read and ix its
	// index fields: Complete, finding the same version, needs not decode
	// the record again.
	version uint64
	ix      deliveryIndex
}

// leaseTable holds the leases in memory: a Badger store belongs to one
// process, so a lease needs no durability (after a restart nothing is in
// flight).
type leaseTable struct {
	mu sync.Mutex
	m  map[string]lease // by delivery id
}

// live returns the unexpired lease of id.
func (t *leaseTable) live(id string, now time.Time) (lease, bool) {
	l, ok := t.m[id]
	return l, ok && l.until.After(now)
}

// perWebhook counts unexpired leases by webhook, dropping expired ones.
// t.mu is held.
func (t *leaseTable) perWebhook(now time.Time) map[string]int {
	n := map[string]int{}
	for id, l := range t.m {
		if !l.until.After(now) {
			delete(t.m, id)
			continue
		}
		n[l.webhook]++
	}
	return n
}

// index returns the index fields of the delivery as its lease read them,
// if the stored record is still at that version.
func (t *leaseTable) index(id string, version uint64) (deliveryIndex, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[id]
	if !ok || l.version != version {
		return deliveryIndex{}, false
	}
	return l.ix, true
}

// leasedTo counts the unexpired leases of a webhook's deliveries. t.mu is
// held.
func (t *leaseTable) leasedTo(webhookID string, now time.Time) int {
	n := 0
	for _, l := range t.m {
		if l.webhook == webhookID && l.until.After(now) {
			n++
		}
	}
	return n
}

func (t *leaseTable) drop(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// Lease leases a pending, due delivery to req.Holder (see
// rswebhooks.DeliveryStore.Lease).
func (db *DB) Lease(ctx context.Context, id string, now time.Time, req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	if err := req.Check(); err != nil {
		return nil, fmt.Errorf("store: lease delivery %s: %w", id, err)
	}
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.live(id, now); ok {
		return nil, fmt.Errorf("store: lease delivery %s: leased by %s until %s: %w", id, l.holder, l.until.Format(time.RFC3339Nano), rswebhooks.ErrLeaseRefused)
	}
	var (
		d       rswebhooks.Delivery
		version uint64
		ix      *deliveryIndex
	)
	err := db.view(ctx, "get delivery "+id, func(txn *badger.Txn) error {
		item, err := getItem(txn, deliveryKey(id))
		if err != nil {
			return err
		}
		version = item.Version()
		ix, err = db.decodeDelivery(txn, item, &d)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case d.State != rswebhooks.DeliveryPending:
		return nil, fmt.Errorf("store: lease delivery %s: state is %s: %w", id, d.State, rswebhooks.ErrLeaseRefused)
	case d.NextUTC.After(now):
		return nil, fmt.Errorf("store: lease delivery %s: due at %s: %w", id, d.NextUTC.Format(time.RFC3339Nano), rswebhooks.ErrLeaseRefused)
	}
	if req.PerWebhook > 0 {
		if n := t.leasedTo(d.WebhookID, now); n >= req.PerWebhook {
			return nil, fmt.Errorf("store: lease delivery %s: webhook %s has %d leased: %w", id, d.WebhookID, n, rswebhooks.ErrLeaseRefused)
		}
	}
	if t.m == nil {
		t.m = map[string]lease{}
	}
	t.m[id] = lease{holder: req.Holder, webhook: d.WebhookID, until: now.Add(req.For), version: version, ix: *ix}
	return &d, nil
}

// Release ends holder's lease of the delivery, if it holds one.
func (db *DB) Release(_ context.Context, id, holder string) error {
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.m[id]; ok && l.holder == holder {
		delete(t.m, id)
	}
	return nil
}

// leasedNow returns the leased delivery ids and the leases per webhook, for
// a queue scan.
func (db *DB) leasedNow(now time.Time) (map[string]bool, map[string]int) {
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return nil, nil
	}
	n := t.perWebhook(now)
	ids := make(map[string]bool, len(t.m))
	for id := range t.m {
		ids[id] = true
	}
	return ids, n
}

// DueSignal receives a value after a write of this store made deliveries
// due (see rswebhooks.DeliveryStore.DueSignal).
func (db *DB) DueSignal() <-chan struct{} { return db.due }

// signalDue wakes a dispatcher when one of ds is pending and due by now.
func (db *DB) signalDue(ds ...*rswebhooks.Delivery) {
	now := db.now()
	for _, d := range ds {
		if d != nil && d.State == rswebhooks.DeliveryPending && !d.NextUTC.After(now) {
			select {
			case db.due <- struct{}{}:
			default:
			}
			return
		}
	}
}
