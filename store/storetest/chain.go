package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// chainer returns s as an rswebhooks.LeaseChainer, or skips t: the
// interface is optional (engines whose Lease and Complete are cheap local
// calls gain nothing from it).
func chainer(t *testing.T, s rswebhooks.Store) rswebhooks.LeaseChainer {
	t.Helper()
	c, ok := s.(rswebhooks.LeaseChainer)
	if !ok {
		t.Skipf("%s does not implement the optional rswebhooks.LeaseChainer", s.Backend())
	}
	return c
}

// CompleteAndLease records the attempt as Complete does and moves the
// holder's lease to the webhook's earliest due, free delivery: not one
// leased by another node, not one due later, not another webhook's.
func testCompleteAndLease(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	c := chainer(t, s)
	ctx := context.Background()
	other := lease
	other.Holder = "node-b"
	put := func(id, hook string, due time.Time) {
		t.Helper()
		must(t, s.PutDelivery(ctx, delivery(id, hook, "E1", rswebhooks.DeliveryPending, due, t0)))
	}
	put("D1", "W1", t0.Add(-3*time.Second))
	put("TAKEN", "W1", t0.Add(-2*time.Second))
	put("D3", "W1", t0.Add(-time.Second))
	put("D2", "W1", t0.Add(-time.Second))
	put("LATER", "W1", t0.Add(time.Hour))
	put("X1", "W2", t0.Add(-4*time.Second))
	d, err := s.Lease(ctx, "D1", t0, lease)
	must(t, err)
	if _, err := s.Lease(ctx, "TAKEN", t0, other); err != nil {
		t.Fatal(err)
	}

	step := func(d *rswebhooks.Delivery, n int, now time.Time) *rswebhooks.Delivery {
		t.Helper()
		d.State, d.Attempts, d.UpdatedUTC = rswebhooks.DeliverySucceeded, n, now
		next, err := c.CompleteAndLease(ctx, d, &rswebhooks.Attempt{N: n, StartedUTC: now}, now, lease)
		must(t, err)
		got, err := s.GetDelivery(ctx, d.ID)
		must(t, err)
		if got.State != rswebhooks.DeliverySucceeded {
			t.Fatalf("%s after CompleteAndLease: state %q, want succeeded", d.ID, got.State)
		}
		as, err := s.Attempts(ctx, d.ID)
		must(t, err)
		if len(as) != 1 || as[0].N != n {
			t.Fatalf("attempts of %s = %+v, want attempt %d", d.ID, as, n)
		}
		return next
	}
	// D2 and D3 are due at the same time: id order decides.
	next := step(d, 1, t0)
	if next == nil || next.ID != "D2" || next.State != rswebhooks.DeliveryPending {
		t.Fatalf("CompleteAndLease(D1) leased %+v, want D2 (TAKEN is node-b's, X1 another webhook's)", next)
	}
	if _, err := s.Lease(ctx, "D2", t0, other); !errors.Is(err, rswebhooks.ErrLeaseRefused) {
		t.Fatalf("another node's Lease of the moved lease's delivery = %v, want ErrLeaseRefused", err)
	}
	refs := scanDue(t, s, t0, 0)
	if g := refIDs(refs); !slices.Equal(g, []string{"X1", "D3"}) {
		t.Fatalf("ScanDue = %v, want X1 D3 (D2 and TAKEN leased, D1 done)", g)
	}
	if refs[1].Leased != 2 {
		t.Fatalf("W1's leases after the move = %d, want 2 (node-b's and the moved one)", refs[1].Leased)
	}
	next = step(next, 1, t0)
	if next == nil || next.ID != "D3" {
		t.Fatalf("CompleteAndLease(D2) leased %+v, want D3", next)
	}
	// Nothing of W1 is free and due: the attempt is recorded, no lease.
	if next = step(next, 1, t0); next != nil {
		t.Fatalf("CompleteAndLease(D3) leased %s, want none (LATER is not due, TAKEN is node-b's)", next.ID)
	}
	if g := refIDs(scanDue(t, s, t0, 0)); !slices.Equal(g, []string{"X1"}) {
		t.Fatalf("ScanDue = %v, want X1 (D3's lease ended with nothing to move to)", g)
	}
	// A lease moves with its own holder only.
	must(t, s.Release(ctx, "TAKEN", "node-b"))
	if _, err := s.Lease(ctx, "X1", t0, other); err != nil {
		t.Fatal(err)
	}
	x, err := s.GetDelivery(ctx, "X1")
	must(t, err)
	x.State, x.Attempts = rswebhooks.DeliverySucceeded, 1
	if next, err := c.CompleteAndLease(ctx, x, &rswebhooks.Attempt{N: 1, StartedUTC: t0}, t0, lease); err != nil || next != nil {
		t.Fatalf("CompleteAndLease of node-b's lease by node-a = %v, %v; want recorded, nothing leased", next, err)
	}
	// Unknown delivery: Complete's error, nothing leased.
	ghost := delivery("GHOST", "W1", "E1", rswebhooks.DeliverySucceeded, t0, t0)
	ghost.Attempts = 1
	if next, err := c.CompleteAndLease(ctx, ghost, &rswebhooks.Attempt{N: 1, StartedUTC: t0}, t0, lease); !errors.Is(err, rswebhooks.ErrNotFound) || next != nil {
		t.Fatalf("CompleteAndLease(unknown) = %v, %v; want ErrNotFound", next, err)
	}
	if g := refIDs(scanDue(t, s, t0, 0)); !slices.Equal(g, []string{"TAKEN"}) {
		t.Fatalf("ScanDue = %v, want TAKEN (free since node-b released it)", g)
	}
	if _, err := c.CompleteAndLease(ctx, ghost, nil, t0, rswebhooks.LeaseRequest{For: time.Minute}); err == nil {
		t.Fatal("CompleteAndLease without a holder succeeded, want a validation error")
	}
}

