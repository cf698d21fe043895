package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// schemaAt migrates an empty database to version v with the embedded
// migrations' files, as a release of that schema did.
func schemaAt(t *testing.T, url string, v int) {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `CREATE TABLE rswebhooks_schema (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= v; i++ {
		files, _ := filepath.Glob(filepath.Join("migrations", fmt.Sprintf("%04d_*.sql", i)))
		if len(files) != 1 {
			t.Fatalf("migration %d: files %v", i, files)
		}
		sql, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(sql)); err != nil {
			t.Fatalf("migration %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO rswebhooks_schema (version) VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
}

// A database of schema 3 with deliveries in flight (pending ones, one
// leased by a node that died, one whose event differs from the stored
// event's, a ping without a stored event, a finished one) is upgraded to 4
// in place: each reads back as it was written, every pending one is
// delivered exactly once with its event, and the rows written since hold
// their state apart from the event.
func TestSchema3DeliveriesUpgradeAndDeliverOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	schemaAt(t, url, 3)
	ctx := context.Background()
	conn := connect(t, url)

	now := time.Now().UTC().Truncate(time.Millisecond)
	at := now.Add(-time.Minute)
	var want []*rswebhooks.Delivery
	put := func(d *rswebhooks.Delivery, expires *time.Time) {
		t.Helper()
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO deliveries (id, webhook_id, event_id, state, next_at, expires_at, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.ID, d.WebhookID, d.EventID, d.State, d.NextUTC, expires, body); err != nil {
			t.Fatal(err)
		}
		want = append(want, d)
	}
	const pending = 12
	var resources []string
	for i := range pending {
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(at.Add(time.Duration(i) * time.Millisecond)), Filter: "reports", Type: "Created",
			ResourceID: "r-" + string(rune('a'+i)), ResourceName: "Quartal ü € \"x\" <b>", UserID: "u1",
			Time: at.Add(time.Duration(i) * time.Millisecond), Missing: []string{"ResourceName"},
			Documents: []rswebhooks.Document{{ID: "doc1", Name: "a.pdf"}}}
		evBody, _ := json.Marshal(ev)
		if _, err := conn.Exec(ctx, `INSERT INTO events (id, at, fanned, expires_at, body) VALUES ($1, $2, true, $3, $4)`,
			ev.ID, ev.Time, now.Add(time.Hour), evBody); err != nil {
			t.Fatal(err)
		}
		d := &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, "W1"), WebhookID: "W1", EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliveryPending, NextUTC: at, CreatedUTC: at, UpdatedUTC: at}
		if i == 1 {
			d.Event.Note = "a snapshot unlike the stored event"
		}
		if i == 2 {
			d.Attempts, d.LastStatus, d.LastError = 1, 503, "unavailable"
		}
		put(d, nil)
		resources = append(resources, ev.ResourceID)
	}
	// Leased by a node of schema 3 that died: its lease expired.
	if _, err := conn.Exec(ctx, `INSERT INTO leases (delivery_id, webhook_id, holder, until) VALUES ($1, 'W1', 'dead-node', $2)`,
		want[3].ID, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	ping := &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: "ping", Type: "Ping", ResourceID: "r-ping", Time: at}
	put(&rswebhooks.Delivery{ID: rswebhooks.NewID(at), WebhookID: "W1", EventID: ping.ID, Event: *ping, Ping: true,
		State: rswebhooks.DeliveryPending, NextUTC: at, CreatedUTC: at, UpdatedUTC: at}, nil)
	resources = append(resources, ping.ResourceID)
	doneEv := &rswebhooks.Event{ID: rswebhooks.NewID(at.Add(-time.Hour)), Filter: "reports", Type: "Deleted", ResourceID: "r-done",
		Time: at.Add(-time.Hour)}
	exp := now.Add(time.Hour)
	put(&rswebhooks.Delivery{ID: rswebhooks.DeliveryID(doneEv, "W1"), WebhookID: "W1", EventID: doneEv.ID, Event: *doneEv,
		State: rswebhooks.DeliverySucceeded, Attempts: 1, LastStatus: 204, CreatedUTC: at, UpdatedUTC: at}, &exp)

	db := open(t, url, storetest.Config{})
	if v := query[int](t, url, "SELECT max(version) FROM rswebhooks_schema"); v != pgstore.SchemaVersion() {
		t.Fatalf("schema version after Open = %d, want %d", v, pgstore.SchemaVersion())
	}
	same := func(when string, got, want *rswebhooks.Delivery) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Fatalf("%s: delivery %s reads back as\n%s\nwant\n%s", when, want.ID, g, w)
		}
	}
	for _, d := range want {
		got, err := db.GetDelivery(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		same("after the upgrade", got, d)
	}
	if l, err := db.ListDeliveries(ctx, "W1", 0); err != nil || len(l) != len(want) {
		t.Fatalf("ListDeliveries after the upgrade = %d deliveries, %v; want %d", len(l), err, len(want))
	}

	// A new event, fanned out by the new release, shares one snapshot.
	rcv := newPeakReceiver(pending + 2)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	if err := db.CreateWebhook(ctx, &rswebhooks.Webhook{ID: "W1", URI: srv.URL, Secret: "0123456789abcdef0123456789abcdef",
		Filters: []string{"*"}, User: rswebhooks.User{ID: "u1"}, CreatedUTC: now}); err != nil {
		t.Fatal(err)
	}
	fresh := appendEvent(t, db, 25)
	resources = append(resources, fresh.ResourceID)
	e := engine(t, db, "node-4", nil)
	runEngine(t, e)
	e.Wake()
	rcv.wait(t) // each exactly once
	rcv.mu.Lock()
	got := slices.Clone(rcv.order)
	rcv.mu.Unlock()
	slices.Sort(got)
	slices.Sort(resources)
	if !slices.Equal(got, resources) {
		t.Fatalf("notifications carried resource ids %v, want %v (each delivery with its event)", got, resources)
	}

	// Delivered: the state written by schema 4, the event as before (the
	// receiver answers before the attempt is recorded: wait for that).
	testutil.Eventually(t, 10*time.Second, "attempts were not all recorded", func() bool {
		return query[int](t, url, "SELECT count(*) FROM deliveries WHERE state = 'pending'") == 0
	})
	for _, d := range want {
		got, err := db.GetDelivery(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.State == rswebhooks.DeliveryPending && got.State != rswebhooks.DeliverySucceeded {
			t.Fatalf("delivery %s is %s after delivery", d.ID, got.State)
		}
		d.State, d.Attempts, d.LastStatus, d.LastError, d.NextUTC, d.UpdatedUTC, d.AccessPending =
			got.State, got.Attempts, got.LastStatus, got.LastError, got.NextUTC, got.UpdatedUTC, got.AccessPending
		same("after delivery", got, d)
	}
	// The rewritten rows of schema 3 keep their former body as their
	// event; the new delivery's row holds no event, its snapshot is shared.
	if n := query[int](t, url, `SELECT count(*) FROM deliveries WHERE state = 'succeeded' AND NOT shared AND own_event IS NOT NULL
		AND position('"Event"' in convert_from(record, 'UTF8')) = 0`); n != pending+1 {
		t.Fatalf("%d rewritten schema-3 rows keep their event apart from the record, want %d", n, pending+1)
	}
	fd, err := db.GetDelivery(ctx, rswebhooks.DeliveryID(fresh, "W1"))
	if err != nil || fd.Event.ResourceID != fresh.ResourceID || fd.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("the new delivery = %+v, %v", fd, err)
	}
	if n := query[int](t, url, `SELECT count(*) FROM deliveries d JOIN snapshots s ON s.event_id = d.event_id
		WHERE d.shared AND d.own_event IS NULL AND d.event_id = $1 AND position('"Event"' in convert_from(d.record, 'UTF8')) = 0`,
		fresh.ID); n != 1 {
		t.Fatalf("the new delivery's row shares its event's snapshot: %d rows, want 1", n)
	}
}

// fanOutPending appends an event for resource r1 and fans it out to a
// pending, due delivery for each of webhooks, through db.
func fanOutPending(t *testing.T, db rswebhooks.Store, webhooks ...string) []*rswebhooks.Delivery {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", ResourceID: "r1", Time: now}
	if err := db.AppendEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	var ds []*rswebhooks.Delivery
	for _, w := range webhooks {
		ds = append(ds, &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, w), WebhookID: w, EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now})
	}
	if err := db.FanOut(ctx, ev.ID, ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// An event's snapshot goes with the last delivery that refers to it.
func TestSnapshotGoesWithItsLastDelivery(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url, storetest.Config{})
	ctx := context.Background()
	ds := fanOutPending(t, db, "W1", "W2")
	snapshots := func() int { return query[int](t, url, "SELECT count(*) FROM snapshots") }
	if n := snapshots(); n != 1 {
		t.Fatalf("%d snapshots for one event's two deliveries, want 1", n)
	}
	if err := db.DiscardDelivery(ctx, ds[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := snapshots(); n != 1 {
		t.Fatalf("%d snapshots while a delivery refers to it, want 1", n)
	}
	if got, err := db.GetDelivery(ctx, ds[1].ID); err != nil || got.Event.ResourceID != "r1" {
		t.Fatalf("the other delivery = %+v, %v", got, err)
	}
	if err := db.DiscardDelivery(ctx, ds[1].ID); err != nil {
		t.Fatal(err)
	}
	if n := snapshots(); n != 0 {
		t.Fatalf("%d snapshots after their last delivery was discarded, want 0", n)
	}
	if err := db.DiscardDelivery(ctx, ds[1].ID); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("discarding it again = %v, want ErrNotFound", err)
	}
}

// A delivery whose shared snapshot is gone (removed by hand) is an error
// wherever it is read, never a delivery without its event.
func TestMissingSnapshotIsAnError(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url, storetest.Config{})
	ctx := context.Background()
	d := fanOutPending(t, db, "W1")[0]
	query[int](t, url, "WITH x AS (DELETE FROM snapshots RETURNING 1) SELECT count(*) FROM x")
	if got, err := db.GetDelivery(ctx, d.ID); err == nil {
		t.Fatalf("GetDelivery without its snapshot = %+v, want an error", got)
	}
	if got, err := db.Lease(ctx, d.ID, time.Now(), rswebhooks.LeaseRequest{Holder: "n1", For: time.Minute}); err == nil {
		t.Fatalf("Lease without its snapshot = %+v, want an error", got)
	}
	if l, err := db.ListDeliveries(ctx, "W1", 0); err != nil || len(l) != 0 {
		t.Fatalf("ListDeliveries = %d deliveries, %v; want the unreadable one skipped", len(l), err)
	}
}

// A database of schema 4 with attempts is upgraded to 5 in place: the
// attempts' foreign key is gone, the attempts read back as they were, and
// the statements that delete deliveries delete their attempts themselves
// (a discarded delivery's, an expired one's, though its attempts' own
// retention runs later), leaving other deliveries' attempts.
func TestSchema4AttemptsUpgrade(t *testing.T) {
	url := pgtest.NewDatabase(t)
	schemaAt(t, url, 4)
	ctx := context.Background()
	conn := connect(t, url)
	if n := query[int](t, url, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'attempts'::regclass AND contype = 'f'`); n != 1 {
		t.Fatalf("schema 4 has %d foreign keys on attempts, want 1", n)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := now.Add(-time.Hour)
	put := func(resource string, expires time.Time) *rswebhooks.Delivery {
		t.Helper()
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: "reports", Type: "Created", ResourceID: resource, Time: at}
		d := &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, "W1"), WebhookID: "W1", EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliverySucceeded, Attempts: 2, LastStatus: 204, CreatedUTC: at, UpdatedUTC: at}
		rec, err := json.Marshal(d) // a row of schema 3 not rewritten since: its record holds its event
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO deliveries (id, webhook_id, event_id, state, next_at, expires_at, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.ID, d.WebhookID, d.EventID, d.State, at, expires, rec); err != nil {
			t.Fatal(err)
		}
		for n := 1; n <= 2; n++ {
			a, _ := json.Marshal(&rswebhooks.Attempt{DeliveryID: d.ID, N: n, StartedUTC: at, StatusCode: 500 - 296*(n-1)})
			if _, err := conn.Exec(ctx, `INSERT INTO attempts (delivery_id, n, expires_at, body) VALUES ($1, $2, $3, $4)`,
				d.ID, n, now.Add(time.Hour), a); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	kept := put("r-kept", now.Add(time.Hour))
	discarded := put("r-discarded", now.Add(time.Hour))
	expired := put("r-expired", now.Add(-time.Minute))

	db := open(t, url, storetest.Config{})
	if v := query[int](t, url, "SELECT max(version) FROM rswebhooks_schema"); v != 5 {
		t.Fatalf("schema version after Open = %d, want 5", v)
	}
	if n := query[int](t, url, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'attempts'::regclass AND contype = 'f'`); n != 0 {
		t.Fatalf("%d foreign keys left on attempts, want 0", n)
	}
	attempts := func(id string) int {
		return query[int](t, url, "SELECT count(*) FROM attempts WHERE delivery_id = $1", id)
	}
	as, err := db.Attempts(ctx, kept.ID)
	if err != nil || len(as) != 2 || as[0].StatusCode != 500 || as[1].StatusCode != 204 {
		t.Fatalf("attempts after the upgrade = %+v, %v", as, err)
	}
	if err := db.DiscardDelivery(ctx, discarded.ID); err != nil {
		t.Fatal(err)
	}
	if n := attempts(discarded.ID); n != 0 {
		t.Fatalf("a discarded delivery left %d attempts", n)
	}
	if err := db.DiscardDelivery(ctx, discarded.ID); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("discarding it again = %v, want ErrNotFound", err)
	}
	if err := db.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetDelivery(ctx, expired.ID); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("the expired delivery after retention: %v, want ErrNotFound", err)
	}
	if n := attempts(expired.ID); n != 0 {
		t.Fatalf("an expired delivery left %d attempts (their own retention ends in an hour)", n)
	}
	if n := attempts(kept.ID); n != 2 {
		t.Fatalf("the kept delivery has %d attempts, want 2", n)
	}
	if err := db.DeleteUnreadable(ctx, "delivery", kept.ID); err != nil {
		t.Fatal(err)
	}
	if n := attempts(kept.ID); n != 0 {
		t.Fatalf("a delivery deleted as unreadable left %d attempts", n)
	}
	if err := db.DeleteUnreadable(ctx, "delivery", kept.ID); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("deleting it again = %v, want ErrNotFound", err)
	}
}
