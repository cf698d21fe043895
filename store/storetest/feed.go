package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// ScanEvents walks [from, to) both ways, stops when fn says so, returns
// fn's error as is, and takes a time between two ids as a bound.
func testScanEvents(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	var all []string
	for i := range 6 {
		e := event(rswebhooks.NewID(t0.Add(time.Duration(i)*time.Second)), t0)
		must(t, s.AppendEvent(ctx, e))
		all = append(all, e.ID)
	}
	scan := func(from, to string, newest bool, max int) []string {
		t.Helper()
		var got []string
		must(t, s.ScanEvents(ctx, from, to, newest, func(e *rswebhooks.Event) (bool, error) {
			got = append(got, e.ID)
			return max == 0 || len(got) < max, nil
		}))
		return got
	}
	rev := func(xs []string) []string { xs = slices.Clone(xs); slices.Reverse(xs); return xs }
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"all oldest first", scan("", "", false, 0), all},
		{"all newest first", scan("", "", true, 0), rev(all)},
		{"bounded newest first", scan(all[1], all[4], true, 0), rev(all[1:4])},
		{"bounded oldest first", scan(all[1], all[4], false, 0), all[1:4]},
		{"stopped by fn", scan("", "", true, 2), rev(all)[:2]},
		{"time bound newest first", scan("", rswebhooks.IDFrom(t0.Add(2500*time.Millisecond), [10]byte{}), true, 0), rev(all[:3])},
		{"time bound oldest first", scan(rswebhooks.IDFrom(t0.Add(2500*time.Millisecond), [10]byte{}), "", false, 0), all[3:]},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	stop := errors.New("stop")
	if err := s.ScanEvents(ctx, "", "", true, func(*rswebhooks.Event) (bool, error) { return true, stop }); !errors.Is(err, stop) {
		t.Fatalf("fn error = %v, want it returned", err)
	}
}

// EventDeliveries lists an event's deliveries, fanned out or replayed
// (PutDeliveries), and no more once discarded; a replayed delivery is due
// like any other, and a replay of an existing id writes nothing.
func testEventDeliveries(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	ev := event(rswebhooks.NewID(t0), t0)
	other := event(rswebhooks.NewID(t0), t0)
	must(t, s.AppendEvent(ctx, ev))
	must(t, s.AppendEvent(ctx, other))
	mk := func(e *rswebhooks.Event, wh, id string) *rswebhooks.Delivery {
		d := delivery(id, wh, e.ID, rswebhooks.DeliveryPending, t0, t0)
		d.Event = *e
		return d
	}
	d1, d2 := mk(ev, "W1", rswebhooks.DeliveryID(ev, "W1")), mk(ev, "W2", rswebhooks.DeliveryID(ev, "W2"))
	must(t, s.FanOut(ctx, ev.ID, []*rswebhooks.Delivery{d1, d2}))
	must(t, s.FanOut(ctx, other.ID, []*rswebhooks.Delivery{mk(other, "W1", rswebhooks.DeliveryID(other, "W1"))}))
	replayed := mk(ev, "W1", rswebhooks.NewID(t0.Add(time.Second)))
	if n, err := s.PutDeliveries(ctx, []*rswebhooks.Delivery{replayed}); err != nil || n != 1 {
		t.Fatalf("PutDeliveries = %d, %v", n, err)
	}
	if n, err := s.PutDeliveries(ctx, []*rswebhooks.Delivery{replayed}); !errors.Is(err, rswebhooks.ErrConflict) || n != 0 {
		t.Fatalf("PutDeliveries of an existing id = %d, %v; want 0, ErrConflict", n, err)
	}
	got, err := s.EventDeliveries(ctx, ev.ID)
	must(t, err)
	want := []string{d1.ID, d2.ID, replayed.ID}
	if g := ids(got, dID); !sameSet(g, want) {
		t.Fatalf("EventDeliveries = %v, want %v", g, want)
	}
	for _, d := range got {
		if d.EventID != ev.ID {
			t.Fatalf("delivery %s of event %s listed for %s", d.ID, d.EventID, ev.ID)
		}
	}
	must(t, s.DiscardDelivery(ctx, d2.ID))
	got, err = s.EventDeliveries(ctx, ev.ID)
	must(t, err)
	if g := ids(got, dID); !sameSet(g, []string{d1.ID, replayed.ID}) {
		t.Fatalf("EventDeliveries after discarding %s = %v", d2.ID, g)
	}
	if due := refIDs(scanDue(t, s, t0.Add(time.Minute), 0)); !slices.Contains(due, replayed.ID) {
		t.Fatalf("the replayed delivery is not due: %v", due)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
