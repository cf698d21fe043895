package store

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// completeSchema2 records attempt a and the new state of d as schema 2 did:
// the attempt at its own a/ key, the record without it.
func completeSchema2(t *testing.T, db *DB, d *rswebhooks.Delivery, a *rswebhooks.Attempt) {
	t.Helper()
	mustNil(t, db.bdb.Load().Update(func(txn *badger.Txn) error {
		var old deliveryIndex
		if err := getJSON(txn, deliveryKey(d.ID), &old); err != nil {
			return err
		}
		k := attemptKey(d.ID, a.N)
		v, err := encodeAttempt(k, a)
		if err != nil {
			return err
		}
		if err := setRaw(txn, k, v, db.expiresAt()); err != nil {
			return err
		}
		return db.putDelivery(txn, d, &old, old.inline(), nil)
	}))
}

// attemptsJSON is Attempts of id as the admin API writes them.
func attemptsJSON(t *testing.T, db *DB, id string) string {
	t.Helper()
	as, err := db.Attempts(context.Background(), id)
	mustNil(t, err)
	b, err := json.Marshal(as)
	mustNil(t, err)
	return string(b)
}

func wantJSON(t *testing.T, as ...*rswebhooks.Attempt) string {
	t.Helper()
	b, err := json.Marshal(as)
	mustNil(t, err)
	return string(b)
}

