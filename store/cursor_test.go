package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
)

// fanOutAll fans out every waiting event with no deliveries.
func fanOutAll(t *testing.T, db *DB) {
	t.Helper()
	evs, err := db.UnfannedEvents(context.Background(), 0)
	mustNil(t, err)
	for _, e := range evs {
		mustNil(t, db.FanOut(context.Background(), e.ID, nil))
	}
}

func unfannedIDs(t *testing.T, db *DB, limit int) []string {
	t.Helper()
	evs, err := db.UnfannedEvents(context.Background(), limit)
	mustNil(t, err)
	return ids(evs, evID)
}

// TestUnfannedCursor: scans seek past the markers of fanned-out events (their
// tombstones), and an event appended with an older id (the execution
// watcher's ids carry the execution's time) lowers the cursor so it is still
// found.
func TestUnfannedCursor(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	var old []string
	for i := range 500 {
		id := rswebhooks.NewID(t0.Add(time.Duration(i) * time.Millisecond))
		old = append(old, id)
		mustNil(t, db.AppendEvent(ctx, event(id)))
	}
	fanOutAll(t, db)
	live := rswebhooks.NewID(t0.Add(time.Hour))
	mustNil(t, db.AppendEvent(ctx, event(live)))
	if got := unfannedIDs(t, db, 0); !slices.Equal(got, []string{live}) {
		t.Fatalf("UnfannedEvents = %v, want [%s]", got, live)
	}
	if low := db.unfanned.bound(); low != live {
		t.Fatalf("cursor = %q, want the first live marker %q (past %d tombstones)", low, live, len(old))
	}

	// The watcher appends an event dated before everything scanned so far.
	watched := rswebhooks.NewID(t0.Add(-24 * time.Hour))
	mustNil(t, db.AppendEvent(ctx, event(watched)))
	if low := db.unfanned.bound(); low > watched {
		t.Fatalf("cursor %q not lowered to the older id %q", low, watched)
	}
	if got := unfannedIDs(t, db, 0); !slices.Equal(got, []string{watched, live}) {
		t.Fatalf("UnfannedEvents after an older append = %v, want [%s %s]", got, watched, live)
	}
	// One between two tombstones, below the cursor again once raised.
	mustNil(t, db.FanOut(ctx, watched, nil))
	if got := unfannedIDs(t, db, 1); !slices.Equal(got, []string{live}) {
		t.Fatalf("UnfannedEvents = %v, want [%s]", got, live)
	}
	middle := rswebhooks.NewID(t0.Add(250 * time.Millisecond))
	mustNil(t, db.AppendEvent(ctx, event(middle)))
	if got := unfannedIDs(t, db, 1); !slices.Equal(got, []string{middle}) {
		t.Fatalf("UnfannedEvents(limit 1) = %v, want the older [%s]", got, middle)
	}
	// A fanned-out id cannot come back: AppendEvent refuses the existing event.
	if err := db.AppendEvent(ctx, event(old[0])); err == nil {
		t.Fatal("AppendEvent of a fanned-out id succeeded")
	}
	if got := unfannedIDs(t, db, 0); !slices.Equal(got, []string{middle, live}) {
		t.Fatalf("UnfannedEvents = %v, want [%s %s]", got, middle, live)
	}
}

// TestUnfannedCursorAfterReopen: a new process starts from the beginning of
// ef/ (the cursor is in memory only) and still finds every waiting event,
// including one older than those already fanned out.
func TestUnfannedCursorAfterReopen(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir)
	ctx := context.Background()
	for i := range 50 {
		mustNil(t, db.AppendEvent(ctx, event(rswebhooks.NewID(t0.Add(time.Duration(i)*time.Second)))))
	}
	fanOutAll(t, db)
	older := rswebhooks.NewID(t0.Add(-time.Minute))
	newer := rswebhooks.NewID(t0.Add(time.Hour))
	mustNil(t, db.AppendEvent(ctx, event(newer)))
	mustNil(t, db.AppendEvent(ctx, event(older)))
	mustNil(t, db.Close())
	db2, _ := openTest(t, dir)
	if low := db2.unfanned.bound(); low != "" {
		t.Fatalf("cursor after Open = %q, want the start", low)
	}
	if got := unfannedIDs(t, db2, 0); !slices.Equal(got, []string{older, newer}) {
		t.Fatalf("UnfannedEvents after reopen = %v, want [%s %s]", got, older, newer)
	}
}

