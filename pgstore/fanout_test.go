package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// A fan-out whose delivery is there already (put under the id fan-out
// derives) still fans out its event and writes its other deliveries: the
// plain INSERT's unique violation sends it again, tolerating the row. The
// chunk's other events are fanned out with it.
func TestFanOutOverAStoredDelivery(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url, storetest.Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	var fs []rswebhooks.EventFanOut
	for i, r := range []string{"r1", "r2"} {
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(now.Add(time.Duration(i) * time.Millisecond)), Filter: "reports",
			Type: "Created", ResourceID: r, Time: now}
		if err := db.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		var ds []*rswebhooks.Delivery
		for _, w := range []string{"W1", "W2"} {
			ds = append(ds, &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, w), WebhookID: w, EventID: ev.ID, Event: *ev,
				State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now})
		}
		fs = append(fs, rswebhooks.EventFanOut{EventID: ev.ID, Deliveries: ds})
	}
	put := *fs[0].Deliveries[0]
	put.Event.Note = "put before the fan-out"
	if err := db.PutDelivery(ctx, &put); err != nil {
		t.Fatal(err)
	}
	if errs := db.FanOutEvents(ctx, fs); errs != nil {
		t.Fatalf("fan-out over a stored delivery: %v", errors.Join(errs...))
	}
	if n, _, err := db.UnfannedStats(ctx); err != nil || n != 0 {
		t.Fatalf("events waiting for fan-out = %d, %v; want 0", n, err)
	}
	for _, f := range fs {
		for _, d := range f.Deliveries {
			got, err := db.GetDelivery(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := d.Event.ResourceID
			if d.ID == put.ID && got.Event.Note != put.Event.Note {
				t.Fatalf("the stored delivery was overwritten by the fan-out: note %q", got.Event.Note)
			}
			if got.Event.ResourceID != want || got.WebhookID != d.WebhookID {
				t.Fatalf("delivery %s = %+v", d.ID, got)
			}
		}
	}
	if n := query[int](t, url, "SELECT count(*) FROM deliveries"); n != 4 {
		t.Fatalf("%d deliveries, want 4", n)
	}
}

// An event appended again after its row was deleted (its snapshot kept by
// its deliveries) is fanned out once more: the new delivery shares the
// snapshot there (a plain INSERT of it fails, and the fan-out is sent
// again tolerating it).
func TestFanOutOverAKeptSnapshot(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url, storetest.Config{})
	ctx := context.Background()
	first := fanOutPending(t, db, "W1")
	ev := first[0].Event
	if err := db.DeleteUnreadable(ctx, "event", ev.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendEvent(ctx, &ev); err != nil {
		t.Fatal(err)
	}
	d := &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(&ev, "W2"), WebhookID: "W2", EventID: ev.ID, Event: ev,
		State: rswebhooks.DeliveryPending, NextUTC: first[0].NextUTC, CreatedUTC: first[0].CreatedUTC}
	if err := db.FanOut(ctx, ev.ID, []*rswebhooks.Delivery{d}); err != nil {
		t.Fatalf("fan-out over a kept snapshot: %v", err)
	}
	got, err := db.GetDelivery(ctx, d.ID)
	if err != nil || got.Event.ResourceID != ev.ResourceID {
		t.Fatalf("the new delivery = %+v, %v", got, err)
	}
	if n := query[int](t, url, "SELECT count(*) FROM snapshots"); n != 1 {
		t.Fatalf("%d snapshots, want the one both deliveries share", n)
	}
	if n := query[int](t, url, "SELECT count(*) FROM deliveries WHERE shared"); n != 2 {
		t.Fatalf("%d deliveries share a snapshot, want 2", n)
	}
}

// An event appended twice is a conflict, also now that the append is a
// plain INSERT, and the first one stays as it was.
func TestAppendTwiceConflicts(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url, storetest.Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", ResourceID: "r1", Time: now}
	if err := db.AppendEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	again := *ev
	again.ResourceID = "r2"
	if err := db.AppendEvent(ctx, &again); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("appending it again = %v, want ErrConflict", err)
	}
	got, err := db.GetEvent(ctx, ev.ID)
	if err != nil || got.ResourceID != "r1" {
		t.Fatalf("the event = %+v, %v; want the first one", got, err)
	}
}