// TestSchema2RecordsReadAndCompleted: a data dir written by schema 2 (the
// attempt that finished a delivery at its own a/ key) is opened without
// conversion (only m/schema becomes 3), its attempts list as before, and its
// deliveries complete, are redelivered and complete again in the new form,
// each listing every attempt in order, byte for byte as schema 2 listed
// them; a record that held its finishing attempt moves it to an a/ key when
// it is queued again.
func TestSchema2RecordsReadAndCompleted(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	attempt := func(id string, n, status int) *rswebhooks.Attempt {
		return &rswebhooks.Attempt{DeliveryID: id, N: n, StartedUTC: now.Add(time.Duration(n) * time.Second), Duration: 3 * time.Millisecond,
			StatusCode: status, ResponseHeaders: map[string][]string{"Content-Length": {"2"}, "X-Try": {strconv.Itoa(n)}}, ResponseBody: "ok"}
	}
	finish := func(d *rswebhooks.Delivery, n int) {
		d.State, d.Attempts, d.LastStatus, d.AccessPending, d.UpdatedUTC = rswebhooks.DeliverySucceeded, n, 200, false, now
	}

	// Schema 2: A finished on its first attempt, B failed once and waits
	// for a retry, C has no attempt yet.
	db, _ := openTest(t, dir, func(o *Options) { o.Now = time.Now })
	ev := richEvent(rswebhooks.NewID(now), now)
	mustNil(t, db.AppendEvent(ctx, ev))
	ds := map[string]*rswebhooks.Delivery{}
	var fan []*rswebhooks.Delivery
	for _, wh := range []string{"WA", "WB", "WC"} {
		d := &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, wh), WebhookID: wh, EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now, AccessPending: true}
		ds[wh] = d
		fan = append(fan, d)
	}
	mustNil(t, db.FanOut(ctx, ev.ID, fan))
	a, b, c := ds["WA"], ds["WB"], ds["WC"]
	a1, b1 := attempt(a.ID, 1, 200), attempt(b.ID, 1, 503)
	finish(a, 1)
	completeSchema2(t, db, a, a1)
	b.Attempts, b.LastStatus, b.NextUTC = 1, 503, now.Add(-time.Second)
	completeSchema2(t, db, b, b1)
	mustNil(t, db.bdb.Load().Update(func(txn *badger.Txn) error { return txn.Set(metaKey(metaSchema), []byte("2")) }))
	before := attemptsJSON(t, db, a.ID)
	mustNil(t, db.Close())

	// The new release: nothing converted, schema 3 recorded.
	db, _ = openTest(t, dir, func(o *Options) { o.Now = time.Now })
	if v, err := getMetaRaw(db, metaSchema); err != nil || string(v) != "3" {
		t.Fatalf("m/schema = %q, %v; want 3", v, err)
	}
	if got := attemptsJSON(t, db, a.ID); got != before || got != wantJSON(t, a1) {
		t.Fatalf("attempts of a schema-2 delivery:\n got %s\nwant %s", got, before)
	}
	got, err := db.GetDelivery(ctx, a.ID)
	mustNil(t, err)
	if got.State != rswebhooks.DeliverySucceeded || got.Attempts != 1 || got.Event.ID != ev.ID {
		t.Fatalf("schema-2 record read back as %+v", got)
	}

	// B's second attempt finishes it: kept in its record, not at a key.
	b2 := attempt(b.ID, 2, 200)
	finish(b, 2)
	mustNil(t, db.Complete(ctx, b, b2))
	if got := attemptsJSON(t, db, b.ID); got != wantJSON(t, b1, b2) {
		t.Fatalf("attempts of B:\n got %s\nwant %s", got, wantJSON(t, b1, b2))
	}
	noKey := func(id string, n int) {
		t.Helper()
		mustNil(t, db.bdb.Load().View(func(txn *badger.Txn) error {
			if ok, err := exists(txn, attemptKey(id, n)); ok || err != nil {
				t.Errorf("attempt %s.%d has its own key (%v)", id, n, err)
			}
			return nil
		}))
	}
	noKey(b.ID, 2)
	// The same number recorded again (finished again): the newer one is
	// listed, as when schema 2 overwrote its key.
	b2 = attempt(b.ID, 2, 410)
	mustNil(t, db.Complete(ctx, b, b2))
	if got := attemptsJSON(t, db, b.ID); got != wantJSON(t, b1, b2) {
		t.Fatalf("attempts of B recorded twice:\n got %s\nwant %s", got, wantJSON(t, b1, b2))
	}

	// C finishes on its first attempt, then is redelivered: the attempt
	// moves to its own key, byte for byte, and a second one follows it.
	c1 := attempt(c.ID, 1, 200)
	finish(c, 1)
	mustNil(t, db.Complete(ctx, c, c1))
	noKey(c.ID, 1)
	var inRecord []byte
	mustNil(t, db.bdb.Load().View(func(txn *badger.Txn) error {
		v, err := getRaw(txn, deliveryKey(c.ID))
		var rec struct{ FinalAttempt json.RawMessage }
		if err == nil {
			err = json.Unmarshal(v, &rec)
		}
		inRecord = rec.FinalAttempt
		return err
	}))
	for _, d := range []*rswebhooks.Delivery{a, c} {
		r, err := db.Redeliver(ctx, d.ID, time.Now())
		mustNil(t, err)
		*d = *r
	}
	mustNil(t, db.bdb.Load().View(func(txn *badger.Txn) error {
		v, err := getRaw(txn, attemptKey(c.ID, 1))
		if err != nil || string(v) != string(inRecord) {
			t.Errorf("C's attempt after redelivery: %s (%v), want %s", v, err, inRecord)
		}
		return nil
	}))
	if got := attemptsJSON(t, db, c.ID); got != wantJSON(t, c1) {
		t.Fatalf("attempts of C after redelivery:\n got %s\nwant %s", got, wantJSON(t, c1))
	}
	a2, c2 := attempt(a.ID, 2, 200), attempt(c.ID, 2, 200)
	finish(a, 2)
	finish(c, 2)
	mustNil(t, db.Complete(ctx, a, a2))
	mustNil(t, db.Complete(ctx, c, c2))
	mustNil(t, db.Close())

	// Everything as written after a restart.
	db, _ = openTest(t, dir, func(o *Options) { o.Now = time.Now })
	for id, want := range map[string]string{a.ID: wantJSON(t, a1, a2), b.ID: wantJSON(t, b1, b2), c.ID: wantJSON(t, c1, c2)} {
		if got := attemptsJSON(t, db, id); got != want {
			t.Errorf("attempts of %s after reopening:\n got %s\nwant %s", id, got, want)
		}
	}
	ls, err := db.ListDeliveries(ctx, "WC", 0)
	mustNil(t, err)
	if len(ls) != 1 || ls[0].State != rswebhooks.DeliverySucceeded || ls[0].Attempts != 2 {
		t.Fatalf("ListDeliveries(WC) = %+v", ls)
	}
	// Discarding a delivery takes the attempt its record held with it.
	mustNil(t, db.DiscardDelivery(ctx, c.ID))
	if got := attemptsJSON(t, db, c.ID); got != "null" {
		t.Fatalf("attempts of a discarded delivery: %s", got)
	}
}
