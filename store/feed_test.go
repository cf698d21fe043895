package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

func TestScanEventsBothWaysWithinBounds(t *testing.T) {
	db, base, ids := openWithEvents(t, 6)
	ctx := context.Background()
	scan := func(from, to string, newest bool, max int) []string {
		t.Helper()
		var got []string
		err := db.ScanEvents(ctx, from, to, newest, func(e *rswebhooks.Event) (bool, error) {
			got = append(got, e.ID)
			return max == 0 || len(got) < max, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	eq := func(name string, got, want []string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: got %v, want %v", name, got, want)
			}
		}
	}
	rev := func(s []string) []string {
		out := make([]string, len(s))
		for i, v := range s {
			out[len(s)-1-i] = v
		}
		return out
	}
	eq("all oldest first", scan("", "", false, 0), ids)
	eq("all newest first", scan("", "", true, 0), rev(ids))
	eq("bounded newest first", scan(ids[1], ids[4], true, 0), rev(ids[1:4]))
	eq("bounded oldest first", scan(ids[1], ids[4], false, 0), ids[1:4])
	eq("stopped by fn", scan("", "", true, 2), rev(ids)[:2])
	// A bound between two ids (a time, not an id) works the same way.
	mid := rswebhooks.IDFrom(base.Add(2500*time.Millisecond), [10]byte{})
	eq("time bound newest first", scan("", mid, true, 0), rev(ids[:3]))
	eq("time bound oldest first", scan(mid, "", false, 0), ids[3:])
	stop := errors.New("stop")
	if err := db.ScanEvents(ctx, "", "", true, func(*rswebhooks.Event) (bool, error) { return true, stop }); !errors.Is(err, stop) {
		t.Fatalf("fn error = %v, want it returned", err)
	}
}

func TestEventDeliveriesFollowFanOutReplayAndDiscard(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", Time: now}
	other := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", Time: now}
	for _, e := range []*rswebhooks.Event{ev, other} {
		if err := db.AppendEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(e *rswebhooks.Event, wh, id string) *rswebhooks.Delivery {
		return &rswebhooks.Delivery{ID: id, WebhookID: wh, EventID: e.ID, Event: *e, State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now}
	}
	d1, d2 := mk(ev, "W1", rswebhooks.DeliveryID(ev, "W1")), mk(ev, "W2", rswebhooks.DeliveryID(ev, "W2"))
	if err := db.FanOut(ctx, ev.ID, []*rswebhooks.Delivery{d1, d2}); err != nil {
		t.Fatal(err)
	}
	if err := db.FanOut(ctx, other.ID, []*rswebhooks.Delivery{mk(other, "W1", rswebhooks.DeliveryID(other, "W1"))}); err != nil {
		t.Fatal(err)
	}
	replayed := mk(ev, "W1", rswebhooks.NewID(now.Add(time.Second)))
	if n, err := db.PutDeliveries(ctx, []*rswebhooks.Delivery{replayed}); err != nil || n != 1 {
		t.Fatalf("PutDeliveries = %d, %v", n, err)
	}
	if n, err := db.PutDeliveries(ctx, []*rswebhooks.Delivery{replayed}); !errors.Is(err, rswebhooks.ErrConflict) || n != 0 {
		t.Fatalf("PutDeliveries of an existing id = %d, %v; want 0, ErrConflict", n, err)
	}
	got, err := db.EventDeliveries(ctx, ev.ID)
	if err != nil || len(got) != 3 {
		t.Fatalf("EventDeliveries = %d, %v; want 3", len(got), err)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if d.EventID != ev.ID {
			t.Fatalf("delivery %s of event %s listed for %s", d.ID, d.EventID, ev.ID)
		}
		seen[d.ID] = true
	}
	if !seen[d1.ID] || !seen[d2.ID] || !seen[replayed.ID] {
		t.Fatalf("EventDeliveries = %v, want %s, %s and %s", seen, d1.ID, d2.ID, replayed.ID)
	}
	if err := db.DiscardDelivery(ctx, d2.ID); err != nil {
		t.Fatal(err)
	}
	got, err = db.EventDeliveries(ctx, ev.ID)
	if err != nil || len(got) != 2 {
		t.Fatalf("after discard: %d deliveries, %v; want 2", len(got), err)
	}
	// Replayed deliveries are due like any other.
	due, err := db.Due(ctx, now.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range due {
		found = found || d.ID == replayed.ID
	}
	if !found {
		t.Fatal("the replayed delivery is not in the due queue")
	}
}
