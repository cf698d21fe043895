package store

import (
	"context"
	"testing"
	"time"

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

// The order index follows event order, not delivery ids or due times, and
// keeps to pending deliveries: finishing, discarding and redelivering move
// the head; a ping takes its turn by the time it was asked for.
func TestOrderHead(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	// Delivery ids sort against event order and due times are reversed.
	mustNil(t, db.PutDelivery(ctx, delivery("D9", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour))))
	mustNil(t, db.PutDelivery(ctx, delivery("D5", "W1", "E2", rswebhooks.DeliveryPending, t0)))
	mustNil(t, db.PutDelivery(ctx, delivery("D1", "W1", "E3", rswebhooks.DeliveryPending, t0.Add(-time.Hour))))
	mustNil(t, db.PutDelivery(ctx, delivery("D0", "W2", "E0", rswebhooks.DeliveryPending, t0)))
	ping := delivery("P0", "W1", "E4", rswebhooks.DeliveryPending, t0)
	ping.Ping = true
	mustNil(t, db.PutDelivery(ctx, ping))
	if h := headOf(t, db, "W1"); h != "D9" {
		t.Fatalf("head of W1 = %q, want D9 (event E1)", h)
	}
	if h := headOf(t, db, "W2"); h != "D0" {
		t.Fatalf("head of W2 = %q, want D0", h)
	}

	// A retry keeps the head; finishing it moves the head on.
	d, err := db.GetDelivery(ctx, "D9")
	mustNil(t, err)
	d.NextUTC = t0.Add(2 * time.Hour)
	mustNil(t, db.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0}))
	if h := headOf(t, db, "W1"); h != "D9" {
		t.Fatalf("head after a retry = %q, want D9", h)
	}
	d.State = rswebhooks.DeliveryFailed
	mustNil(t, db.Complete(ctx, d, &rswebhooks.Attempt{N: 2, StartedUTC: t0}))
	if h := headOf(t, db, "W1"); h != "D5" {
		t.Fatalf("head after D9 failed = %q, want D5", h)
	}
	mustNil(t, db.DiscardDelivery(ctx, "D5"))
	if h := headOf(t, db, "W1"); h != "D1" {
		t.Fatalf("head after D5 was discarded = %q, want D1", h)
	}
	// Redelivered, the older event goes first again.
	_, err = db.Redeliver(ctx, "D9", t0)
	mustNil(t, err)
	if h := headOf(t, db, "W1"); h != "D9" {
		t.Fatalf("head after redelivering D9 = %q, want D9", h)
	}
	for _, id := range []string{"D9", "D1"} {
		d, err := db.GetDelivery(ctx, id)
		mustNil(t, err)
		d.State = rswebhooks.DeliverySucceeded
		mustNil(t, db.Complete(ctx, d, nil))
	}
	if h := headOf(t, db, "W1"); h != "P0" {
		t.Fatalf("head after the events = %q, want the ping P0", h)
	}
	_, err = db.Redeliver(ctx, "D1", t0.Add(-time.Hour))
	mustNil(t, err)

	// Hold moves only later, release only what hold moved.
	moved, err := db.HoldDelivery(ctx, "D1", t0.Add(time.Minute), "held")
	mustNil(t, err)
	if !moved {
		t.Fatal("HoldDelivery did not move a delivery due earlier")
	}
	if moved, _ := db.HoldDelivery(ctx, "D1", t0, "held"); moved {
		t.Fatal("HoldDelivery moved a delivery earlier")
	}
	got, err := db.GetDelivery(ctx, "D1")
	mustNil(t, err)
	if !got.NextUTC.Equal(t0.Add(time.Minute)) || got.Reason != "held" {
		t.Fatalf("held delivery: next %s reason %q", got.NextUTC, got.Reason)
	}
	if moved, _ := db.ReleaseDelivery(ctx, "D1", t0, "other"); moved {
		t.Fatal("ReleaseDelivery released a delivery held for another reason")
	}
	moved, err = db.ReleaseDelivery(ctx, "D1", t0, "held")
	mustNil(t, err)
	got, err = db.GetDelivery(ctx, "D1")
	mustNil(t, err)
	if !moved || !got.NextUTC.Equal(t0) || got.Reason != "" {
		t.Fatalf("released delivery: moved %v next %s reason %q", moved, got.NextUTC, got.Reason)
	}
	refs, err := db.DueRefs(ctx, t0, 0)
	mustNil(t, err)
	for _, r := range refs {
		if r.ID == "D1" {
			return
		}
	}
	t.Fatalf("released D1 not due at %s: %v", t0, refs)
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
