// Package storetest is the conformance suite of the storage contract
// (rswebhooks.Store): every behaviour the product relies on, run unchanged
// against each engine (Badger in package store, PostgreSQL in pgstore). A
// new engine is one package whose test calls Run.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// Config is what a test asks of the store it opens.
type Config struct {
	// Retention of events, attempts, finished deliveries and seen
	// executions; zero means the engine's default.
	Retention time.Duration
	// Now is the store's clock; nil means time.Now.
	Now func() time.Time
}

// Opener opens an empty store for t and closes it when t ends.
type Opener func(t *testing.T, c Config) rswebhooks.Store

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Webhooks", testWebhooks},
		{"WebhookPropertiesExact", testWebhookProperties},
		{"OwnerMissing", testOwnerMissing},
		{"SecretRotation", testSecretRotation},
		{"EventsAndFanOut", testEventsAndFanOut},
		{"FanOutConcurrentOnce", testFanOutConcurrentOnce},
		{"FanOutRepeatedKeepsIDs", testFanOutRepeated},
		{"FanOutEventsBatch", testFanOutEvents},
		{"FanOutEventsHere", testFanOutEventsHere},
		{"ListEventsCursor", testListEventsCursor},
		{"UnfannedOrderWithOlderIDs", testUnfannedOlderIDs},
		{"DueOrderAndQueue", testDueOrder},
		{"ZeroDueIsDueAtOnce", testDueZero},
		{"ScanDueAfterResumes", testScanDueAfter},
		{"ScanDueByWebhook", testScanDueByWebhook},
		{"NodeUnfannedEvents", testNodeUnfanned},
		{"CompleteMovesDue", testComplete},
		{"DiscardDelivery", testDiscard},
		{"Redeliver", testRedeliver},
		{"OrderHeadHoldRelease", testOrderHead},
		{"ScanEvents", testScanEvents},
		{"EventDeliveriesAndReplay", testEventDeliveries},
		{"Leases", testLeases},
		{"LeaseExpires", testLeaseExpires},
		{"LeasePerWebhook", testLeasePerWebhook},
		{"LeaseConcurrentOnce", testLeaseConcurrent},
		{"CompleteAndLease", testCompleteAndLease},
		{"CompleteAndLeaseLimits", testCompleteAndLeaseLimits},
		{"CompleteAndLeaseConcurrent", testCompleteAndLeaseConcurrent},
		{"DueSignal", testDueSignal},
		{"WebhooksVersion", testWebhooksVersion},
		{"SeenExecutionsAndMeta", testSeenAndMeta},
		{"MetaUntil", testMetaUntil},
		{"MetaIfAbsent", testMetaIfAbsent},
		{"MetaIfAbsentRace", testMetaIfAbsentRace},
		{"MetaListSwapDelete", testMetaListSwap},
		{"MetaSwapConcurrentOnce", testMetaSwapConcurrent},
		{"Retention", testRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// base is a time near now, whole milliseconds (every engine keeps them).
func base() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func openClocked(t *testing.T, open Opener) (rswebhooks.Store, *testutil.Clock, time.Time) {
	t0 := base()
	c := testutil.NewClock(t0)
	return open(t, Config{Now: c.Now}), c, t0
}

func webhook(id, owner string, created time.Time) *rswebhooks.Webhook {
	return &rswebhooks.Webhook{
		ID: id, URI: "http://127.0.0.1/hook", Secret: "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
		Filters: []string{"*"}, User: rswebhooks.User{ID: owner, Name: owner},
		CreatedUTC: created, UpdatedUTC: created,
	}
}

func event(id string, at time.Time) *rswebhooks.Event {
	return &rswebhooks.Event{ID: id, Filter: "reports", Type: "Created", ResourceID: "r-" + id, Time: at}
}

func delivery(id, wh, ev, state string, next, at time.Time) *rswebhooks.Delivery {
	return &rswebhooks.Delivery{ID: id, WebhookID: wh, EventID: ev, Event: *event(ev, at), State: state, NextUTC: next, CreatedUTC: at}
}

func ids[T any](xs []*T, id func(*T) string) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func whID(w *rswebhooks.Webhook) string { return w.ID }
func dID(d *rswebhooks.Delivery) string { return d.ID }
func evID(e *rswebhooks.Event) string   { return e.ID }
func attN(a *rswebhooks.Attempt) string { return fmt.Sprint(a.N) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func scanDue(t *testing.T, s rswebhooks.Store, now time.Time, max int) []rswebhooks.DueRef {
	t.Helper()
	var out []rswebhooks.DueRef
	must(t, s.ScanDue(context.Background(), now, max, func(r rswebhooks.DueRef) bool {
		out = append(out, r)
		return true
	}))
	return out
}

func refIDs(rs []rswebhooks.DueRef) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testWebhooks(t *testing.T, open Opener) {
	s, c, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.CreateWebhook(ctx, webhook("W2", "alice", t0.Add(2*time.Second))))
	must(t, s.CreateWebhook(ctx, webhook("W1", "alice", t0.Add(time.Second))))
	must(t, s.CreateWebhook(ctx, webhook("W3", "bob", t0.Add(3*time.Second))))
	if err := s.CreateWebhook(ctx, webhook("W1", "bob", t0)); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("duplicate create: %v, want ErrConflict", err)
	}
	// Ids are refused empty, with '/' or control characters (Badger's key
	// layout; every engine keeps to it, so data moves between them).
	for _, bad := range []*rswebhooks.Webhook{nil, webhook("", "alice", t0), webhook("a/b", "alice", t0),
		webhook("a\x01b", "alice", t0), webhook("W9", "", t0), webhook("W9", "a/b", t0)} {
		if err := s.CreateWebhook(ctx, bad); err == nil {
			t.Fatalf("CreateWebhook(%+v) = nil, want error", bad)
		}
	}
	for _, l := range []struct {
		owner string
		want  []string
	}{
		{"alice", []string{"W1", "W2"}},
		{"bob", []string{"W3"}},
		{"carol", []string{}},
		{"", []string{"W1", "W2", "W3"}},
	} {
		got, err := s.ListWebhooks(ctx, l.owner)
		must(t, err)
		if g := ids(got, whID); !slices.Equal(g, l.want) {
			t.Errorf("ListWebhooks(%q) = %v, want %v (oldest first)", l.owner, g, l.want)
		}
	}
	got, err := s.GetWebhook(ctx, "W1")
	must(t, err)
	if got.User.ID != "alice" || got.Secret == "" || !got.CreatedUTC.Equal(t0.Add(time.Second)) {
		t.Fatalf("GetWebhook = %+v", got)
	}
	if _, err := s.GetWebhook(ctx, "nope"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetWebhook(nope) = %v, want ErrNotFound", err)
	}

	// Update moves the owner and keeps CreatedUTC when zero.
	upd := webhook("W1", "bob", time.Time{})
	upd.Description = "moved"
	must(t, s.UpdateWebhook(ctx, upd))
	got, _ = s.GetWebhook(ctx, "W1")
	if got.Description != "moved" || !got.CreatedUTC.Equal(t0.Add(time.Second)) {
		t.Fatalf("after update: %+v", got)
	}
	alice, _ := s.ListWebhooks(ctx, "alice")
	bob, _ := s.ListWebhooks(ctx, "bob")
	if !slices.Equal(ids(alice, whID), []string{"W2"}) || !slices.Equal(ids(bob, whID), []string{"W1", "W3"}) {
		t.Fatalf("owners after move: alice %v bob %v", ids(alice, whID), ids(bob, whID))
	}
	if err := s.UpdateWebhook(ctx, webhook("nope", "bob", t0)); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("UpdateWebhook(nope) = %v", err)
	}

	c.Set(t0.Add(time.Hour))
	must(t, s.SetPaused(ctx, "W2", true))
	got, _ = s.GetWebhook(ctx, "W2")
	if !got.IsPaused || !got.UpdatedUTC.Equal(t0.Add(time.Hour)) {
		t.Fatalf("SetPaused: %+v", got)
	}
	if err := s.SetPaused(ctx, "nope", true); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("SetPaused(nope) = %v", err)
	}
	counts, err := s.CountWebhooks(ctx)
	must(t, err)
	if counts != (rswebhooks.WebhookCounts{Active: 2, Paused: 1}) {
		t.Fatalf("CountWebhooks = %+v; want 2 active, 1 paused", counts)
	}

	must(t, s.DeleteWebhook(ctx, "W2"))
	if err := s.DeleteWebhook(ctx, "W2"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	if alice, _ := s.ListWebhooks(ctx, "alice"); len(alice) != 0 {
		t.Fatalf("alice's webhooks after the delete: %v", ids(alice, whID))
	}
	n, err := s.DeleteWebhooksOf(ctx, "bob")
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteWebhooksOf(bob) = %d, want 2", n)
	}
	if _, err := s.DeleteWebhooksOf(ctx, ""); err == nil {
		t.Fatal(`DeleteWebhooksOf("") = nil, want error`)
	}
	if all, _ := s.ListWebhooks(ctx, ""); len(all) != 0 {
		t.Fatalf("left after deletes: %v", ids(all, whID))
	}
}

