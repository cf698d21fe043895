package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// HeadOf returns the id of webhook wh's order head in s ("" when none),
// failing the test on an error or a head of another webhook.
func HeadOf(t *testing.T, s rswebhooks.Store, wh string) string {
	t.Helper()
	r, ok, err := s.OrderHead(context.Background(), wh)
	must(t, err)
	if !ok {
		return ""
	}
	if r.WebhookID != wh {
		t.Fatalf("head %s has webhook %q, want %q", r.ID, r.WebhookID, wh)
	}
	return r.ID
}

// The order head follows event order, not delivery ids or due times, and
// keeps to pending deliveries: finishing, discarding and redelivering move
// it; a ping takes its turn by its event id (the time it was asked for).
// HoldDelivery moves a delivery only later, ReleaseDelivery only one held
// with the same reason.
func testOrderHead(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	// Delivery ids sort against event order and due times are reversed.
	must(t, s.PutDelivery(ctx, delivery("D9", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour), t0)))
	must(t, s.PutDelivery(ctx, delivery("D5", "W1", "E2", rswebhooks.DeliveryPending, t0, t0)))
	must(t, s.PutDelivery(ctx, delivery("D1", "W1", "E3", rswebhooks.DeliveryPending, t0.Add(-time.Hour), t0)))
	must(t, s.PutDelivery(ctx, delivery("D0", "W2", "E0", rswebhooks.DeliveryPending, t0, t0)))
	ping := delivery("P0", "W1", "E4", rswebhooks.DeliveryPending, t0, t0)
	ping.Ping = true
	must(t, s.PutDelivery(ctx, ping))
	if h := HeadOf(t, s, "W1"); h != "D9" {
		t.Fatalf("head of W1 = %q, want D9 (event E1)", h)
	}
	if h := HeadOf(t, s, "W2"); h != "D0" {
		t.Fatalf("head of W2 = %q, want D0", h)
	}
	if h := HeadOf(t, s, "W3"); h != "" {
		t.Fatalf("head of a webhook without deliveries = %q, want none", h)
	}

	// A retry keeps the head; finishing it moves the head on.
	d, err := s.GetDelivery(ctx, "D9")
	must(t, err)
	d.NextUTC = t0.Add(2 * time.Hour)
	must(t, s.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0}))
	if h := HeadOf(t, s, "W1"); h != "D9" {
		t.Fatalf("head after a retry = %q, want D9", h)
	}
	d.State = rswebhooks.DeliveryFailed
	must(t, s.Complete(ctx, d, &rswebhooks.Attempt{N: 2, StartedUTC: t0}))
	if h := HeadOf(t, s, "W1"); h != "D5" {
		t.Fatalf("head after D9 failed = %q, want D5", h)
	}
	must(t, s.DiscardDelivery(ctx, "D5"))
	if h := HeadOf(t, s, "W1"); h != "D1" {
		t.Fatalf("head after D5 was discarded = %q, want D1", h)
	}
	// Redelivered, the older event goes first again.
	_, err = s.Redeliver(ctx, "D9", t0)
	must(t, err)
	if h := HeadOf(t, s, "W1"); h != "D9" {
		t.Fatalf("head after redelivering D9 = %q, want D9", h)
	}
	for _, id := range []string{"D9", "D1"} {
		d, err := s.GetDelivery(ctx, id)
		must(t, err)
		d.State = rswebhooks.DeliverySucceeded
		must(t, s.Complete(ctx, d, nil))
	}
	if h := HeadOf(t, s, "W1"); h != "P0" {
		t.Fatalf("head after the events = %q, want the ping P0", h)
	}
	_, err = s.Redeliver(ctx, "D1", t0.Add(-time.Hour))
	must(t, err)

	// Hold moves only later, release only what hold moved.
	moved, err := s.HoldDelivery(ctx, "D1", t0.Add(time.Minute), "held")
	must(t, err)
	if !moved {
		t.Fatal("HoldDelivery did not move a delivery due earlier")
	}
	if moved, _ := s.HoldDelivery(ctx, "D1", t0, "held"); moved {
		t.Fatal("HoldDelivery moved a delivery earlier")
	}
	got, err := s.GetDelivery(ctx, "D1")
	must(t, err)
	if !got.NextUTC.Equal(t0.Add(time.Minute)) || got.Reason != "held" {
		t.Fatalf("held delivery: next %s reason %q", got.NextUTC, got.Reason)
	}
	if g := refIDs(scanDue(t, s, t0, 0)); slices.Contains(g, "D1") {
		t.Fatalf("due while D1 is held = %v, want it not due", g)
	}
	if moved, _ := s.ReleaseDelivery(ctx, "D1", t0, "other"); moved {
		t.Fatal("ReleaseDelivery released a delivery held for another reason")
	}
	moved, err = s.ReleaseDelivery(ctx, "D1", t0, "held")
	must(t, err)
	got, err = s.GetDelivery(ctx, "D1")
	must(t, err)
	if !moved || !got.NextUTC.Equal(t0) || got.Reason != "" {
		t.Fatalf("released delivery: moved %v next %s reason %q", moved, got.NextUTC, got.Reason)
	}
	if due := refIDs(scanDue(t, s, t0, 0)); !slices.Contains(due, "D1") {
		t.Fatalf("released D1 not due at %s: %v", t0, due)
	}
}
