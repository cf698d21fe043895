package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// legacyStore writes a schema-1 data dir as the release before schema 2
// did: every delivery record holds its event snapshot, its de/ key has the
// event's TTL. events × hooks deliveries, every third event's finished (with
// a TTL), the rest pending; plus a ping, a delivery whose snapshot differs
// from its event's others, and an undecodable record. It returns the
// deliveries by id.
func legacyStore(t *testing.T, dir string, events, hooks int) map[string]*rswebhooks.Delivery {
	t.Helper()
	db, _ := openTest(t, dir, func(o *Options) { o.Now = time.Now })
	b := db.bdb.Load()
	now := time.Now().UTC().Truncate(time.Millisecond)
	evExp := db.expiresAt()
	want := map[string]*rswebhooks.Delivery{}
	put := func(txn *badger.Txn, d *rswebhooks.Delivery) {
		var exp uint64
		if d.State != rswebhooks.DeliveryPending {
			exp = db.expiresAt()
		}
		mustNil(t, setJSON(txn, deliveryKey(d.ID), d, exp)) // schema 1: the whole Delivery
		mustNil(t, setRaw(txn, byWebhookKey(d.WebhookID, d.ID), nil, exp))
		mustNil(t, setRaw(txn, byEventKey(d.EventID, d.ID), nil, evExp))
		if d.State == rswebhooks.DeliveryPending {
			mustNil(t, txn.Set(orderKey(d.WebhookID, d.EventID, d.ID), nil))
			mustNil(t, txn.Set(queueKey(d.NextUTC, d.ID), []byte(d.WebhookID)))
		}
		want[d.ID] = d
	}
	for i := range events {
		ev := richEvent(rswebhooks.NewID(now), now)
		ev.ResourceID = strconv.Itoa(i)
		mustNil(t, b.Update(func(txn *badger.Txn) error {
			mustNil(t, setJSON(txn, eventKey(ev.ID), ev, evExp))
			for h := range hooks {
				wh := fmt.Sprint("W", h)
				d := &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, wh), WebhookID: wh, EventID: ev.ID, Event: *ev,
					State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now, AccessPending: true}
				if i%3 == 0 {
					d.State, d.Attempts, d.LastStatus, d.AccessPending = rswebhooks.DeliverySucceeded, 1, 200, false
				}
				if i == 1 && h == 1 {
					d.Event.Note = "a snapshot of its own"
				}
				put(txn, d)
			}
			return nil
		}))
	}
	mustNil(t, b.Update(func(txn *badger.Txn) error {
		w := &rswebhooks.Webhook{ID: "W0", URI: "http://127.0.0.1/hook", Secret: "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
			Filters: []string{"*"}, User: rswebhooks.User{ID: "alice", Name: "alice"}, Ordered: true, CreatedUTC: now, UpdatedUTC: now}
		if err := setJSON(txn, webhookKey(w.ID), w, 0); err != nil { // schema 1: no user meta
			return err
		}
		pingEv := rswebhooks.NewID(now)
		put(txn, &rswebhooks.Delivery{ID: rswebhooks.NewID(now), WebhookID: "W0", EventID: pingEv, Ping: true,
			Event: rswebhooks.Event{ID: pingEv, Filter: "ping", Type: "Ping", Time: now}, State: rswebhooks.DeliveryPending,
			NextUTC: now, CreatedUTC: now, UpdatedUTC: now})
		if err := txn.Set(deliveryKey("01BADBADBADBADBADBADBADBAD"), []byte("{not json")); err != nil {
			return err
		}
		return txn.Set(metaKey(metaSchema), []byte("1"))
	}))
	mustNil(t, db.Close())
	return want
}