// Properties are delivered as the client sent them: raw JSON reads back
// byte for byte (key order, number spelling, characters HTML would escape).
func testWebhookProperties(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	w := webhook("W1", "alice", t0)
	w.Properties = map[string]json.RawMessage{
		"z": json.RawMessage(`{"b":1,"a":[1.50,2e3]}`),
		"h": json.RawMessage(`"<tag> & 'q'"`),
	}
	w.Headers = map[string]string{"X-Token": "t"}
	must(t, s.CreateWebhook(ctx, w))
	got, err := s.GetWebhook(ctx, "W1")
	must(t, err)
	for k, v := range w.Properties {
		if string(got.Properties[k]) != string(v) {
			t.Errorf("Properties[%s] = %s, want %s", k, got.Properties[k], v)
		}
	}
	if got.Headers["X-Token"] != "t" {
		t.Errorf("Headers = %v", got.Headers)
	}
}

// OwnerMissing is set and cleared per owner and reported once per change;
// a paused webhook counts as paused whatever its owner; an update keeps
// the flag while the owner stays (whatever the input says) and a new
// owner clears it.
func testOwnerMissing(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.CreateWebhook(ctx, webhook("W1", "alice", t0)))
	must(t, s.CreateWebhook(ctx, webhook("W2", "alice", t0.Add(time.Second))))
	must(t, s.CreateWebhook(ctx, webhook("W4", "alice", t0.Add(2*time.Second))))
	must(t, s.CreateWebhook(ctx, webhook("W3", "bob", t0)))
	must(t, s.SetPaused(ctx, "W4", true))
	changed, err := s.SetOwnerMissing(ctx, "alice", true)
	must(t, err)
	slices.Sort(changed)
	if !slices.Equal(changed, []string{"W1", "W2", "W4"}) {
		t.Fatalf("SetOwnerMissing changed %v, want W1 W2 W4", changed)
	}
	if again, _ := s.SetOwnerMissing(ctx, "alice", true); len(again) != 0 {
		t.Fatalf("second SetOwnerMissing changed %v, want none", again)
	}
	counts, _ := s.CountWebhooks(ctx)
	if counts != (rswebhooks.WebhookCounts{Active: 1, Paused: 1, OwnerMissing: 2}) {
		t.Fatalf("CountWebhooks = %+v, want 1 active, 1 paused (W4), 2 owner missing", counts)
	}
	// Kept by an update with the same owner, cleared by a new owner.
	w1 := webhook("W1", "alice", t0)
	w1.Description = "same owner"
	w1.OwnerMissing = false
	must(t, s.UpdateWebhook(ctx, w1))
	if got, _ := s.GetWebhook(ctx, "W1"); !got.OwnerMissing {
		t.Fatal("update by the same owner cleared OwnerMissing")
	}
	must(t, s.UpdateWebhook(ctx, webhook("W2", "bob", t0)))
	if got, _ := s.GetWebhook(ctx, "W2"); got.OwnerMissing {
		t.Fatal("a new owner kept OwnerMissing")
	}
	back, err := s.SetOwnerMissing(ctx, "alice", false)
	must(t, err)
	slices.Sort(back)
	if !slices.Equal(back, []string{"W1", "W4"}) {
		t.Fatalf("clearing changed %v, want W1 W4 (not the reassigned W2)", back)
	}
}

func testEventsAndFanOut(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	for _, id := range []string{"E1", "E2", "E3"} {
		must(t, s.AppendEvent(ctx, event(id, t0)))
	}
	if err := s.AppendEvent(ctx, event("E1", t0)); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("duplicate append = %v, want ErrConflict", err)
	}
	if err := s.AppendEvent(ctx, event("", t0)); err == nil {
		t.Fatal("empty id accepted")
	}
	e, err := s.GetEvent(ctx, "E2")
	must(t, err)
	if e.ResourceID != "r-E2" || !e.Time.Equal(t0) {
		t.Fatalf("GetEvent = %+v", e)
	}
	if _, err := s.GetEvent(ctx, "nope"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetEvent(nope) = %v", err)
	}
	un, err := s.UnfannedEvents(ctx, 2)
	must(t, err)
	if g := ids(un, evID); !slices.Equal(g, []string{"E1", "E2"}) {
		t.Fatalf("UnfannedEvents(2) = %v", g)
	}
	n, oldest, err := s.UnfannedStats(ctx)
	must(t, err)
	if n != 3 || !oldest.Equal(t0) {
		t.Fatalf("UnfannedStats = %d %v, want 3 %v", n, oldest, t0)
	}

	ds := []*rswebhooks.Delivery{
		delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0),
		delivery("D2", "W2", "E1", rswebhooks.DeliverySkipped, time.Time{}, t0),
	}
	must(t, s.FanOut(ctx, "E1", ds))
	// Idempotent: the second call writes nothing, even with other deliveries.
	must(t, s.FanOut(ctx, "E1", []*rswebhooks.Delivery{delivery("D9", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)}))
	if _, err := s.GetDelivery(ctx, "D9"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("second FanOut wrote D9: %v", err)
	}
	// Unknown event: nothing written.
	must(t, s.FanOut(ctx, "nope", []*rswebhooks.Delivery{delivery("D8", "W1", "nope", rswebhooks.DeliveryPending, t0, t0)}))
	if _, err := s.GetDelivery(ctx, "D8"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("FanOut of an unknown event wrote D8: %v", err)
	}
	un, _ = s.UnfannedEvents(ctx, 0)
	if g := ids(un, evID); !slices.Equal(g, []string{"E2", "E3"}) {
		t.Fatalf("UnfannedEvents after fan-out = %v", g)
	}
	depth, oldestDue, err := s.QueueStats(ctx)
	must(t, err)
	if depth != 1 || !oldestDue.Equal(t0) {
		t.Fatalf("QueueStats = %d %v; want 1 %v (skipped deliveries are not queued)", depth, oldestDue, t0)
	}

	// Atomic: a fan-out that fails (delivery id of another event) changes nothing.
	err = s.FanOut(ctx, "E2", []*rswebhooks.Delivery{
		delivery("D3", "W1", "E2", rswebhooks.DeliveryPending, t0, t0),
		delivery("D1", "W1", "E2", rswebhooks.DeliveryPending, t0, t0),
	})
	if !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("FanOut with an existing delivery id = %v, want ErrConflict", err)
	}
	if _, err := s.GetDelivery(ctx, "D3"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("failed FanOut left D3: %v", err)
	}
	un, _ = s.UnfannedEvents(ctx, 0)
	if g := ids(un, evID); !slices.Equal(g, []string{"E2", "E3"}) {
		t.Fatalf("failed FanOut marked the event: %v", g)
	}
	if err := s.FanOut(ctx, "E2", []*rswebhooks.Delivery{delivery("D4", "W1", "E2", "bogus", t0, t0)}); err == nil {
		t.Fatal("bad state accepted")
	}
	must(t, s.FanOut(ctx, "E3", nil))
	un, _ = s.UnfannedEvents(ctx, 0)
	if g := ids(un, evID); !slices.Equal(g, []string{"E2"}) {
		t.Fatalf("after empty fan-out = %v", g)
	}
}

// An engine with the optional rswebhooks.FanOutBatcher fans out each event
// of a batch as FanOut would, alone: already fanned out or unknown events
// write nothing, a conflicting delivery id fails only its event, and an
// event twice in the batch is fanned out once.
func testFanOutEvents(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	b, ok := s.(rswebhooks.FanOutBatcher)
	if !ok {
		t.Skipf("%s does not implement the optional rswebhooks.FanOutBatcher", s.Backend())
	}
	checkFanOutEvents(t, s, t0, b.FanOutEvents, true)
}

// The optional rswebhooks.NodeWaker's FanOutEventsHere has FanOutEvents'
// guarantees and wakes no dispatcher (that it wakes no other node either
// is the backend's test); WakeNodes wakes them, this node's included.
func testFanOutEventsHere(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	w, ok := s.(rswebhooks.NodeWaker)
	if !ok {
		t.Skipf("%s does not implement the optional rswebhooks.NodeWaker", s.Backend())
	}
	checkFanOutEvents(t, s, t0, w.FanOutEventsHere, false)
	w.WakeNodes() // never blocks, also called in a row
	w.WakeNodes()
}

