package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rswebhooks/rswebhooks"
)

func fanOutSet(ev *rswebhooks.Event, n int) []*rswebhooks.Delivery {
	ds := make([]*rswebhooks.Delivery, n)
	for i := range ds {
		wh := fmt.Sprintf("W%05d", i)
		ds[i] = delivery(rswebhooks.DeliveryID(ev, wh), wh, ev.ID, rswebhooks.DeliveryPending, t0)
		ds[i].Event = *ev
	}
	return ds
}

// One event to 2,000 webhooks is more than one Badger transaction holds; it
// is written in bounded transactions.
func TestFanOutManyWebhooks(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	ev := event("E1")
	mustNil(t, db.AppendEvent(ctx, ev))
	ds := fanOutSet(ev, 2000)
	mustNil(t, db.FanOut(ctx, ev.ID, ds))
	depth, _, err := db.QueueStats(ctx)
	mustNil(t, err)
	if depth != 2000 {
		t.Fatalf("queue depth = %d, want 2000", depth)
	}
	if n, _, _ := db.UnfannedStats(ctx); n != 0 {
		t.Fatalf("unfanned after fan-out = %d, want 0", n)
	}
}

// A fan-out cut short after some chunks leaves the event waiting; repeating
// it writes the rest and no delivery twice.
func TestFanOutInterruptedRepeats(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	ev := event("E1")
	mustNil(t, db.AppendEvent(ctx, ev))
	ds := fanOutSet(ev, 3*FanOutChunk+5)
	// As if killed after the first two chunks.
	mustNil(t, db.fanOutTxn(ctx, ev.ID, ds[:FanOutChunk], false, true))
	mustNil(t, db.fanOutTxn(ctx, ev.ID, ds[FanOutChunk:2*FanOutChunk], false, true))
	n, oldest, err := db.UnfannedStats(ctx)
	mustNil(t, err)
	if n != 1 || !oldest.Equal(t0) {
		t.Fatalf("UnfannedStats = %d %v; want 1 %v", n, oldest, t0)
	}
	// The first delivery was sent meanwhile.
	first, err := db.GetDelivery(ctx, ds[0].ID)
	mustNil(t, err)
	first.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, first, &rswebhooks.Attempt{N: 1}))

	mustNil(t, db.FanOut(ctx, ev.ID, fanOutSet(ev, 3*FanOutChunk+5)))
	depth, _, _ := db.QueueStats(ctx)
	if depth != 3*FanOutChunk+4 {
		t.Fatalf("queue depth = %d, want %d (the sent one not queued again)", depth, 3*FanOutChunk+4)
	}
	got, err := db.GetDelivery(ctx, ds[0].ID)
	mustNil(t, err)
	if got.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("repeated fan-out replaced a sent delivery: %s", got.State)
	}
	if n, _, _ := db.UnfannedStats(ctx); n != 0 {
		t.Fatalf("unfanned after repeat = %d", n)
	}
	// A chunked fan-out of an event already fanned out writes nothing.
	other := fanOutSet(ev, 2*FanOutChunk)
	for _, d := range other {
		d.ID = rswebhooks.DeliveryID(&rswebhooks.Event{ID: "X", Time: t0}, d.WebhookID)
	}
	mustNil(t, db.FanOut(ctx, ev.ID, other))
	if _, err := db.GetDelivery(ctx, other[0].ID); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("fan-out of a done event wrote: %v", err)
	}
}

// SetOwnerMissing of an owner with more webhooks than one transaction
// changes (200) changes and reports every one, once.
func TestSetOwnerMissingManyChunks(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	for i := range 450 {
		mustNil(t, db.CreateWebhook(ctx, webhook(fmt.Sprintf("A%04d", i), "alice", t0)))
	}
	mustNil(t, db.CreateWebhook(ctx, webhook("B", "bob", t0)))
	changed, err := db.SetOwnerMissing(ctx, "alice", true)
	mustNil(t, err)
	if len(changed) != 450 {
		t.Fatalf("changed %d, want 450", len(changed))
	}
	c, err := db.CountWebhooks(ctx)
	mustNil(t, err)
	if c != (rswebhooks.WebhookCounts{Active: 1, OwnerMissing: 450}) {
		t.Fatalf("counts = %+v", c)
	}
	if again, _ := db.SetOwnerMissing(ctx, "alice", true); len(again) != 0 {
		t.Fatalf("second set changed %d", len(again))
	}
	back, err := db.SetOwnerMissing(ctx, "alice", false)
	mustNil(t, err)
	if len(back) != 450 {
		t.Fatalf("cleared %d, want 450", len(back))
	}
}
