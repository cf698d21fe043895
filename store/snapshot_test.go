package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// rawValue returns the stored value at k (nil, false when absent) and its
// Badger expiry.
func rawValue(t *testing.T, db *DB, k []byte) ([]byte, uint64, bool) {
	t.Helper()
	var (
		v   []byte
		exp uint64
		ok  bool
	)
	mustNil(t, db.bdb.Load().View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ok, exp = true, item.ExpiresAt()
		v, err = item.ValueCopy(nil)
		return err
	}))
	return v, exp, ok
}

func richEvent(id string, at time.Time) *rswebhooks.Event {
	exec := at.Add(-time.Minute)
	yes := true
	return &rswebhooks.Event{ID: id, Filter: "tasks", Type: "Executed", ResourceID: "t-1", ResourceName: "<Nightly> & co",
		UserID: "u1", UserName: "Ann", Time: at, APIVersion: "v2", Method: "POST", Path: "/api/reportserver/v2/tasks/t-1/execute",
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Source: rswebhooks.SourceProxy,
		ExecutionID: "x-1", ExecutionDateUTC: &exec, AlertTriggered: &yes, DocumentIDs: []string{"doc-1"},
		Documents: []rswebhooks.Document{{ID: "doc-1", Name: "Nightly", Format: "PDF", MimeType: "application/pdf"}}}
}

// TestFanOutSharesOneSnapshot: an event's deliveries refer to one stored
// copy of its snapshot and read back whole; a delivery carrying another
// snapshot keeps its own.
func TestFanOutSharesOneSnapshot(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	ev := richEvent(rswebhooks.NewID(now), now)
	mustNil(t, db.AppendEvent(ctx, ev))
	var ds []*rswebhooks.Delivery
	for i := range 3 {
		ds = append(ds, &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, fmt.Sprint("W", i)), WebhookID: fmt.Sprint("W", i),
			EventID: ev.ID, Event: *ev, State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now})
	}
	odd := *ev
	odd.ResourceName = "changed"
	ds[2].Event = odd
	mustNil(t, db.FanOut(ctx, ev.ID, ds))

	snap, _, ok := rawValue(t, db, snapshotKey(ev.ID))
	if !ok {
		t.Fatal("no shared snapshot stored")
	}
	var got snapshotRecord
	mustNil(t, json.Unmarshal(snap, &got))
	if !reflect.DeepEqual(&got.Event, ev) {
		t.Fatalf("snapshot = %+v, want %+v", got.Event, *ev)
	}
	if want := []string{ds[0].ID, ds[1].ID}; !reflect.DeepEqual(got.Deliveries, want) {
		t.Fatalf("snapshot lists %v, want %v", got.Deliveries, want)
	}
	for i, d := range ds {
		v, _, _ := rawValue(t, db, deliveryKey(d.ID))
		inline := bytes.Contains(v, []byte(`"Event":`))
		if inline != (i == 2) {
			t.Fatalf("delivery %d: record holds its snapshot = %v (%s)", i, inline, v)
		}
		if i < 2 && len(v) > 400 {
			t.Fatalf("delivery %d: record of %d bytes, want a small state record", i, len(v))
		}
		// Only the one with its own snapshot has a de/ key; the others are listed in the snapshot.
		if _, _, ok := rawValue(t, db, byEventKey(ev.ID, d.ID)); ok != inline {
			t.Fatalf("delivery %d: de/ key present %v, want %v", i, ok, inline)
		}
		for range 2 { // the second read comes from the cache
			g, err := db.GetDelivery(ctx, d.ID)
			mustNil(t, err)
			if !reflect.DeepEqual(g.Event, d.Event) {
				t.Fatalf("delivery %d: event = %+v, want %+v", i, g.Event, d.Event)
			}
			g.Event.Documents[0].Name = "mutated" // a caller's change must not reach the next reader
			g.Event.DocumentIDs[0] = "mutated"
		}
	}
	l, err := db.Lease(ctx, ds[0].ID, time.Now(), rswebhooks.LeaseRequest{Holder: "t", For: time.Minute})
	mustNil(t, err)
	if !reflect.DeepEqual(l.Event, *ev) {
		t.Fatalf("leased event = %+v", l.Event)
	}
	l.State, l.Attempts = rswebhooks.DeliverySucceeded, 1
	mustNil(t, db.Complete(ctx, l, &rswebhooks.Attempt{DeliveryID: l.ID, N: 1, StartedUTC: now, StatusCode: 200}))
	v, exp, _ := rawValue(t, db, deliveryKey(l.ID))
	if bytes.Contains(v, []byte(`"Event":`)) || exp == 0 {
		t.Fatalf("completed record: expiry %d, %s; want a TTL and no inline snapshot", exp, v)
	}
	if _, kexp, ok := rawValue(t, db, byWebhookKey(l.WebhookID, l.ID)); !ok || kexp != exp {
		t.Fatalf("dw/ key: expiry %d (present %v), want the record's %d", kexp, ok, exp)
	}
	evs, err := db.EventDeliveries(ctx, ev.ID)
	mustNil(t, err)
	want := []string{ds[0].ID, ds[1].ID, ds[2].ID}
	slices.Sort(want)
	if g := ids(evs, dID); !slices.Equal(g, want) {
		t.Fatalf("EventDeliveries = %v, want %v (oldest first)", g, want)
	}
}