// checkFanOutEvents runs the batch fan-out cases through fanOut; signals:
// whether it wakes the store's dispatchers (DueSignal).
func checkFanOutEvents(t *testing.T, s rswebhooks.Store, t0 time.Time, fanOut func(context.Context, []rswebhooks.EventFanOut) []error,
	signals bool) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"E1", "E2", "E3", "E4"} {
		must(t, s.AppendEvent(ctx, event(id, t0)))
	}
	must(t, s.FanOut(ctx, "E1", []*rswebhooks.Delivery{delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)}))
	drain := func() { drainDue(s) }
	drain()
	p := func(id, ev string) *rswebhooks.Delivery {
		return delivery(id, "W1", ev, rswebhooks.DeliveryPending, t0, t0)
	}
	errs := fanOut(ctx, []rswebhooks.EventFanOut{
		{EventID: "E1", Deliveries: []*rswebhooks.Delivery{p("D9", "E1")}}, // fanned out already
		{EventID: "E2", Deliveries: []*rswebhooks.Delivery{p("D2", "E2"), p("D2b", "E2")}},
		{EventID: "E3", Deliveries: []*rswebhooks.Delivery{p("D3", "E3"), p("D1", "E3")}}, // D1 is E1's
		{EventID: "nope", Deliveries: []*rswebhooks.Delivery{p("D8", "nope")}},
		{EventID: "E4", Deliveries: []*rswebhooks.Delivery{p("D4", "E4")}},
		{EventID: "E4", Deliveries: []*rswebhooks.Delivery{p("D5", "E4")}}, // again: nothing
		{EventID: "E2", Deliveries: []*rswebhooks.Delivery{delivery("D6", "W1", "E2", "bogus", t0, t0)}},
	})
	if len(errs) != 7 {
		t.Fatalf("FanOutEvents errors = %v, want one per event", errs)
	}
	for i, err := range errs {
		switch i {
		case 2:
			if !errors.Is(err, rswebhooks.ErrConflict) {
				t.Fatalf("E3 with E1's delivery id: %v, want ErrConflict", err)
			}
		case 6:
			if err == nil {
				t.Fatal("bad state accepted")
			}
		default:
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
	}
	for _, id := range []string{"D2", "D2b", "D4"} {
		if _, err := s.GetDelivery(ctx, id); err != nil {
			t.Fatalf("GetDelivery(%s) = %v", id, err)
		}
	}
	for _, id := range []string{"D9", "D3", "D8", "D5", "D6"} {
		if _, err := s.GetDelivery(ctx, id); !errors.Is(err, rswebhooks.ErrNotFound) {
			t.Fatalf("GetDelivery(%s) = %v, want ErrNotFound", id, err)
		}
	}
	un, err := s.UnfannedEvents(ctx, 0)
	must(t, err)
	if g := ids(un, evID); !slices.Equal(g, []string{"E3"}) {
		t.Fatalf("UnfannedEvents = %v, want the conflicting E3 only", g)
	}
	if signals {
		select {
		case <-s.DueSignal():
		case <-time.After(5 * time.Second):
			t.Fatal("no DueSignal after a batch fan-out made deliveries due")
		}
	} else {
		select {
		case <-s.DueSignal():
			t.Fatal("DueSignal after a fan-out that is to wake no dispatcher")
		default:
		}
	}
	if errs := fanOut(ctx, []rswebhooks.EventFanOut{{EventID: "E3", Deliveries: []*rswebhooks.Delivery{p("D3", "E3")}}}); errs != nil {
		t.Fatalf("FanOutEvents(E3) = %v", errs)
	}
	if d, err := s.GetDelivery(ctx, "D3"); err != nil || d.EventID != "E3" {
		t.Fatalf("GetDelivery(D3) = %+v, %v", d, err)
	}
}

// Several dispatchers (nodes) fanning out the same event store its
// deliveries once.
func testFanOutConcurrentOnce(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.AppendEvent(ctx, event("E1", t0)))
	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- s.FanOut(ctx, "E1", []*rswebhooks.Delivery{
				delivery(fmt.Sprintf("D%d", w), "W1", "E1", rswebhooks.DeliveryPending, t0, t0),
			})
		}()
	}
	for range workers {
		must(t, <-errs)
	}
	got, err := s.ListDeliveries(ctx, "W1", 0)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("concurrent FanOut stored %d deliveries (%v), want exactly 1", len(got), ids(got, dID))
	}
	if depth, _, _ := s.QueueStats(ctx); depth != 1 {
		t.Fatalf("queue depth = %d, want 1", depth)
	}
}

// Deterministic delivery ids: the same event to the same webhooks gives the
// same ids, and a delivery sent meanwhile is not reset by a repeat.
func testFanOutRepeated(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	ev := event(rswebhooks.IDFrom(t0, [10]byte{1}), t0)
	must(t, s.AppendEvent(ctx, ev))
	mk := func() []*rswebhooks.Delivery {
		var ds []*rswebhooks.Delivery
		for _, wh := range []string{"WA", "WB", "WC"} {
			d := delivery(rswebhooks.DeliveryID(ev, wh), wh, ev.ID, rswebhooks.DeliveryPending, t0, t0)
			d.Event = *ev
			ds = append(ds, d)
		}
		return ds
	}
	first := mk()
	must(t, s.FanOut(ctx, ev.ID, first))
	sent := *first[0]
	sent.State, sent.Attempts = rswebhooks.DeliverySucceeded, 1
	must(t, s.Complete(ctx, &sent, &rswebhooks.Attempt{N: 1, StartedUTC: t0, StatusCode: 200}))
	must(t, s.FanOut(ctx, ev.ID, mk()))
	got, err := s.GetDelivery(ctx, first[0].ID)
	must(t, err)
	if got.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("repeated fan-out reset a sent delivery: %+v", got)
	}
	if depth, _, _ := s.QueueStats(ctx); depth != 2 {
		t.Fatalf("queue depth = %d, want 2", depth)
	}
}

func testListEventsCursor(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	var want []string
	for i := range 25 {
		id := rswebhooks.IDFrom(t0.Add(time.Duration(i)*time.Millisecond), [10]byte{byte(i)})
		want = append(want, id)
	}
	// Appended out of order: listed in id (creation) order.
	for _, i := range []int{3, 0, 24, 1, 2} {
		must(t, s.AppendEvent(ctx, event(want[i], t0)))
	}
	for i := 4; i < 24; i++ {
		must(t, s.AppendEvent(ctx, event(want[i], t0)))
	}
	var got []string
	after := ""
	for {
		page, err := s.ListEvents(ctx, after, 10)
		must(t, err)
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page, evID)...)
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged ListEvents = %v\nwant %v", got, want)
	}
	all, err := s.ListEvents(ctx, "", 0)
	must(t, err)
	if len(all) != 25 {
		t.Fatalf("ListEvents all = %d, want 25", len(all))
	}
}

// The watcher's event ids carry the execution's time, older than events
// already stored: they still come out of UnfannedEvents, oldest first.
func testUnfannedOlderIDs(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	newer := rswebhooks.IDFrom(t0, [10]byte{9})
	must(t, s.AppendEvent(ctx, event(newer, t0)))
	if un, _ := s.UnfannedEvents(ctx, 0); len(un) != 1 {
		t.Fatalf("UnfannedEvents = %v", ids(un, evID))
	}
	must(t, s.FanOut(ctx, newer, nil))
	older := rswebhooks.IDFrom(t0.Add(-time.Hour), [10]byte{1})
	must(t, s.AppendEvent(ctx, event(older, t0.Add(-time.Hour))))
	un, err := s.UnfannedEvents(ctx, 0)
	must(t, err)
	if g := ids(un, evID); !slices.Equal(g, []string{older}) {
		t.Fatalf("UnfannedEvents = %v, want the older id %s", g, older)
	}
}