// checkConverted opens dir and checks that every delivery of want reads
// back as written, that the conversion finished, and that the store works.
func checkConverted(t *testing.T, dir string, want map[string]*rswebhooks.Delivery) *DB {
	t.Helper()
	db, _ := openTest(t, dir, func(o *Options) { o.Now = time.Now })
	ctx := context.Background()
	if v, _ := getMetaRaw(db, metaSchema); string(v) != strconv.Itoa(SchemaVersion) {
		t.Fatalf("m/schema = %q after conversion", v)
	}
	if _, err := getMetaRaw(db, metaMigrate); err == nil {
		t.Fatal("m/migrating left after the conversion finished")
	}
	inline := 0
	for id, w := range want {
		got, err := db.GetDelivery(ctx, id)
		mustNil(t, err)
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("delivery %s after conversion:\n got %+v\nwant %+v", id, got, w)
		}
		v, dexp, _ := rawValue(t, db, deliveryKey(id))
		own := bytes.Contains(v, []byte(`"Event":`))
		if own {
			inline++
		}
		// Its own snapshot: a de/ key with its TTL; a shared one lists it.
		if _, exp, ok := rawValue(t, db, byEventKey(w.EventID, id)); ok != own || own && exp != dexp {
			t.Fatalf("delivery %s (own snapshot %v): de/ key present %v with expiry %d, record's %d", id, own, ok, exp, dexp)
		}
		evs, err := db.EventDeliveries(ctx, w.EventID)
		mustNil(t, err)
		if !slices.Contains(ids(evs, dID), id) {
			t.Fatalf("delivery %s missing from EventDeliveries(%s) = %v", id, w.EventID, ids(evs, dID))
		}
	}
	if inline != 1 {
		t.Fatalf("%d records keep their own snapshot, want 1 (the one that differs from its event's)", inline)
	}
	if _, err := db.GetDelivery(ctx, "01BADBADBADBADBADBADBADBAD"); !errors.Is(err, rswebhooks.ErrUnreadable) {
		t.Fatalf("undecodable record after conversion: %v, want unreadable", err)
	}
	// The Ordered webhook's head comes from the order index, which schema 1
	// wrote for every pending delivery.
	var ordered bool
	mustNil(t, db.bdb.Load().View(func(txn *badger.Txn) (err error) {
		ordered, err = webhookOrdered(txn, "W0")
		return err
	}))
	if !ordered {
		t.Fatal("the Ordered webhook lost its flag in the conversion")
	}
	var head *rswebhooks.Delivery
	for _, w := range want {
		if w.WebhookID == "W0" && w.State == rswebhooks.DeliveryPending && w.EventID != "" &&
			(head == nil || w.EventID < head.EventID || w.EventID == head.EventID && w.ID < head.ID) {
			head = w
		}
	}
	if h := storetest.HeadOf(t, db, "W0"); h != head.ID {
		t.Fatalf("order head of W0 after conversion = %q, want %s", h, head.ID)
	}
	// The queue still works: every pending delivery is due, leases and completes.
	refs, err := db.DueRefs(ctx, time.Now(), 0)
	mustNil(t, err)
	pending := 0
	for _, w := range want {
		if w.State == rswebhooks.DeliveryPending {
			pending++
		}
	}
	if len(refs) != pending {
		t.Fatalf("due after conversion = %d, want %d", len(refs), pending)
	}
	d, err := db.Lease(ctx, refs[0].ID, time.Now(), rswebhooks.LeaseRequest{Holder: "t", For: time.Minute})
	mustNil(t, err)
	d.State, d.Attempts = rswebhooks.DeliverySucceeded, 1
	mustNil(t, db.Complete(ctx, d, &rswebhooks.Attempt{DeliveryID: d.ID, N: 1, StartedUTC: time.Now(), StatusCode: 200}))
	return db
}

// TestSchema1StoreIsConverted: a data dir written by the release before
// schema 2 opens, its deliveries read back unchanged, and it is converted.
func TestSchema1StoreIsConverted(t *testing.T) {
	dir := t.TempDir()
	want := legacyStore(t, dir, 40, 4)
	db := checkConverted(t, dir, want)
	if db.migrated != len(want)-1 {
		t.Fatalf("converted %d records, want %d", db.migrated, len(want)-1)
	}
	mustNil(t, db.Close())
	db2, _ := openTest(t, dir)
	if db2.migrated != 0 {
		t.Fatalf("second open converted %d records again", db2.migrated)
	}
}

// TestConversionSurvivesSIGKILL kills a real process in the middle of the
// conversion; the next open finishes it and nothing is lost. While it is
// unfinished, the directory says schema 2, so a release that knows only
// schema 1 refuses it.
func TestConversionSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	want := legacyStore(t, dir, 1500, 8)
	cmd := helper(t, "migrate", dir)
	out, err := cmd.StdoutPipe()
	mustNil(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	mustNil(t, cmd.Start())
	sc := bufio.NewScanner(out)
	for range 3 { // three conversion transactions committed
		if !sc.Scan() {
			t.Fatalf("child stopped before converting: %s", stderr.String())
		}
	}
	mustNil(t, cmd.Process.Kill()) // SIGKILL
	_ = cmd.Wait()

	raw, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(DefaultMemTableSize))
	mustNil(t, err)
	mustNil(t, raw.View(func(txn *badger.Txn) error {
		v, err := getRaw(txn, metaKey(metaSchema))
		if err != nil || string(v) != strconv.Itoa(SchemaVersion) {
			t.Errorf("m/schema after the kill = %q, %v; want %d, so that schema-1 releases refuse the directory", v, err, SchemaVersion)
		}
		if ok, err := exists(txn, metaKey(metaMigrate)); !ok || err != nil {
			t.Errorf("m/migrating missing after the kill (%v)", err)
		}
		return nil
	}))
	mustNil(t, raw.Close())

	start := time.Now()
	db, _ := openTest(t, dir, func(o *Options) { o.Now = time.Now })
	took := time.Since(start)
	if db.migrated == 0 || db.migrated >= len(want)-1 {
		t.Fatalf("reopen converted %d of %d records: the kill did not land mid-conversion", db.migrated, len(want)-1)
	}
	t.Logf("the killed process converted %d records, the reopen %d in %s", len(want)-1-db.migrated, db.migrated, took)
	mustNil(t, db.Close())
	checkConverted(t, dir, want)
}

// migrateHelper is the child of TestConversionSurvivesSIGKILL: it opens
// the store, printing a line after each conversion transaction.
func migrateHelper(dir string) {
	_, err := Open(Options{Dir: dir, onMigrate: func(n int) {
		b, _ := json.Marshal(n)
		_, _ = os.Stdout.Write(append(b, '\n'))
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Finished before the kill landed: the parent says so.
	os.Exit(0)
}