// A lease moves only while it lasts, and not past a lowered limit: an
// expired lease (the attempt outlived it, and another node may have
// leased the webhook's slot) ends with the attempt, as does one whose
// webhook holds more leases than the limit.
func testCompleteAndLeaseLimits(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	c := chainer(t, s)
	ctx := context.Background()
	for _, id := range []string{"A1", "A2", "A3", "A4"} {
		must(t, s.PutDelivery(ctx, delivery(id, "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	}
	req := rswebhooks.LeaseRequest{Holder: "node-a", For: time.Minute, PerWebhook: 2}
	a1, err := s.Lease(ctx, "A1", t0, req)
	must(t, err)
	// Expired by the time the attempt is recorded.
	late := t0.Add(req.For + time.Second)
	a1.State, a1.Attempts = rswebhooks.DeliverySucceeded, 1
	if next, err := c.CompleteAndLease(ctx, a1, &rswebhooks.Attempt{N: 1, StartedUTC: t0}, late, req); err != nil || next != nil {
		t.Fatalf("CompleteAndLease with an expired lease = %v, %v; want recorded, nothing leased", next, err)
	}
	// Two leases of W1 (node-a's A2, node-b's A3) against a limit lowered
	// to 1: A2's lease ends, it does not move.
	a2, err := s.Lease(ctx, "A2", late, req)
	must(t, err)
	b := req
	b.Holder = "node-b"
	if _, err := s.Lease(ctx, "A3", late, b); err != nil {
		t.Fatal(err)
	}
	lowered := req
	lowered.PerWebhook = 1
	a2.State, a2.Attempts = rswebhooks.DeliverySucceeded, 1
	if next, err := c.CompleteAndLease(ctx, a2, &rswebhooks.Attempt{N: 1, StartedUTC: late}, late, lowered); err != nil || next != nil {
		t.Fatalf("CompleteAndLease over a lowered limit = %v, %v; want recorded, nothing leased", next, err)
	}
	// Within the limit: the lease moves to A4.
	must(t, s.Release(ctx, "A3", "node-b"))
	a3, err := s.Lease(ctx, "A3", late, req)
	must(t, err)
	a3.State, a3.Attempts = rswebhooks.DeliverySucceeded, 1
	next, err := c.CompleteAndLease(ctx, a3, &rswebhooks.Attempt{N: 1, StartedUTC: late}, late, req)
	if err != nil || next == nil || next.ID != "A4" {
		t.Fatalf("CompleteAndLease within the limit = %v, %v; want A4", next, err)
	}
}

// Slots of two nodes completing at once: each free delivery is leased by
// one of them only, and the slots go on until nothing is free.
func testCompleteAndLeaseConcurrent(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	c := chainer(t, s)
	ctx := context.Background()
	const slots, total = 6, 60
	for i := range total {
		must(t, s.PutDelivery(ctx, delivery(fmt.Sprintf("D%02d", i), "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	}
	req := func(i int) rswebhooks.LeaseRequest {
		return rswebhooks.LeaseRequest{Holder: fmt.Sprintf("node-%d", i%2), For: time.Minute, PerWebhook: slots}
	}
	var mu sync.Mutex
	sent := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, slots)
	first := make([]*rswebhooks.Delivery, slots)
	for i := range slots {
		d, err := s.Lease(ctx, fmt.Sprintf("D%02d", i), t0, req(i))
		must(t, err)
		first[i] = d
	}
	for i, d := range first {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; d != nil; n++ {
				mu.Lock()
				sent[d.ID]++
				mu.Unlock()
				d.State, d.Attempts = rswebhooks.DeliverySucceeded, 1
				next, err := c.CompleteAndLease(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0}, t0, req(i))
				if err != nil {
					errs <- err
					return
				}
				d = next
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, n := range sent {
		if n != 1 {
			t.Errorf("%s leased %d times", id, n)
		}
	}
	// Each slot goes on until nothing is free; a delivery another slot
	// was leasing at that moment may be passed over and stays due.
	rest := refIDs(scanDue(t, s, t0, 0))
	if len(sent)+len(rest) != total {
		t.Fatalf("%d sent + %d still due, want %d", len(sent), len(rest), total)
	}
	if len(sent) < total-slots {
		t.Fatalf("%d of %d sent by %d slots going on, want all but at most one per slot", len(sent), total, slots)
	}
}