func testDueOrder(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	if _, ok, err := s.NextDue(ctx); ok || err != nil {
		t.Fatalf("NextDue on empty = %v, %v", ok, err)
	}
	puts := []*rswebhooks.Delivery{
		delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(3*time.Second), t0),
		delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(1*time.Second), t0),
		delivery("D3", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second), t0),
		delivery("D4", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour), t0),
		delivery("D5", "W2", "E1", rswebhooks.DeliverySucceeded, t0, t0),
		delivery("D6", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(-time.Hour), t0),
	}
	for _, d := range puts {
		must(t, s.PutDelivery(ctx, d))
	}
	if err := s.PutDelivery(ctx, puts[0]); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("duplicate PutDelivery = %v", err)
	}
	for _, tc := range []struct {
		now  time.Time
		max  int
		want []string
	}{
		{t0.Add(-time.Minute), 0, []string{"D6"}},
		{t0.Add(2 * time.Second), 0, []string{"D6", "D2", "D3"}},
		{t0.Add(3 * time.Second), 2, []string{"D6", "D2"}},
		{t0.Add(3 * time.Second), 0, []string{"D6", "D2", "D3", "D1"}},
		{t0.Add(24 * time.Hour), 0, []string{"D6", "D2", "D3", "D1", "D4"}},
	} {
		got := scanDue(t, s, tc.now, tc.max)
		if g := refIDs(got); !slices.Equal(g, tc.want) {
			t.Errorf("ScanDue(%v, %d) = %v, want %v", tc.now.Sub(t0), tc.max, g, tc.want)
		}
	}
	refs := scanDue(t, s, t0.Add(2*time.Second), 0)
	if refs[1].WebhookID != "W1" || !refs[1].Due.Equal(t0.Add(time.Second)) || refs[2].WebhookID != "W2" {
		t.Fatalf("ScanDue refs = %+v", refs)
	}
	var rest []rswebhooks.DueRef
	must(t, s.ScanDueAfter(ctx, t0.Add(24*time.Hour), refs[1], 2, func(r rswebhooks.DueRef) bool {
		rest = append(rest, r)
		return true
	}))
	if g := refIDs(rest); !slices.Equal(g, []string{"D3", "D1"}) {
		t.Errorf("ScanDueAfter(D2, max 2) = %v, want D3 D1", g)
	}
	next, ok, err := s.NextDue(ctx)
	must(t, err)
	if !ok || !next.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("NextDue = %v %v, want %v (D6)", next, ok, t0.Add(-time.Hour))
	}
	depth, oldest, _ := s.QueueStats(ctx)
	if depth != 5 || !oldest.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("QueueStats = %d %v, want 5 %v", depth, oldest, t0.Add(-time.Hour))
	}
	w1, err := s.ListDeliveries(ctx, "W1", 0)
	must(t, err)
	if g := ids(w1, dID); !slices.Equal(g, []string{"D6", "D2", "D1"}) {
		t.Fatalf("ListDeliveries(W1) = %v, want newest first", g)
	}
	w2, _ := s.ListDeliveries(ctx, "W2", 2)
	if g := ids(w2, dID); !slices.Equal(g, []string{"D5", "D4"}) {
		t.Fatalf("ListDeliveries(W2, 2) = %v", g)
	}
	if none, _ := s.ListDeliveries(ctx, "W", 0); len(none) != 0 {
		t.Fatalf("ListDeliveries(W) = %v", ids(none, dID))
	}
}

// A pending delivery without a due time is due at once, before any other.
func testDueZero(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(-time.Hour), t0)))
	must(t, s.PutDelivery(ctx, delivery("D0", "W1", "E1", rswebhooks.DeliveryPending, time.Time{}, t0)))
	if g := refIDs(scanDue(t, s, t0.Add(-2*time.Hour), 0)); !slices.Equal(g, []string{"D0"}) {
		t.Fatalf("ScanDue before D1 is due = %v, want D0", g)
	}
	if g := refIDs(scanDue(t, s, t0, 0)); !slices.Equal(g, []string{"D0", "D1"}) {
		t.Fatalf("ScanDue = %v, want D0 D1", g)
	}
	next, ok, err := s.NextDue(ctx)
	must(t, err)
	if !ok || !next.IsZero() {
		t.Fatalf("NextDue = %v %v, want the zero time (D0)", next, ok)
	}
}

// ScanDueAfter resumes after a ref: within one due time in id order, and
// after the ref's place even when its delivery finished meanwhile.
func testScanDueAfter(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	for _, d := range []*rswebhooks.Delivery{
		delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(1*time.Second), t0),
		delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second), t0),
		delivery("D3", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second), t0),
		delivery("D4", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(3*time.Second), t0),
		delivery("D5", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(4*time.Second), t0),
		delivery("D6", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour), t0),
	} {
		must(t, s.PutDelivery(ctx, d))
	}
	now := t0.Add(time.Minute)
	head := scanDue(t, s, now, 2)
	if g := refIDs(head); !slices.Equal(g, []string{"D1", "D2"}) {
		t.Fatalf("ScanDue max 2 = %+v", head)
	}
	scan := func(after rswebhooks.DueRef, max int) (out []string) {
		t.Helper()
		must(t, s.ScanDueAfter(ctx, now, after, max, func(r rswebhooks.DueRef) bool { out = append(out, r.ID+"/"+r.WebhookID); return true }))
		return out
	}
	if g := scan(head[1], 2); !slices.Equal(g, []string{"D3/W2", "D4/W2"}) {
		t.Fatalf("ScanDueAfter(D2, 2) = %v, want D3 (same due time, later id) and D4", g)
	}
	d2 := delivery("D2", "W1", "E1", rswebhooks.DeliverySucceeded, t0.Add(2*time.Second), t0)
	must(t, s.Complete(ctx, d2, nil))
	if g := scan(head[1], 0); !slices.Equal(g, []string{"D3/W2", "D4/W2", "D5/W1"}) {
		t.Fatalf("ScanDueAfter(finished D2) = %v, want D3 D4 D5 (D6 not due)", g)
	}
	if g := scan(rswebhooks.DueRef{ID: "D5", WebhookID: "W1", Due: t0.Add(4 * time.Second)}, 0); len(g) != 0 {
		t.Fatalf("ScanDueAfter(last due) = %v, want none", g)
	}
}

func testComplete(t *testing.T, open Opener) {
	s, c, t0 := openClocked(t, open)
	ctx := context.Background()
	d := delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)
	must(t, s.PutDelivery(ctx, d))

	d.Attempts, d.NextUTC, d.LastStatus = 1, t0.Add(time.Minute), 500
	must(t, s.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0, StatusCode: 500}))
	if due := scanDue(t, s, t0.Add(30*time.Second), 0); len(due) != 0 {
		t.Fatalf("still due at the old time: %v", refIDs(due))
	}
	if g := refIDs(scanDue(t, s, t0.Add(time.Minute), 0)); !slices.Equal(g, []string{"D1"}) {
		t.Fatalf("due after reschedule = %v", g)
	}
	if depth, _, _ := s.QueueStats(ctx); depth != 1 {
		t.Fatalf("depth = %d after reschedule, want 1", depth)
	}
	if got, err := s.GetDelivery(ctx, "D1"); err != nil || got.Attempts != 1 || got.LastStatus != 500 || !got.NextUTC.Equal(t0.Add(time.Minute)) {
		t.Fatalf("GetDelivery after reschedule = %+v, %v", got, err)
	}
	c.Set(t0.Add(time.Minute))
	d.Attempts, d.State, d.LastStatus = 2, rswebhooks.DeliverySucceeded, 200
	must(t, s.Complete(ctx, d, &rswebhooks.Attempt{DeliveryID: "D1", N: 2, StartedUTC: t0.Add(time.Minute), StatusCode: 200}))
	if depth, _, _ := s.QueueStats(ctx); depth != 0 {
		t.Fatalf("depth = %d after success, want 0", depth)
	}
	if _, ok, _ := s.NextDue(ctx); ok {
		t.Fatal("NextDue reports a pending delivery after success")
	}
	at, err := s.Attempts(ctx, "D1")
	must(t, err)
	if g := ids(at, attN); !slices.Equal(g, []string{"1", "2"}) || at[0].DeliveryID != "D1" || at[1].StatusCode != 200 {
		t.Fatalf("Attempts = %+v", at)
	}
	got, _ := s.GetDelivery(ctx, "D1")
	if got.State != rswebhooks.DeliverySucceeded || got.Attempts != 2 || got.LastStatus != 200 {
		t.Fatalf("GetDelivery = %+v", got)
	}
	for _, n := range []int{300, 10} {
		must(t, s.Complete(ctx, d, &rswebhooks.Attempt{N: n}))
	}
	at, _ = s.Attempts(ctx, "D1")
	if g := ids(at, attN); !slices.Equal(g, []string{"1", "2", "10", "300"}) {
		t.Fatalf("attempt order = %v, want numeric", g)
	}
	for _, b := range []struct {
		name string
		d    *rswebhooks.Delivery
		a    *rswebhooks.Attempt
		want error
	}{
		{"unknown delivery", delivery("nope", "W1", "E1", rswebhooks.DeliveryFailed, t0, t0), nil, rswebhooks.ErrNotFound},
		{"attempt of another delivery", d, &rswebhooks.Attempt{DeliveryID: "D2", N: 3}, nil},
		{"attempt zero", d, &rswebhooks.Attempt{N: 0}, nil},
		{"nil delivery", nil, nil, nil},
	} {
		t.Run(b.name, func(t *testing.T) {
			err := s.Complete(ctx, b.d, b.a)
			if err == nil || (b.want != nil && !errors.Is(err, b.want)) {
				t.Fatalf("Complete = %v, want error %v", err, b.want)
			}
		})
	}
	if _, err := s.Attempts(ctx, "nope"); err != nil {
		t.Fatalf("Attempts(nope) = %v, want none and no error", err)
	}
}