// TestUnfannedCursorConcurrent appends ever older events while scans run: a
// scan must never move the cursor past a marker it could not see.
func TestUnfannedCursorConcurrent(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	const n = 300
	stop := make(chan struct{})
	scanned := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				scanned <- nil
				return
			default:
			}
			evs, err := db.UnfannedEvents(ctx, 5)
			if err != nil {
				scanned <- err
				return
			}
			// Fan out the head, as the engine does, so the cursor moves.
			for _, e := range evs[:min(2, len(evs))] {
				if err := db.FanOut(ctx, e.ID, nil); err != nil {
					scanned <- err
					return
				}
			}
		}
	}()
	errs := make(chan error, 2)
	want := map[string]bool{}
	var lists [2][]string
	for w := range 2 {
		for i := range n {
			lists[w] = append(lists[w], fmt.Sprintf("%s%d", rswebhooks.NewID(t0.Add(-time.Duration(i) * time.Second))[:25], w))
		}
		go func() {
			for _, id := range lists[w] {
				if err := db.AppendEvent(ctx, event(id)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	mustNil(t, <-errs)
	mustNil(t, <-errs)
	close(stop)
	mustNil(t, <-scanned)
	for _, l := range lists {
		for _, id := range l {
			want[id] = true
		}
	}
	// Every event is either still waiting or fanned out (its marker gone
	// and its event given a TTL); none is waiting unseen below the cursor.
	waiting := unfannedIDs(t, db, 0)
	var all []string
	err := db.bdb.Load().View(func(txn *badger.Txn) error {
		var err error
		all, err = keySuffixes(txn, []byte(pUnfanned), 0)
		return err
	})
	mustNil(t, err)
	if !slices.Equal(waiting, all) {
		t.Fatalf("UnfannedEvents found %d waiting events, a full scan %d", len(waiting), len(all))
	}
	for _, id := range all {
		if !want[id] {
			t.Fatalf("unexpected marker %s", id)
		}
	}
}

func TestDueRefs(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	mustNil(t, db.PutDelivery(ctx, delivery("D2", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(time.Second))))
	mustNil(t, db.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0)))
	mustNil(t, db.PutDelivery(ctx, delivery("D3", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour))))
	// A queue key written before the key's value held the webhook id.
	legacy := delivery("D0", "W0", "E1", rswebhooks.DeliveryPending, t0.Add(-time.Second))
	mustNil(t, db.PutDelivery(ctx, legacy))
	mustNil(t, db.bdb.Load().Update(func(txn *badger.Txn) error { return txn.Set(queueKey(legacy.NextUTC, "D0"), nil) }))

	got, err := db.DueRefs(ctx, t0.Add(time.Minute), 0)
	mustNil(t, err)
	want := []rswebhooks.DueRef{
		{ID: "D0", WebhookID: "W0", Due: t0.Add(-time.Second)},
		{ID: "D1", WebhookID: "W1", Due: t0},
		{ID: "D2", WebhookID: "W2", Due: t0.Add(time.Second)},
	}
	if !slices.EqualFunc(got, want, func(a, b rswebhooks.DueRef) bool {
		return a.ID == b.ID && a.WebhookID == b.WebhookID && a.Due.Equal(b.Due)
	}) {
		t.Fatalf("DueRefs = %+v, want %+v", got, want)
	}
	if got, _ := db.DueRefs(ctx, t0.Add(time.Minute), 2); len(got) != 2 || got[1].ID != "D1" {
		t.Fatalf("DueRefs(limit 2) = %+v", got)
	}
	// Completing moves the key; the ref list follows.
	d1, err := db.GetDelivery(ctx, "D1")
	mustNil(t, err)
	d1.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, d1, nil))
	got, _ = db.DueRefs(ctx, t0.Add(time.Minute), 0)
	if len(got) != 2 || got[0].ID != "D0" || got[1].ID != "D2" {
		t.Fatalf("DueRefs after completing D1 = %+v", got)
	}
}

// Reads leave WebhooksVersion alone (the conformance suite checks that
// every write moves it): a cache is not re-read for nothing.
func TestWebhooksVersionStillOnReads(t *testing.T) {
	db, c := newDB(t)
	ctx := context.Background()
	mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", c.t)))
	v := db.WebhooksVersion()
	if _, err := db.ListWebhooks(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetWebhook(ctx, "W1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CountWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if db.WebhooksVersion() != v {
		t.Fatalf("a read changed WebhooksVersion from %d to %d", v, db.WebhooksVersion())
	}
}

// TestCursorHeldByWriterInFlight: while a transaction that adds a queue key
// below the first live one has not committed, scans do not see the key and
// must not raise the bound past it; once committed it is found.
func TestCursorHeldByWriterInFlight(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	d1 := delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0)
	mustNil(t, db.PutDelivery(ctx, d1))
	mustNil(t, db.PutDelivery(ctx, delivery("D3", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second))))
	d1.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, d1, nil))

	lowered, release := make(chan struct{}), make(chan struct{})
	wrote := make(chan error, 1)
	d2 := delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Second))
	go func() {
		wrote <- db.queueUpdate(ctx, "test put", func(txn *badger.Txn) error {
			if err := db.putDelivery(txn, d2, nil, true, nil); err != nil {
				return err
			}
			close(lowered)
			<-release
			return nil
		})
	}()
	select {
	case <-lowered:
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not start")
	}
	refs, err := db.DueRefs(ctx, t0.Add(time.Hour), 0)
	mustNil(t, err)
	if len(refs) != 1 || refs[0].ID != "D3" {
		t.Fatalf("DueRefs while D2 is uncommitted = %+v, want [D3]", refs)
	}
	if low := db.queue.bound(); low > dueNanos(d2.NextUTC) {
		t.Fatalf("bound %d raised past the uncommitted key at %d", low, dueNanos(d2.NextUTC))
	}
	close(release)
	select {
	case err := <-wrote:
		mustNil(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not finish")
	}
	refs, err = db.DueRefs(ctx, t0.Add(time.Hour), 0)
	mustNil(t, err)
	if len(refs) != 2 || refs[0].ID != "D2" || refs[1].ID != "D3" {
		t.Fatalf("DueRefs after commit = %+v, want [D2 D3]", refs)
	}
	if low := db.queue.bound(); low != dueNanos(d2.NextUTC) {
		t.Fatalf("bound = %d, want the first live key %d", low, dueNanos(d2.NextUTC))
	}
}
