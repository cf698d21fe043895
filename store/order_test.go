package store

import (
	"context"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
)

func headOf(t *testing.T, db *DB, wh string) string {
	t.Helper()
	r, ok, err := db.OrderHead(context.Background(), wh)
	mustNil(t, err)
	if !ok {
		return ""
	}
	if r.WebhookID != wh {
		t.Fatalf("head %s has webhook %q, want %q", r.ID, r.WebhookID, wh)
	}
	return r.ID
}

// A data directory written before the order index gets it on Open.
func TestOrderIndexBuiltOnOpen(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir)
	ctx := context.Background()
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
	if h := headOf(t, db, "W1"); h != "" {
		t.Fatalf("head without index = %q", h)
	}
	mustNil(t, db.Close())
	db, _ = openTest(t, dir)
	if h := headOf(t, db, "W1"); h != "D1" {
		t.Fatalf("head after reopen = %q, want D1", h)
	}
	d, err := db.GetDelivery(ctx, "D1")
	mustNil(t, err)
	d.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, d, nil))
	if h := headOf(t, db, "W1"); h != "D2" {
		t.Fatalf("head after D1 = %q, want D2", h)
	}
}
