package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// ScanDueByWebhook lists each webhook's earliest due, unleased deliveries,
// at most the bound minus the webhook's leases, all in due order; a
// webhook at the bound lists none, and max caps the whole read.
func testScanDueByWebhook(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	b, ok := s.(rswebhooks.DueByWebhookScanner)
	if !ok {
		t.Skipf("%s does not implement the optional rswebhooks.DueByWebhookScanner", s.Backend())
	}
	ctx := context.Background()
	put := func(id, hook, state string, due time.Time) {
		t.Helper()
		must(t, s.PutDelivery(ctx, delivery(id, hook, "E1", state, due, t0)))
	}
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	// W1: a long backlog, one of it leased by another node.
	put("A1", "W1", rswebhooks.DeliveryPending, sec(-10))
	put("A2", "W1", rswebhooks.DeliveryPending, sec(-9))
	put("A3", "W1", rswebhooks.DeliveryPending, sec(-8))
	put("A4", "W1", rswebhooks.DeliveryPending, sec(-6))
	put("A5", "W1", rswebhooks.DeliveryPending, sec(-1))
	put("ALATER", "W1", rswebhooks.DeliveryPending, sec(60))
	other := lease
	other.Holder = "node-b"
	if _, err := s.Lease(ctx, "A1", t0, other); err != nil {
		t.Fatal(err)
	}
	// W2: two due, one finished. W3 (its webhook deleted or never stored:
	// its deliveries still go): one due.
	put("B1", "W2", rswebhooks.DeliveryPending, sec(-7))
	put("B2", "W2", rswebhooks.DeliveryPending, sec(-2))
	put("BDONE", "W2", rswebhooks.DeliverySucceeded, sec(-20))
	put("C1", "W3", rswebhooks.DeliveryPending, sec(-5))

	read := func(per, max int) []rswebhooks.DueRef {
		t.Helper()
		var out []rswebhooks.DueRef
		must(t, b.ScanDueByWebhook(ctx, t0, per, max, func(r rswebhooks.DueRef) bool {
			out = append(out, r)
			return true
		}))
		return out
	}
	refs := read(3, 0)
	if g := refIDs(refs); !slices.Equal(g, []string{"A2", "A3", "B1", "C1", "B2"}) {
		t.Fatalf("ScanDueByWebhook(per 3) = %v, want A2 A3 B1 C1 B2 (W1: 3 less its lease; due order)", g)
	}
	for _, r := range refs {
		want := 0
		if r.WebhookID == "W1" {
			want = 1
		}
		if r.Leased != want {
			t.Fatalf("%s: Leased = %d, want %d", r.ID, r.Leased, want)
		}
	}
	if g := refIDs(read(3, 2)); !slices.Equal(g, []string{"A2", "A3"}) {
		t.Fatalf("ScanDueByWebhook(per 3, max 2) = %v, want A2 A3", g)
	}
	if g := refIDs(read(1, 0)); !slices.Equal(g, []string{"B1", "C1"}) {
		t.Fatalf("ScanDueByWebhook(per 1) = %v, want B1 C1 (W1 holds its one lease)", g)
	}
	if g := refIDs(read(0, 0)); len(g) != 0 {
		t.Fatalf("ScanDueByWebhook(per 0) = %v, want nothing", g)
	}
	// The lease ends: A1 is listed again, first.
	must(t, s.Release(ctx, "A1", other.Holder))
	if g := refIDs(read(2, 0)); !slices.Equal(g, []string{"A1", "A2", "B1", "C1", "B2"}) {
		t.Fatalf("ScanDueByWebhook(per 2) after the release = %v, want A1 A2 B1 C1 B2", g)
	}
	// What fn refuses stops the read.
	n := 0
	must(t, b.ScanDueByWebhook(ctx, t0, 2, 0, func(rswebhooks.DueRef) bool { n++; return false }))
	if n != 1 {
		t.Fatalf("fn called %d times after returning false, want 1", n)
	}
}

// NodeUnfannedEvents gives a node the events appended through it that
// wait for fan-out, oldest first, up to the limit; fanned ones are gone.
func testNodeUnfanned(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	n, ok := s.(rswebhooks.NodeUnfanned)
	if !ok {
		t.Skipf("%s does not implement the optional rswebhooks.NodeUnfanned", s.Backend())
	}
	ctx := context.Background()
	for _, id := range []string{"E3", "E1", "E2"} {
		must(t, s.AppendEvent(ctx, event(id, t0)))
	}
	must(t, s.FanOut(ctx, "E2", nil))
	got := func(limit int) []string {
		t.Helper()
		es, err := n.NodeUnfannedEvents(ctx, limit)
		must(t, err)
		return ids(es, func(e *rswebhooks.Event) string { return e.ID })
	}
	if g := got(0); !slices.Equal(g, []string{"E1", "E3"}) {
		t.Fatalf("NodeUnfannedEvents = %v, want E1 E3 (E2 fanned out)", g)
	}
	if g := got(1); !slices.Equal(g, []string{"E1"}) {
		t.Fatalf("NodeUnfannedEvents(1) = %v, want E1", g)
	}
}