func testDiscard(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.AppendEvent(ctx, event("E1", t0)))
	d := delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)
	must(t, s.FanOut(ctx, "E1", []*rswebhooks.Delivery{d}))
	d.Attempts = 1
	must(t, s.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0, Error: "refused"}))
	must(t, s.DiscardDelivery(ctx, "D1"))
	if l, _ := s.EventDeliveries(ctx, "E1"); len(l) != 0 {
		t.Fatalf("EventDeliveries after discard: %v", ids(l, dID))
	}
	if _, err := s.GetDelivery(ctx, "D1"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetDelivery after discard = %v", err)
	}
	if at, _ := s.Attempts(ctx, "D1"); len(at) != 0 {
		t.Fatalf("attempts left after discard: %v", ids(at, attN))
	}
	if depth, _, _ := s.QueueStats(ctx); depth != 0 {
		t.Fatalf("queue depth after discard = %d", depth)
	}
	if l, _ := s.ListDeliveries(ctx, "W1", 0); len(l) != 0 {
		t.Fatalf("listed after discard: %v", ids(l, dID))
	}
	if err := s.DiscardDelivery(ctx, "D1"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("second discard = %v", err)
	}
}

func testRedeliver(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.PutDelivery(ctx, delivery("P", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour), t0)))
	f := delivery("F", "W1", "E1", rswebhooks.DeliveryFailed, time.Time{}, t0)
	f.Attempts, f.Reason = 8, "retries exhausted"
	must(t, s.PutDelivery(ctx, f))
	if _, err := s.Redeliver(ctx, "nope", t0); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("Redeliver(nope) = %v", err)
	}
	now := t0.Add(2 * time.Minute)
	p, err := s.Redeliver(ctx, "P", now)
	must(t, err)
	if p.State != rswebhooks.DeliveryPending || !p.NextUTC.Equal(now) {
		t.Fatalf("pending delivery not brought forward: %+v", p)
	}
	p2, err := s.Redeliver(ctx, "P", now.Add(time.Minute))
	must(t, err)
	if !p2.NextUTC.Equal(now) {
		t.Fatalf("due delivery moved: %+v", p2)
	}
	r, err := s.Redeliver(ctx, "F", now)
	must(t, err)
	if r.State != rswebhooks.DeliveryPending || !r.NextUTC.Equal(now) || r.Attempts != 8 || r.Reason != "" {
		t.Fatalf("Redeliver = %+v", r)
	}
	due := refIDs(scanDue(t, s, now, 0))
	slices.Sort(due)
	if !slices.Equal(due, []string{"F", "P"}) {
		t.Fatalf("due after redeliver = %v", due)
	}
	if depth, _, _ := s.QueueStats(ctx); depth != 2 {
		t.Fatalf("depth = %d, want 2", depth)
	}
}

var lease = rswebhooks.LeaseRequest{Holder: "node-a", For: time.Minute, PerWebhook: 0}

func testLeases(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	must(t, s.PutDelivery(ctx, delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	must(t, s.PutDelivery(ctx, delivery("LATER", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour), t0)))
	must(t, s.PutDelivery(ctx, delivery("DONE", "W1", "E1", rswebhooks.DeliverySucceeded, t0, t0)))

	for _, bad := range []rswebhooks.LeaseRequest{{For: time.Minute}, {Holder: "a"}, {Holder: "a", For: time.Minute, PerWebhook: -1}} {
		if _, err := s.Lease(ctx, "D1", t0, bad); err == nil || errors.Is(err, rswebhooks.ErrLeaseRefused) {
			t.Fatalf("Lease with %+v = %v, want a validation error", bad, err)
		}
	}
	d, err := s.Lease(ctx, "D1", t0, lease)
	must(t, err)
	if d.ID != "D1" || d.State != rswebhooks.DeliveryPending {
		t.Fatalf("Lease = %+v", d)
	}
	other := lease
	other.Holder = "node-b"
	if _, err := s.Lease(ctx, "D1", t0.Add(time.Second), other); !errors.Is(err, rswebhooks.ErrLeaseRefused) {
		t.Fatalf("second lease = %v, want ErrLeaseRefused", err)
	}
	for _, id := range []string{"LATER", "DONE"} {
		if _, err := s.Lease(ctx, id, t0, lease); !errors.Is(err, rswebhooks.ErrLeaseRefused) {
			t.Fatalf("Lease(%s) = %v, want ErrLeaseRefused", id, err)
		}
	}
	if _, err := s.Lease(ctx, "nope", t0, lease); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("Lease(nope) = %v, want ErrNotFound", err)
	}
	// A leased delivery is not listed as due, but still counts as pending,
	// and its webhook's lease shows in the refs.
	refs := scanDue(t, s, t0, 0)
	if g := refIDs(refs); !slices.Equal(g, []string{"D2"}) || refs[0].Leased != 1 {
		t.Fatalf("ScanDue with D1 leased = %+v, want D2 with Leased 1", refs)
	}
	if depth, _, _ := s.QueueStats(ctx); depth != 3 {
		t.Fatalf("depth = %d, want 3 (leased ones are pending)", depth)
	}

	// Release by another holder leaves the lease; by the holder ends it.
	must(t, s.Release(ctx, "D1", "node-b"))
	if _, err := s.Lease(ctx, "D1", t0, other); !errors.Is(err, rswebhooks.ErrLeaseRefused) {
		t.Fatalf("lease after a stranger's Release = %v, want ErrLeaseRefused", err)
	}
	must(t, s.Release(ctx, "D1", "node-a"))
	if _, err := s.Lease(ctx, "D1", t0, other); err != nil {
		t.Fatalf("lease after Release = %v", err)
	}
	// Complete ends the lease: rescheduled, it is leasable when due.
	d.Attempts, d.NextUTC = 1, t0.Add(time.Second)
	must(t, s.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0}))
	if _, err := s.Lease(ctx, "D1", t0.Add(time.Second), lease); err != nil {
		t.Fatalf("lease after Complete = %v", err)
	}
	must(t, s.Release(ctx, "nope", "node-a"))
}

