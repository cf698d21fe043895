package store

import (
	"context"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// A data directory written before the order index gets it on Open.
func TestOrderIndexBuiltOnOpen(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir)
	ctx := context.Background()
	w := webhook("W1", "alice", t0)
	w.Ordered = true // only an Ordered webhook's deliveries are in the index
	mustNil(t, db.CreateWebhook(ctx, w))
	mustNil(t, db.PutDelivery(ctx, delivery("D2", "W1", "E2", rswebhooks.DeliveryPending, t0)))
	mustNil(t, db.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0)))
	mustNil(t, db.PutDelivery(ctx, delivery("D0", "W1", "E0", rswebhooks.DeliverySucceeded, t0)))
	// Make it look like an older release wrote it.
	mustNil(t, db.bdb.Load().Update(func(txn *badger.Txn) error {
		for _, k := range [][]byte{orderKey("W1", "E1", "D1"), orderKey("W1", "E2", "D2"), metaKey(metaOrder)} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}))
	if h := storetest.HeadOf(t, db, "W1"); h != "" {
		t.Fatalf("head without index = %q", h)
	}
	mustNil(t, db.Close())
	db, _ = openTest(t, dir)
	if h := storetest.HeadOf(t, db, "W1"); h != "D1" {
		t.Fatalf("head after reopen = %q, want D1", h)
	}
	d, err := db.GetDelivery(ctx, "D1")
	mustNil(t, err)
	d.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, d, nil))
	if h := storetest.HeadOf(t, db, "W1"); h != "D2" {
		t.Fatalf("head after D1 = %q, want D2", h)
	}
}

// Only an Ordered webhook's pending deliveries have order keys; a webhook
// that becomes Ordered gets them for the deliveries queued before, and
// OrderHead answers for any webhook either way.
func TestOrderKeysFollowOrdered(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	w := webhook("W1", "alice", t0)
	mustNil(t, db.CreateWebhook(ctx, w))
	for _, d := range []*rswebhooks.Delivery{
		delivery("D3", "W1", "E1", rswebhooks.DeliveryPending, t0),
		delivery("D1", "W1", "E2", rswebhooks.DeliveryPending, t0),
		delivery("D2", "W1", "E0", rswebhooks.DeliverySucceeded, t0),
	} {
		mustNil(t, db.PutDelivery(ctx, d))
	}
	keys := func() int {
		var n int
		mustNil(t, db.bdb.Load().View(func(txn *badger.Txn) error {
			ks, err := keySuffixes(txn, orderPrefix("W1"), 0)
			n = len(ks)
			return err
		}))
		return n
	}
	if n := keys(); n != 0 {
		t.Fatalf("%d order keys for a webhook that is not Ordered", n)
	}
	if h := storetest.HeadOf(t, db, "W1"); h != "D3" {
		t.Fatalf("head of a webhook that is not Ordered = %q, want D3 (event E1)", h)
	}
	w.Ordered = true
	mustNil(t, db.UpdateWebhook(ctx, w))
	if n := keys(); n != 2 {
		t.Fatalf("%d order keys after the webhook became Ordered, want 2 (its pending deliveries)", n)
	}
	mustNil(t, db.PutDelivery(ctx, delivery("D0", "W1", "E3", rswebhooks.DeliveryPending, t0)))
	if n := keys(); n != 3 {
		t.Fatalf("%d order keys after a delivery of the Ordered webhook, want 3", n)
	}
	if h := storetest.HeadOf(t, db, "W1"); h != "D3" {
		t.Fatalf("head from the index = %q, want D3", h)
	}
	d, err := db.GetDelivery(ctx, "D3")
	mustNil(t, err)
	d.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, d, nil))
	if h := storetest.HeadOf(t, db, "W1"); h != "D1" || keys() != 2 {
		t.Fatalf("head after D3 finished = %q with %d keys, want D1 and 2", h, keys())
	}
	// No longer Ordered: the keys left go as their deliveries finish.
	w.Ordered = false
	mustNil(t, db.UpdateWebhook(ctx, w))
	if h := storetest.HeadOf(t, db, "W1"); h != "D1" {
		t.Fatalf("head after Ordered was turned off = %q, want D1", h)
	}
	for _, id := range []string{"D1", "D0"} {
		d, err := db.GetDelivery(ctx, id)
		mustNil(t, err)
		d.State = rswebhooks.DeliveryFailed
		mustNil(t, db.Complete(ctx, d, nil))
	}
	if n := keys(); n != 0 {
		t.Fatalf("%d order keys left after every delivery finished", n)
	}
}