// TestSnapshotOutlivesEvent: a delivery stays readable with its event for
// its whole retention, pending for however long and after it finished
// later than the event expired; once no delivery refers to the snapshot,
// dropSnapshots removes it.
func TestSnapshotOutlivesEvent(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.Now = time.Now; o.Retention = time.Second })
	ctx := context.Background()
	now := time.Now().UTC()
	ev := richEvent(rswebhooks.NewID(now), now)
	mustNil(t, db.AppendEvent(ctx, ev))
	mk := func(wh string) *rswebhooks.Delivery {
		return &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, wh), WebhookID: wh, EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now}
	}
	early, late := mk("W1"), mk("W2")
	mustNil(t, db.FanOut(ctx, ev.ID, []*rswebhooks.Delivery{early, late}))
	early.State, early.Attempts = rswebhooks.DeliverySucceeded, 1
	mustNil(t, db.Complete(ctx, early, &rswebhooks.Attempt{DeliveryID: early.ID, N: 1, StartedUTC: now}))

	testutil.Eventually(t, 10*time.Second, "event and early delivery did not expire", func() bool {
		_, errE := db.GetEvent(ctx, ev.ID)
		_, errD := db.GetDelivery(ctx, early.ID)
		return errors.Is(errE, rswebhooks.ErrNotFound) && errors.Is(errD, rswebhooks.ErrNotFound)
	})
	if n, err := db.dropSnapshots(ctx); err != nil || n != 0 {
		t.Fatalf("dropSnapshots with a pending delivery = %d, %v; want 0", n, err)
	}
	l, err := db.Lease(ctx, late.ID, time.Now(), rswebhooks.LeaseRequest{Holder: "t", For: time.Minute})
	mustNil(t, err)
	if !reflect.DeepEqual(l.Event, *ev) {
		t.Fatalf("pending delivery after its event expired: event = %+v", l.Event)
	}
	l.State, l.Attempts = rswebhooks.DeliverySucceeded, 1
	mustNil(t, db.Complete(ctx, l, &rswebhooks.Attempt{DeliveryID: l.ID, N: 1, StartedUTC: time.Now()}))
	if n, err := db.dropSnapshots(ctx); err != nil || n != 0 {
		t.Fatalf("dropSnapshots with a finished, unexpired delivery = %d, %v; want 0", n, err)
	}
	got, err := db.GetDelivery(ctx, late.ID)
	mustNil(t, err)
	if !reflect.DeepEqual(got.Event, *ev) || got.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("delivery finished after its event expired: %+v", got)
	}
	// Queued again by hand: pending once more, without a TTL, event intact.
	again, err := db.Redeliver(ctx, late.ID, time.Now())
	mustNil(t, err)
	if !reflect.DeepEqual(again.Event, *ev) {
		t.Fatalf("redelivered event = %+v", again.Event)
	}
	if n, err := db.dropSnapshots(ctx); err != nil || n != 0 {
		t.Fatalf("dropSnapshots with a redelivered delivery = %d, %v; want 0", n, err)
	}
	again.State = rswebhooks.DeliveryFailed
	mustNil(t, db.Complete(ctx, again, nil))
	testutil.Eventually(t, 10*time.Second, "late delivery did not expire", func() bool {
		_, err := db.GetDelivery(ctx, late.ID)
		return errors.Is(err, rswebhooks.ErrNotFound)
	})
	n, err := db.dropSnapshots(ctx)
	mustNil(t, err)
	if _, _, ok := rawValue(t, db, snapshotKey(ev.ID)); n != 1 || ok {
		t.Fatalf("dropSnapshots after every delivery expired = %d (snapshot still there: %v), want 1", n, ok)
	}
}