// A node that dies mid-attempt releases its lease by expiry.
func testLeaseExpires(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	must(t, s.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	if _, err := s.Lease(ctx, "D1", t0, lease); err != nil {
		t.Fatal(err)
	}
	other := lease
	other.Holder = "node-b"
	if _, err := s.Lease(ctx, "D1", t0.Add(lease.For-time.Millisecond), other); !errors.Is(err, rswebhooks.ErrLeaseRefused) {
		t.Fatalf("lease before expiry = %v, want ErrLeaseRefused", err)
	}
	after := t0.Add(lease.For + time.Millisecond)
	if g := refIDs(scanDue(t, s, after, 0)); !slices.Equal(g, []string{"D1"}) {
		t.Fatalf("ScanDue after the lease expired = %v, want D1", g)
	}
	d, err := s.Lease(ctx, "D1", after, other)
	if err != nil || d.ID != "D1" {
		t.Fatalf("lease after expiry = %v, %v", d, err)
	}
}

// The per-webhook limit counts unexpired leases of every holder.
func testLeasePerWebhook(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	for _, id := range []string{"A1", "A2", "A3"} {
		must(t, s.PutDelivery(ctx, delivery(id, "WA", "E1", rswebhooks.DeliveryPending, t0, t0)))
	}
	must(t, s.PutDelivery(ctx, delivery("B1", "WB", "E1", rswebhooks.DeliveryPending, t0, t0)))
	a := rswebhooks.LeaseRequest{Holder: "node-a", For: time.Minute, PerWebhook: 2}
	b := a
	b.Holder = "node-b"
	if _, err := s.Lease(ctx, "A1", t0, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease(ctx, "A2", t0, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease(ctx, "A3", t0, a); !errors.Is(err, rswebhooks.ErrLeaseRefused) {
		t.Fatalf("third lease of WA = %v, want ErrLeaseRefused", err)
	}
	if _, err := s.Lease(ctx, "B1", t0, a); err != nil {
		t.Fatalf("another webhook's lease = %v", err)
	}
	refs := scanDue(t, s, t0, 0)
	if len(refs) != 1 || refs[0].ID != "A3" || refs[0].Leased != 2 {
		t.Fatalf("ScanDue = %+v, want A3 with Leased 2", refs)
	}
	// Once one lease ends the slot is free again; an expired one counts no more.
	must(t, s.Release(ctx, "A2", "node-b"))
	if _, err := s.Lease(ctx, "A3", t0, a); err != nil {
		t.Fatalf("lease after a release = %v", err)
	}
	must(t, s.Release(ctx, "A3", "node-a"))
	if _, err := s.Lease(ctx, "A2", t0.Add(2*time.Minute), a); err != nil {
		t.Fatalf("lease once the others expired = %v", err)
	}
}

// Many dispatchers racing for one delivery: exactly one gets it.
func testLeaseConcurrent(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	for i := range 4 {
		must(t, s.PutDelivery(ctx, delivery(fmt.Sprintf("D%d", i), "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	}
	const racers = 8
	type result struct {
		id  string
		err error
	}
	results := make(chan result, racers*4)
	var wg sync.WaitGroup
	for r := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := rswebhooks.LeaseRequest{Holder: fmt.Sprintf("node-%d", r), For: time.Minute, PerWebhook: 3}
			for i := range 4 {
				_, err := s.Lease(ctx, fmt.Sprintf("D%d", i), t0, req)
				results <- result{fmt.Sprintf("D%d", i), err}
			}
		}()
	}
	wg.Wait()
	close(results)
	won := map[string]int{}
	total := 0
	for r := range results {
		switch {
		case r.err == nil:
			won[r.id]++
			total++
		case !errors.Is(r.err, rswebhooks.ErrLeaseRefused):
			t.Fatalf("Lease(%s) = %v", r.id, r.err)
		}
	}
	for id, n := range won {
		if n != 1 {
			t.Fatalf("%s leased %d times", id, n)
		}
	}
	if total != 3 {
		t.Fatalf("%d leases granted (%v), want 3 (PerWebhook)", total, won)
	}
}

// drainDue takes every signal s has pending.
func drainDue(s rswebhooks.Store) {
	for {
		select {
		case <-s.DueSignal():
		default:
			return
		}
	}
}

// A write that makes a delivery due signals dispatchers.
func testDueSignal(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	drain := func() { drainDue(s) }
	wait := func(what string) {
		t.Helper()
		select {
		case <-s.DueSignal():
		case <-time.After(5 * time.Second):
			t.Fatalf("no DueSignal within 5s after %s", what)
		}
	}
	drain()
	must(t, s.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0, t0)))
	wait("PutDelivery")
	must(t, s.AppendEvent(ctx, event("E2", t0)))
	drain()
	must(t, s.FanOut(ctx, "E2", []*rswebhooks.Delivery{delivery("D2", "W1", "E2", rswebhooks.DeliveryPending, t0, t0)}))
	wait("FanOut")
	f := delivery("F", "W1", "E1", rswebhooks.DeliveryFailed, t0, t0)
	must(t, s.PutDelivery(ctx, f))
	drain()
	if _, err := s.Redeliver(ctx, "F", t0); err != nil {
		t.Fatal(err)
	}
	wait("Redeliver")
}

func testWebhooksVersion(t *testing.T, open Opener) {
	s, _, t0 := openClocked(t, open)
	ctx := context.Background()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"create", func() error { return s.CreateWebhook(ctx, webhook("W1", "alice", t0)) }},
		{"update", func() error { return s.UpdateWebhook(ctx, webhook("W1", "alice", t0)) }},
		{"pause", func() error { return s.SetPaused(ctx, "W1", true) }},
		{"owner missing", func() error { _, err := s.SetOwnerMissing(ctx, "alice", true); return err }},
		{"delete", func() error { return s.DeleteWebhook(ctx, "W1") }},
		{"create of another owner", func() error { return s.CreateWebhook(ctx, webhook("W2", "carol", t0)) }},
		{"delete of an owner's", func() error { _, err := s.DeleteWebhooksOf(ctx, "carol"); return err }},
	}
	for _, st := range steps {
		before := s.WebhooksVersion()
		must(t, st.fn())
		if s.WebhooksVersion() == before {
			t.Fatalf("WebhooksVersion did not move after %s", st.name)
		}
	}
}

func testSeenAndMeta(t *testing.T, open Opener) {
	s, _, _ := openClocked(t, open)
	ctx := context.Background()
	must(t, s.MarkExecutionsSeen(ctx, []string{"x1", "x2"}))
	must(t, s.MarkExecutionsSeen(ctx, []string{"x2"}))
	seen, err := s.SeenExecutions(ctx, []string{"x1", "x3", "x2"})
	must(t, err)
	if len(seen) != 2 || !seen["x1"] || !seen["x2"] || seen["x3"] {
		t.Fatalf("SeenExecutions = %v", seen)
	}
	if err := s.MarkExecutionsSeen(ctx, []string{"ok", ""}); err == nil {
		t.Fatal("empty execution id accepted")
	}
	if _, err := s.GetMeta(ctx, "cursor"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetMeta missing = %v", err)
	}
	must(t, s.PutMeta(ctx, "cursor", []byte("42")))
	must(t, s.PutMeta(ctx, "cursor", []byte("43")))
	v, err := s.GetMeta(ctx, "cursor")
	must(t, err)
	if string(v) != "43" {
		t.Fatalf("GetMeta = %q, want the last value", v)
	}
	for _, k := range []string{"", "schema", "ping"} {
		if err := s.PutMeta(ctx, k, nil); err == nil {
			t.Fatalf("PutMeta(%q) accepted", k)
		}
	}
	must(t, s.Ping(ctx))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping(cancelled) = %v", err)
	}
	if s.Backend() == "" || s.Unavailable() != nil {
		t.Fatalf("Backend %q, Unavailable %v", s.Backend(), s.Unavailable())
	}
}

// Values with an expiry (learned tokens, remembered administrators)
// disappear at it; an expiry in the past removes at once.
func testMetaUntil(t *testing.T, open Opener) {
	s := open(t, Config{})
	ctx := context.Background()
	must(t, s.PutMetaUntil(ctx, "token/abc", []byte("v"), time.Now().Add(time.Hour)))
	if v, err := s.GetMeta(ctx, "token/abc"); err != nil || string(v) != "v" {
		t.Fatalf("GetMeta = %q, %v", v, err)
	}
	must(t, s.PutMetaUntil(ctx, "token/abc", nil, time.Time{}))
	if _, err := s.GetMeta(ctx, "token/abc"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetMeta after removal = %v", err)
	}
	must(t, s.PutMetaUntil(ctx, "token/def", []byte("v"), time.Now().Add(time.Hour)))
	must(t, s.PutMetaUntil(ctx, "token/def", []byte("v"), time.Now().Add(-time.Second)))
	if _, err := s.GetMeta(ctx, "token/def"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetMeta after an expiry in the past = %v", err)
	}
	for _, k := range []string{"", "schema", "ping"} {
		if err := s.PutMetaUntil(ctx, k, nil, time.Now().Add(time.Hour)); err == nil {
			t.Fatalf("PutMetaUntil(%q) accepted", k)
		}
	}
	must(t, s.PutMetaUntil(ctx, "admin/u1", []byte("1"), time.Now().Add(1500*time.Millisecond)))
	if _, err := s.GetMeta(ctx, "admin/u1"); err != nil {
		t.Fatalf("GetMeta before expiry = %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "admin/u1 did not expire", func() bool {
		_, err := s.GetMeta(ctx, "admin/u1")
		return errors.Is(err, rswebhooks.ErrNotFound)
	})
}

// PutMetaIfAbsent creates a value once and then returns the stored one; an
// expired or removed value counts as absent, and what it creates is kept
// for good.
func testMetaIfAbsent(t *testing.T, open Opener) {
	s := open(t, Config{})
	ctx := context.Background()
	v, created, err := s.PutMetaIfAbsent(ctx, "doclink/key", []byte("first"))
	must(t, err)
	if !created || string(v) != "first" {
		t.Fatalf("PutMetaIfAbsent on an absent key = %q, created %v; want \"first\", true", v, created)
	}
	v, created, err = s.PutMetaIfAbsent(ctx, "doclink/key", []byte("second"))
	must(t, err)
	if created || string(v) != "first" {
		t.Fatalf("PutMetaIfAbsent on a stored key = %q, created %v; want \"first\", false", v, created)
	}
	if got, err := s.GetMeta(ctx, "doclink/key"); err != nil || string(got) != "first" {
		t.Fatalf("GetMeta = %q, %v; want the first value", got, err)
	}
	// A value PutMeta wrote counts too.
	must(t, s.PutMeta(ctx, "cursor", []byte("42")))
	if v, created, err := s.PutMetaIfAbsent(ctx, "cursor", []byte("0")); err != nil || created || string(v) != "42" {
		t.Fatalf("PutMetaIfAbsent over PutMeta = %q, %v, %v; want \"42\", false", v, created, err)
	}
	for _, k := range []string{"", "schema", "ping"} {
		if _, _, err := s.PutMetaIfAbsent(ctx, k, []byte("x")); err == nil {
			t.Fatalf("PutMetaIfAbsent(%q) accepted", k)
		}
	}
	// A removed value is absent.
	must(t, s.PutMetaUntil(ctx, "claim/a", []byte("old"), time.Now().Add(time.Hour)))
	must(t, s.PutMetaUntil(ctx, "claim/a", nil, time.Time{}))
	if v, created, err := s.PutMetaIfAbsent(ctx, "claim/a", []byte("new")); err != nil || !created || string(v) != "new" {
		t.Fatalf("PutMetaIfAbsent after removal = %q, %v, %v; want \"new\", true", v, created, err)
	}
	// A live value with an expiry is present; once expired it is absent,
	// and the value created then does not inherit the old expiry.
	until := time.Now().Add(1500 * time.Millisecond)
	must(t, s.PutMetaUntil(ctx, "claim/b", []byte("old"), until))
	if v, created, err := s.PutMetaIfAbsent(ctx, "claim/b", []byte("new")); err != nil || created || string(v) != "old" {
		t.Fatalf("PutMetaIfAbsent before expiry = %q, %v, %v; want \"old\", false", v, created, err)
	}
	testutil.Eventually(t, 10*time.Second, "claim/b did not expire", func() bool {
		_, err := s.GetMeta(ctx, "claim/b")
		return errors.Is(err, rswebhooks.ErrNotFound)
	})
	if v, created, err := s.PutMetaIfAbsent(ctx, "claim/b", []byte("new")); err != nil || !created || string(v) != "new" {
		t.Fatalf("PutMetaIfAbsent after expiry = %q, %v, %v; want \"new\", true", v, created, err)
	}
	// Past the old expiry (and a second for its rounding) it is still there.
	time.Sleep(time.Until(until.Add(time.Second)))
	if got, err := s.GetMeta(ctx, "claim/b"); err != nil || string(got) != "new" {
		t.Fatalf("GetMeta of a value created over an expired one = %q, %v; want it kept", got, err)
	}
}

