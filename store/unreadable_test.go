package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
)

// TestUnreadableRecordsAreSkipped: undecodable records written straight
// into Badger are skipped by every listing and queue scan (a full batch of
// them cannot hide a readable one), read by id as an *UnreadableError,
// counted once each, and deleted by id without decoding.
func TestUnreadableRecordsAreSkipped(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.Registerer = reg })
	ctx := context.Background()
	raw := func(kv ...string) {
		t.Helper()
		mustNil(t, db.bdb.Load().Update(func(txn *badger.Txn) error {
			for i := 0; i < len(kv); i += 2 {
				if err := txn.Set([]byte(kv[i]), []byte(kv[i+1])); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	good := &rswebhooks.Webhook{ID: "GOOD", URI: "http://x/", User: rswebhooks.User{ID: "u1"}, CreatedUTC: t0}
	mustNil(t, db.CreateWebhook(ctx, good))
	raw("w/BAD", `{"Id":"BAD","IsPaused":"yes","User":{"Id":"u1"}}`, "wo/u1/BAD", "", "w/JUNK", "\xff")
	const bad = 10
	for i := range bad {
		id := fmt.Sprintf("00000000000000000000000%03d", i) // before every real id
		raw("e/"+id, "{", "ef/"+id, "")
	}
	mustNil(t, db.AppendEvent(ctx, &rswebhooks.Event{ID: rswebhooks.NewID(t0), Filter: "reports", Type: "Created", Time: t0}))
	raw("d/DBAD", `{"Id":"DBAD","State":7}`, "dw/GOOD/DBAD", "", "q/"+string(make([]byte, 8))+"/DBAD", "GOOD",
		"a/DBAD/\x00\x00\x00\x01", "nope")

	for _, owner := range []string{"", "u1"} {
		ws, err := db.ListWebhooks(ctx, owner)
		if err != nil || len(ws) != 1 || ws[0].ID != "GOOD" {
			t.Fatalf("ListWebhooks(%q) = %v, %v; want GOOD only", owner, ws, err)
		}
	}
	if c, err := db.CountWebhooks(ctx); err != nil || c != (rswebhooks.WebhookCounts{Active: 1}) {
		t.Fatalf("CountWebhooks = %+v, %v", c, err)
	}
	var ue *rswebhooks.UnreadableError
	if _, err := db.GetWebhook(ctx, "BAD"); !errors.As(err, &ue) || ue.Kind != rswebhooks.RecordWebhook || ue.ID != "BAD" || ue.Owner != "u1" {
		t.Fatalf("GetWebhook(BAD) = %v; want an rswebhooks.UnreadableError owned by u1", err)
	}
	evs, err := db.UnfannedEvents(ctx, bad/2) // fewer than the unreadable ones ahead of it
	if err != nil || len(evs) != 1 {
		t.Fatalf("UnfannedEvents = %d events, %v; want the readable one", len(evs), err)
	}
	if es, err := db.ListEvents(ctx, "", 0); err != nil || len(es) != 1 {
		t.Fatalf("ListEvents = %d, %v", len(es), err)
	}

	// The due delivery is listed until it is read; then the queue skips it
	// and neither reports it due nor counts it.
	refs, err := db.DueRefs(ctx, time.Now(), 0)
	if err != nil || len(refs) != 1 {
		t.Fatalf("DueRefs = %v, %v", refs, err)
	}
	if _, err := db.GetDelivery(ctx, "DBAD"); !errors.Is(err, rswebhooks.ErrUnreadable) {
		t.Fatalf("GetDelivery(DBAD) = %v; want rswebhooks.ErrUnreadable", err)
	}
	refs, _ = db.DueRefs(ctx, time.Now(), 0)
	_, ok, _ := db.NextDue(ctx)
	depth, _, _ := db.QueueStats(ctx)
	if len(refs) != 0 || ok || depth != 0 {
		t.Fatalf("after the read: DueRefs %v, NextDue ok=%v, depth %d; want the unreadable delivery skipped", refs, ok, depth)
	}
	if ds, err := db.ListDeliveries(ctx, "GOOD", 0); err != nil || len(ds) != 0 {
		t.Fatalf("ListDeliveries = %v, %v", ds, err)
	}
	if as, err := db.Attempts(ctx, "DBAD"); err != nil || len(as) != 0 {
		t.Fatalf("Attempts = %v, %v", as, err)
	}

	// Met again and again, each is counted once.
	_, _ = db.ListWebhooks(ctx, "")
	_, _ = db.UnfannedEvents(ctx, 0)
	us, err := db.UnreadableRecords(ctx)
	mustNil(t, err)
	want := map[string]int{rswebhooks.RecordWebhook: 2, rswebhooks.RecordEvent: bad, rswebhooks.RecordDelivery: 1, rswebhooks.RecordAttempt: 1}
	for kind, n := range want {
		if got := testutil.ToFloat64(db.m.UnreadableRecords.WithLabelValues(kind)); got != float64(n) {
			t.Errorf("unreadable %s counted %v times, want %d", kind, got, n)
		}
	}
	if len(us) != 2+bad+1+1 {
		t.Fatalf("UnreadableRecords = %v", us)
	}

	// Deleted by id, with their index keys.
	mustNil(t, db.DeleteWebhook(ctx, "BAD"))
	mustNil(t, db.DeleteUnreadable(ctx, rswebhooks.RecordWebhook, "JUNK"))
	mustNil(t, db.DeleteUnreadable(ctx, rswebhooks.RecordEvent, "00000000000000000000000000"))
	mustNil(t, db.DeleteUnreadable(ctx, rswebhooks.RecordAttempt, "DBAD.1"))
	mustNil(t, db.DeleteUnreadable(ctx, rswebhooks.RecordDelivery, "DBAD"))
	for _, k := range []string{"w/BAD", "wo/u1/BAD", "w/JUNK", "e/00000000000000000000000000", "ef/00000000000000000000000000",
		"d/DBAD", "dw/GOOD/DBAD", "q/" + string(make([]byte, 8)) + "/DBAD", "a/DBAD/\x00\x00\x00\x01"} {
		if _, found := expiry(t, db, []byte(k)); found {
			t.Errorf("%q survived its record's deletion", k)
		}
	}
	if err := db.DeleteUnreadable(ctx, rswebhooks.RecordDelivery, "DBAD"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Errorf("deleting twice: %v, want rswebhooks.ErrNotFound", err)
	}
	us, _ = db.UnreadableRecords(ctx)
	if len(us) != bad-1 {
		t.Errorf("after deleting: %d unreadable records listed, want %d", len(us), bad-1)
	}
}