// Of many callers racing on one key (nodes starting at once), exactly one
// creates and every one gets the value it created.
func testMetaIfAbsentRace(t *testing.T, open Opener) {
	s := open(t, Config{})
	ctx := context.Background()
	const racers = 16
	type result struct {
		mine, got string
		created   bool
		err       error
	}
	results := make(chan result, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for r := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			mine := fmt.Sprintf("key-of-racer-%d", r)
			v, created, err := s.PutMetaIfAbsent(ctx, "doclink/key", []byte(mine))
			results <- result{mine, string(v), created, err}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	var winner string
	values := map[string]int{}
	for r := range results {
		must(t, r.err)
		values[r.got]++
		if r.created {
			if winner != "" {
				t.Fatalf("two racers created the key: %q and %q", winner, r.mine)
			}
			if r.got != r.mine {
				t.Fatalf("the creator got %q back, want its own %q", r.got, r.mine)
			}
			winner = r.mine
		}
	}
	if winner == "" {
		t.Fatal("no racer created the key")
	}
	if len(values) != 1 || values[winner] != racers {
		t.Fatalf("racers got %v, want all %d to get %q", values, racers, winner)
	}
	if got, err := s.GetMeta(ctx, "doclink/key"); err != nil || string(got) != winner {
		t.Fatalf("GetMeta = %q, %v; want %q", got, err, winner)
	}
}

// ListMeta lists one prefix in key order, unexpired values only; SwapMeta
// and DeleteMetaIf act only on the value they were given, keep the expiry,
// and refuse the reserved keys (the correlator's claims shared by nodes).
func testMetaListSwap(t *testing.T, open Opener) {
	s := open(t, Config{})
	ctx := context.Background()
	must(t, s.PutMeta(ctx, "claim/b", []byte("2")))
	must(t, s.PutMeta(ctx, "claim/a", []byte("1")))
	must(t, s.PutMeta(ctx, "claim/c", []byte{}))
	must(t, s.PutMeta(ctx, "claimx", []byte("other prefix")))
	must(t, s.PutMeta(ctx, "clai", []byte("shorter")))
	must(t, s.PutMetaUntil(ctx, "claim/gone", []byte("x"), time.Time{}))
	must(t, s.PutMetaUntil(ctx, "claim/soon", []byte("s"), time.Now().Add(1500*time.Millisecond)))
	list := func() string {
		t.Helper()
		es, err := s.ListMeta(ctx, "claim/")
		must(t, err)
		out := ""
		for _, e := range es {
			if e.Value == nil {
				t.Fatalf("ListMeta: nil value for %s (want empty, not nil)", e.Key)
			}
			out += e.Key + "=" + string(e.Value) + ";"
		}
		return out
	}
	if got, want := list(), "claim/a=1;claim/b=2;claim/c=;claim/soon=s;"; got != want {
		t.Fatalf("ListMeta = %q, want %q", got, want)
	}
	if _, err := s.ListMeta(ctx, ""); err == nil {
		t.Fatal("ListMeta with an empty prefix accepted")
	}
	if es, err := s.ListMeta(ctx, "nothing/"); err != nil || len(es) != 0 {
		t.Fatalf("ListMeta of an absent prefix = %v, %v", es, err)
	}

	swap := func(key, old, v string, want bool) {
		t.Helper()
		ok, err := s.SwapMeta(ctx, key, []byte(old), []byte(v))
		must(t, err)
		if ok != want {
			t.Fatalf("SwapMeta(%s, %q → %q) = %v, want %v", key, old, v, ok, want)
		}
	}
	swap("claim/a", "1", "1b", true)
	swap("claim/a", "1", "1c", false) // no longer "1"
	swap("claim/none", "", "x", false)
	swap("claim/c", "", "3", true)
	if v, _ := s.GetMeta(ctx, "claim/a"); string(v) != "1b" {
		t.Fatalf("after swaps claim/a = %q, want 1b", v)
	}
	if _, err := s.GetMeta(ctx, "claim/none"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("a failed swap created the key: %v", err)
	}
	// The expiry is kept: the swapped value still disappears.
	swap("claim/soon", "s", "s2", true)
	testutil.Eventually(t, 10*time.Second, "a swapped value kept no expiry", func() bool {
		_, err := s.GetMeta(ctx, "claim/soon")
		return errors.Is(err, rswebhooks.ErrNotFound)
	})
	swap("claim/soon", "s2", "s3", false) // expired: nothing to swap

	del := func(key, old string, want bool) {
		t.Helper()
		ok, err := s.DeleteMetaIf(ctx, key, []byte(old))
		must(t, err)
		if ok != want {
			t.Fatalf("DeleteMetaIf(%s, %q) = %v, want %v", key, old, ok, want)
		}
	}
	del("claim/b", "1", false)
	del("claim/b", "2", true)
	del("claim/b", "2", false)
	if got, want := list(), "claim/a=1b;claim/c=3;"; got != want {
		t.Fatalf("ListMeta after swaps and deletes = %q, want %q", got, want)
	}
	for _, k := range []string{"", "schema", "ping"} {
		if _, err := s.SwapMeta(ctx, k, nil, []byte("x")); err == nil {
			t.Fatalf("SwapMeta(%q) accepted", k)
		}
		if _, err := s.DeleteMetaIf(ctx, k, nil); err == nil {
			t.Fatalf("DeleteMetaIf(%q) accepted", k)
		}
	}
}

// Of many concurrent swaps (and deletes) from one value, exactly one
// succeeds: the decision a node takes on a shared claim is its alone.
func testMetaSwapConcurrent(t *testing.T, open Opener) {
	s := open(t, Config{})
	ctx := context.Background()
	for round := range 5 {
		key := fmt.Sprintf("claim/%d", round)
		must(t, s.PutMeta(ctx, key, []byte("held")))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ok bool
				var err error
				if i == 0 {
					ok, err = s.DeleteMetaIf(ctx, key, []byte("held"))
				} else {
					ok, err = s.SwapMeta(ctx, key, []byte("held"), []byte(fmt.Sprint("taken by ", i)))
				}
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					winners = append(winners, fmt.Sprint(i))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d swaps from one value succeeded (%v), want exactly 1", round, len(winners), winners)
		}
		v, err := s.GetMeta(ctx, key)
		switch {
		case winners[0] == "0":
			if !errors.Is(err, rswebhooks.ErrNotFound) {
				t.Fatalf("round %d: the delete won but the key holds %q (%v)", round, v, err)
			}
		case err != nil || string(v) != "taken by "+winners[0]:
			t.Fatalf("round %d: value %q (%v), want the winner's (%s)", round, v, err, winners[0])
		}
	}
}

// Events once fanned out, finished deliveries, attempts and seen
// executions expire after the retention; an event waiting for fan-out and
// a pending delivery never do.
func testRetention(t *testing.T, open Opener) {
	s := open(t, Config{Retention: time.Second})
	ctx := context.Background()
	now := time.Now().UTC()
	must(t, s.AppendEvent(ctx, event("E1", now)))
	must(t, s.AppendEvent(ctx, event("E2", now)))
	done := delivery("DONE", "W1", "E1", rswebhooks.DeliveryPending, now, now)
	must(t, s.FanOut(ctx, "E1", []*rswebhooks.Delivery{
		done,
		delivery("WAIT", "W1", "E1", rswebhooks.DeliveryPending, now.Add(time.Hour), now),
	}))
	done.State, done.Attempts = rswebhooks.DeliverySucceeded, 1
	must(t, s.Complete(ctx, done, &rswebhooks.Attempt{N: 1, StartedUTC: now}))
	must(t, s.MarkExecutionsSeen(ctx, []string{"x1"}))
	testutil.Eventually(t, 10*time.Second, "retained data did not expire", func() bool {
		_, errE := s.GetEvent(ctx, "E1")
		_, errD := s.GetDelivery(ctx, "DONE")
		at, _ := s.Attempts(ctx, "DONE")
		seen, _ := s.SeenExecutions(ctx, []string{"x1"})
		return errors.Is(errE, rswebhooks.ErrNotFound) && errors.Is(errD, rswebhooks.ErrNotFound) && len(at) == 0 && len(seen) == 0
	})
	if _, err := s.GetEvent(ctx, "E2"); err != nil {
		t.Fatalf("an event waiting for fan-out expired: %v", err)
	}
	wait, err := s.GetDelivery(ctx, "WAIT")
	if err != nil {
		t.Fatalf("a pending delivery expired: %v", err)
	}
	if l, _ := s.ListDeliveries(ctx, "W1", 0); !slices.Equal(ids(l, dID), []string{"WAIT"}) {
		t.Fatalf("ListDeliveries after expiry = %v, want only the pending WAIT", ids(l, dID))
	}
	if g := refIDs(scanDue(t, s, time.Now().Add(2*time.Hour), 0)); !slices.Equal(g, []string{"WAIT"}) {
		t.Fatalf("ScanDue after expiry = %v, want the pending WAIT", g)
	}
	// Its event expired, its snapshot did not: for the whole retention of
	// the delivery, finished after the event expired.
	if wait.Event.ID != "E1" || wait.Event.ResourceID != "r-E1" || !wait.Event.Time.Equal(now) {
		t.Fatalf("pending delivery after its event expired: event = %+v", wait.Event)
	}
	wait.State, wait.Attempts = rswebhooks.DeliverySucceeded, 1
	must(t, s.Complete(ctx, wait, &rswebhooks.Attempt{N: 1, StartedUTC: time.Now()}))
	if got, err := s.GetDelivery(ctx, "WAIT"); err != nil || got.Event.ResourceID != "r-E1" || got.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("delivery finished after its event expired = %+v, %v; want it with its event", got, err)
	}
	if un, _ := s.UnfannedEvents(ctx, 0); len(un) != 1 {
		t.Fatalf("UnfannedEvents = %v, want E2", ids(un, evID))
	}
}

// testSecretRotation: a rotation keeps the previous secret through its
// grace period (another rotation with a grace is refused meanwhile, one
// without ends it), promotion flips ms-signature and may move the URI,
// UpdateWebhook keeps the rotation only while the secret is unchanged, and
// EndRotations erases the previous secret once the grace period is over.
func testSecretRotation(t *testing.T, open Opener) {
	s, c, t0 := openClocked(t, open)
	ctx := context.Background()
	const oldSecret, newSecret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t", "n3w-s3cr3t-n3w-s3cr3t-n3w-s3cr3t"
	must(t, s.CreateWebhook(ctx, webhook("w1", "u1", t0)))
	must(t, s.CreateWebhook(ctx, webhook("w2", "u1", t0)))

	if _, err := s.PromoteRotation(ctx, "w1", ""); !errors.Is(err, rswebhooks.ErrNoRotation) {
		t.Fatalf("PromoteRotation without a rotation = %v, want ErrNoRotation", err)
	}
	if _, err := s.RotateSecret(ctx, "nope", newSecret, time.Hour); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("RotateSecret of a missing webhook = %v, want ErrNotFound", err)
	}
	w, err := s.RotateSecret(ctx, "w1", newSecret, time.Hour)
	must(t, err)
	if w.Secret != newSecret || w.Rotation == nil || w.Rotation.PreviousSecret != oldSecret ||
		!w.Rotation.GraceUntilUTC.Equal(t0.Add(time.Hour)) || w.Rotation.Promoted {
		t.Fatalf("RotateSecret returned %+v (rotation %+v)", w, w.Rotation)
	}
	got, err := s.GetWebhook(ctx, "w1")
	must(t, err)
	if std, ms := got.SigningSecrets(t0); !slices.Equal(std, []string{newSecret, oldSecret}) || ms != oldSecret {
		t.Fatalf("stored rotation signs with %v and %q", std, ms)
	}
	if _, err := s.RotateSecret(ctx, "w1", "another-secret-another-secret", time.Hour); !errors.Is(err, rswebhooks.ErrRotationInProgress) {
		t.Fatalf("second RotateSecret with a grace = %v, want ErrRotationInProgress", err)
	}

	w, err = s.PromoteRotation(ctx, "w1", "http://127.0.0.1/hook2")
	must(t, err)
	if !w.Rotation.Promoted || w.URI != "http://127.0.0.1/hook2" {
		t.Fatalf("PromoteRotation returned %+v (rotation %+v)", w, w.Rotation)
	}
	if std, ms := w.SigningSecrets(t0); !slices.Equal(std, []string{newSecret, oldSecret}) || ms != newSecret {
		t.Fatalf("promoted rotation signs with %v and %q", std, ms)
	}
	// The Rotation of an update's input is ignored: it is RotateSecret's.
	upd := webhook("w1", "u1", t0)
	upd.Secret, upd.Description = newSecret, "edited"
	upd.Rotation = &rswebhooks.Rotation{PreviousSecret: "forged-forged-forged-forged-forged"}
	must(t, s.UpdateWebhook(ctx, upd))
	got, err = s.GetWebhook(ctx, "w1")
	must(t, err)
	if got.Description != "edited" || got.Rotation == nil || got.Rotation.PreviousSecret != oldSecret || !got.Rotation.Promoted {
		t.Fatalf("update with a forged rotation: description %q, rotation %+v", got.Description, got.Rotation)
	}
	// An update that keeps the secret keeps the rotation.
	got, err = s.GetWebhook(ctx, "w1")
	must(t, err)
	got.IsPaused = true
	must(t, s.UpdateWebhook(ctx, got))
	got, err = s.GetWebhook(ctx, "w1")
	must(t, err)
	if got.Rotation == nil || got.Rotation.PreviousSecret != oldSecret || !got.Rotation.Promoted {
		t.Fatalf("UpdateWebhook with the same secret lost the rotation: %+v", got.Rotation)
	}

	// Nothing ends before the grace period is over.
	c.Set(t0.Add(30 * time.Minute))
	ended, err := s.EndRotations(ctx)
	must(t, err)
	if len(ended) != 0 {
		t.Fatalf("EndRotations during the grace period ended %v", ended)
	}
	c.Set(t0.Add(time.Hour))
	ended, err = s.EndRotations(ctx)
	must(t, err)
	if !slices.Equal(ended, []string{"w1"}) {
		t.Fatalf("EndRotations after the grace period = %v, want [w1]", ended)
	}
	got, err = s.GetWebhook(ctx, "w1")
	must(t, err)
	if got.Rotation != nil || got.Secret != newSecret {
		t.Fatalf("after EndRotations: secret %q, rotation %+v", got.Secret, got.Rotation)
	}
	if std, ms := got.SigningSecrets(c.Now()); !slices.Equal(std, []string{newSecret}) || ms != newSecret {
		t.Fatalf("after EndRotations signs with %v and %q", std, ms)
	}
	// Once ended, a new rotation may begin.
	if w, err := s.RotateSecret(ctx, "w1", oldSecret, time.Hour); err != nil || w.Rotation == nil || w.Rotation.PreviousSecret != newSecret {
		t.Fatalf("RotateSecret after the end = %+v, %v", w, err)
	}

	// A new secret written by UpdateWebhook ends a rotation; so does a
	// rotation without a grace period.
	_, err = s.RotateSecret(ctx, "w2", newSecret, time.Hour)
	must(t, err)
	got, err = s.GetWebhook(ctx, "w2")
	must(t, err)
	got.Secret = "written-secret-written-secret"
	must(t, s.UpdateWebhook(ctx, got))
	got, err = s.GetWebhook(ctx, "w2")
	must(t, err)
	if got.Rotation != nil {
		t.Fatalf("UpdateWebhook with a new secret kept the rotation: %+v", got.Rotation)
	}
	_, err = s.RotateSecret(ctx, "w2", newSecret, time.Hour)
	must(t, err)
	w, err = s.RotateSecret(ctx, "w2", "leaked-so-replaced-leaked-so-replaced", 0)
	must(t, err)
	if w.Rotation != nil || w.Secret != "leaked-so-replaced-leaked-so-replaced" {
		t.Fatalf("RotateSecret without grace returned secret %q, rotation %+v", w.Secret, w.Rotation)
	}
}
