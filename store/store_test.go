package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/rswebhooks/rswebhooks"
)

// clock is an injectable, manually advanced clock.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

var t0 = time.Now().UTC().Truncate(time.Second)

func openTest(t *testing.T, dir string, mod ...func(*Options)) (*DB, *clock) {
	t.Helper()
	c := &clock{t: t0}
	opts := Options{Dir: dir, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), Now: c.Now}
	for _, m := range mod {
		m(&opts)
	}
	db, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, c
}

func newDB(t *testing.T) (*DB, *clock) { return openTest(t, t.TempDir()) }

func webhook(id, owner string, created time.Time) *rswebhooks.Webhook {
	return &rswebhooks.Webhook{
		ID: id, URI: "http://127.0.0.1/hook", Secret: "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
		Filters: []string{"*"}, User: rswebhooks.User{ID: owner, Name: owner},
		CreatedUTC: created, UpdatedUTC: created,
	}
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
func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{}, "Options.Dir is required"},
		{"negative retention", Options{Dir: dir, Retention: -time.Second}, "Options.Retention must not be negative"},
		{"tiny retention", Options{Dir: dir, Retention: time.Millisecond}, "Options.Retention must be at least 1s"},
		{"negative gc", Options{Dir: dir, GCInterval: -1}, "Options.GCInterval must not be negative"},
		{"small memtable", Options{Dir: dir, MemTableSize: 1000}, "Options.MemTableSize must be at least 1 MiB"},
		{"threshold too big", Options{Dir: dir, ValueThreshold: 4 << 20}, "Options.ValueThreshold must be between"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestWebhooks(t *testing.T) {
	db, c := newDB(t)
	ctx := context.Background()
	mustNil(t, db.CreateWebhook(ctx, webhook("W2", "alice", t0.Add(2*time.Second))))
	mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", t0.Add(time.Second))))
	mustNil(t, db.CreateWebhook(ctx, webhook("W3", "bob", t0.Add(3*time.Second))))

	if err := db.CreateWebhook(ctx, webhook("W1", "bob", t0)); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("duplicate create: %v, want rswebhooks.ErrConflict", err)
	}
	for _, bad := range []*rswebhooks.Webhook{nil, webhook("", "alice", t0), webhook("a/b", "alice", t0), webhook("W9", "", t0)} {
		if err := db.CreateWebhook(ctx, bad); err == nil {
			t.Fatalf("CreateWebhook(%+v) = nil, want error", bad)
		}
	}

	lists := []struct {
		owner string
		want  []string
	}{
		{"alice", []string{"W1", "W2"}},
		{"bob", []string{"W3"}},
		{"carol", []string{}},
		{"", []string{"W1", "W2", "W3"}},
	}
	for _, l := range lists {
		got, err := db.ListWebhooks(ctx, l.owner)
		mustNil(t, err)
		if g := ids(got, whID); !slices.Equal(g, l.want) {
			t.Errorf("ListWebhooks(%q) = %v, want %v", l.owner, g, l.want)
		}
	}

	got, err := db.GetWebhook(ctx, "W1")
	mustNil(t, err)
	if got.User.ID != "alice" || got.Secret == "" || !got.CreatedUTC.Equal(t0.Add(time.Second)) {
		t.Fatalf("GetWebhook = %+v", got)
	}
	if _, err := db.GetWebhook(ctx, "nope"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetWebhook(nope) = %v, want rswebhooks.ErrNotFound", err)
	}

	// Update moves the owner index and keeps CreatedUTC when zero.
	upd := webhook("W1", "bob", time.Time{})
	upd.Description = "moved"
	mustNil(t, db.UpdateWebhook(ctx, upd))
	got, _ = db.GetWebhook(ctx, "W1")
	if got.Description != "moved" || !got.CreatedUTC.Equal(t0.Add(time.Second)) {
		t.Fatalf("after update: %+v", got)
	}
	alice, _ := db.ListWebhooks(ctx, "alice")
	bob, _ := db.ListWebhooks(ctx, "bob")
	if !slices.Equal(ids(alice, whID), []string{"W2"}) || !slices.Equal(ids(bob, whID), []string{"W1", "W3"}) {
		t.Fatalf("owner index after move: alice %v bob %v", ids(alice, whID), ids(bob, whID))
	}
	if err := db.UpdateWebhook(ctx, webhook("nope", "bob", t0)); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("UpdateWebhook(nope) = %v", err)
	}

	// Pause / count.
	c.t = t0.Add(time.Hour)
	mustNil(t, db.SetPaused(ctx, "W2", true))
	got, _ = db.GetWebhook(ctx, "W2")
	if !got.IsPaused || !got.UpdatedUTC.Equal(t0.Add(time.Hour)) {
		t.Fatalf("SetPaused: %+v", got)
	}
	if err := db.SetPaused(ctx, "nope", true); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("SetPaused(nope) = %v", err)
	}
	counts, err := db.CountWebhooks(ctx)
	mustNil(t, err)
	if counts != (rswebhooks.WebhookCounts{Active: 2, Paused: 1}) {
		t.Fatalf("CountWebhooks = %+v; want 2 active, 1 paused", counts)
	}

	// Delete.
	mustNil(t, db.DeleteWebhook(ctx, "W2"))
	if err := db.DeleteWebhook(ctx, "W2"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	alice, _ = db.ListWebhooks(ctx, "alice")
	if len(alice) != 0 {
		t.Fatalf("alice after delete: %v", ids(alice, whID))
	}
	n, err := db.DeleteWebhooksOf(ctx, "bob")
	mustNil(t, err)
	if n != 2 {
		t.Fatalf("DeleteWebhooksOf(bob) = %d, want 2", n)
	}
	if _, err := db.DeleteWebhooksOf(ctx, ""); err == nil {
		t.Fatal("DeleteWebhooksOf(\"\") = nil, want error")
	}
	all, _ := db.ListWebhooks(ctx, "")
	if len(all) != 0 {
		t.Fatalf("left after deletes: %v", ids(all, whID))
	}
}

func TestDeleteWebhooksOfManyChunks(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	const n = deleteChunk*2 + 7
	for i := range n {
		mustNil(t, db.CreateWebhook(ctx, webhook(fmt.Sprintf("W%05d", i), "alice", t0)))
	}
	mustNil(t, db.CreateWebhook(ctx, webhook("B", "bob", t0)))
	got, err := db.DeleteWebhooksOf(ctx, "alice")
	mustNil(t, err)
	if got != n {
		t.Fatalf("deleted %d, want %d", got, n)
	}
	counts, _ := db.CountWebhooks(ctx)
	if counts.Active != 1 {
		t.Fatalf("remaining = %d, want 1 (bob's)", counts.Active)
	}
}

func event(id string) *rswebhooks.Event {
	return &rswebhooks.Event{ID: id, Filter: "reports", Type: "Created", ResourceID: "r-" + id, Time: t0}
}

func delivery(id, wh, ev, state string, next time.Time) *rswebhooks.Delivery {
	return &rswebhooks.Delivery{ID: id, WebhookID: wh, EventID: ev, Event: *event(ev), State: state, NextUTC: next, CreatedUTC: t0}
}

func TestDueOrderAndQueue(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	if _, ok, err := db.NextDue(ctx); ok || err != nil {
		t.Fatalf("NextDue on empty = %v, %v", ok, err)
	}
	puts := []*rswebhooks.Delivery{
		delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(3*time.Second)),
		delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(1*time.Second)),
		delivery("D3", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second)),
		delivery("D4", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour)),
		delivery("D5", "W2", "E1", rswebhooks.DeliverySucceeded, t0),
		delivery("D6", "W1", "E1", rswebhooks.DeliveryPending, time.Time{}), // zero: due at once
	}
	for _, d := range puts {
		mustNil(t, db.PutDelivery(ctx, d))
	}
	if err := db.PutDelivery(ctx, puts[0]); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("duplicate PutDelivery = %v", err)
	}
	cases := []struct {
		now   time.Time
		limit int
		want  []string
	}{
		{t0.Add(-time.Hour), 0, []string{"D6"}},
		{t0.Add(2 * time.Second), 0, []string{"D6", "D2", "D3"}},
		{t0.Add(3 * time.Second), 2, []string{"D6", "D2"}},
		{t0.Add(3 * time.Second), 0, []string{"D6", "D2", "D3", "D1"}},
		{t0.Add(24 * time.Hour), 0, []string{"D6", "D2", "D3", "D1", "D4"}},
	}
	for _, tc := range cases {
		got, err := db.Due(ctx, tc.now, tc.limit)
		mustNil(t, err)
		if g := ids(got, dID); !slices.Equal(g, tc.want) {
			t.Errorf("Due(%v, %d) = %v, want %v", tc.now.Sub(t0), tc.limit, g, tc.want)
		}
	}
	next, ok, err := db.NextDue(ctx)
	mustNil(t, err)
	if !ok || !next.IsZero() {
		t.Fatalf("NextDue = %v %v, want zero time (D6)", next, ok)
	}
	depth, _, _ := db.QueueStats(ctx)
	if depth != 5 {
		t.Fatalf("depth = %d, want 5", depth)
	}
	w1, err := db.ListDeliveries(ctx, "W1", 0)
	mustNil(t, err)
	if g := ids(w1, dID); !slices.Equal(g, []string{"D6", "D2", "D1"}) {
		t.Fatalf("ListDeliveries(W1) = %v, want newest first", g)
	}
	w2, _ := db.ListDeliveries(ctx, "W2", 2)
	if g := ids(w2, dID); !slices.Equal(g, []string{"D5", "D4"}) {
		t.Fatalf("ListDeliveries(W2, 2) = %v", g)
	}
	none, _ := db.ListDeliveries(ctx, "W", 0) // prefix of W1/W2 must not match
	if len(none) != 0 {
		t.Fatalf("ListDeliveries(W) = %v", ids(none, dID))
	}
}

func TestCompleteMovesQueueKey(t *testing.T) {
	db, c := newDB(t)
	ctx := context.Background()
	d := delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0)
	mustNil(t, db.PutDelivery(ctx, d))

	// Attempt 1 fails: rescheduled.
	d.Attempts, d.NextUTC, d.LastStatus = 1, t0.Add(time.Minute), 500
	mustNil(t, db.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: t0, StatusCode: 500}))
	if due, _ := db.Due(ctx, t0.Add(30*time.Second), 0); len(due) != 0 {
		t.Fatalf("still due at old time: %v", ids(due, dID))
	}
	due, _ := db.Due(ctx, t0.Add(time.Minute), 0)
	if g := ids(due, dID); !slices.Equal(g, []string{"D1"}) || due[0].Attempts != 1 || due[0].LastStatus != 500 {
		t.Fatalf("Due after reschedule = %+v", due)
	}
	if depth, _, _ := db.QueueStats(ctx); depth != 1 {
		t.Fatalf("depth = %d after reschedule, want 1 (old key removed)", depth)
	}

	// Attempt 2 succeeds: leaves the queue.
	c.t = t0.Add(time.Minute)
	d.Attempts, d.State, d.LastStatus = 2, rswebhooks.DeliverySucceeded, 200
	mustNil(t, db.Complete(ctx, d, &rswebhooks.Attempt{DeliveryID: "D1", N: 2, StartedUTC: c.t, StatusCode: 200}))
	if depth, _, _ := db.QueueStats(ctx); depth != 0 {
		t.Fatalf("depth = %d after success, want 0", depth)
	}
	if _, ok, _ := db.NextDue(ctx); ok {
		t.Fatal("NextDue reports a due delivery after success")
	}
	at, err := db.Attempts(ctx, "D1")
	mustNil(t, err)
	if g := ids(at, attN); !slices.Equal(g, []string{"1", "2"}) || at[0].DeliveryID != "D1" || at[1].StatusCode != 200 {
		t.Fatalf("Attempts = %+v", at)
	}
	got, _ := db.GetDelivery(ctx, "D1")
	if got.State != rswebhooks.DeliverySucceeded || got.Attempts != 2 {
		t.Fatalf("GetDelivery = %+v", got)
	}

	// Attempt numbers sort numerically past 255 (big-endian).
	for _, n := range []int{300, 10} {
		mustNil(t, db.Complete(ctx, d, &rswebhooks.Attempt{N: n}))
	}
	at, _ = db.Attempts(ctx, "D1")
	if g := ids(at, attN); !slices.Equal(g, []string{"1", "2", "10", "300"}) {
		t.Fatalf("attempt order = %v", g)
	}

	bad := []struct {
		name string
		d    *rswebhooks.Delivery
		a    *rswebhooks.Attempt
		want error
	}{
		{"unknown delivery", delivery("nope", "W1", "E1", rswebhooks.DeliveryFailed, t0), nil, rswebhooks.ErrNotFound},
		{"attempt of another delivery", d, &rswebhooks.Attempt{DeliveryID: "D2", N: 3}, nil},
		{"attempt zero", d, &rswebhooks.Attempt{N: 0}, nil},
		{"nil delivery", nil, nil, nil},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := db.Complete(ctx, b.d, b.a)
			if err == nil || (b.want != nil && !errors.Is(err, b.want)) {
				t.Fatalf("Complete = %v, want error %v", err, b.want)
			}
		})
	}
}

func TestRedeliver(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	mustNil(t, db.PutDelivery(ctx, delivery("P", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour))))
	f := delivery("F", "W1", "E1", rswebhooks.DeliveryFailed, time.Time{})
	f.Attempts, f.Reason = 8, "retries exhausted"
	mustNil(t, db.PutDelivery(ctx, f))

	if _, err := db.Redeliver(ctx, "nope", t0); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("Redeliver(nope) = %v", err)
	}
	now := t0.Add(2 * time.Minute)
	// A pending delivery waiting for a later retry is brought forward.
	p, err := db.Redeliver(ctx, "P", now)
	mustNil(t, err)
	if p.State != rswebhooks.DeliveryPending || !p.NextUTC.Equal(now) {
		t.Fatalf("pending delivery not brought forward: %+v", p)
	}
	// One already due is left as it is.
	p2, err := db.Redeliver(ctx, "P", now.Add(time.Minute))
	mustNil(t, err)
	if !p2.NextUTC.Equal(now) {
		t.Fatalf("due delivery moved: %+v", p2)
	}
	r, err := db.Redeliver(ctx, "F", now)
	mustNil(t, err)
	if r.State != rswebhooks.DeliveryPending || !r.NextUTC.Equal(now) || r.Attempts != 8 || r.Reason != "" {
		t.Fatalf("Redeliver = %+v", r)
	}
	due, _ := db.Due(ctx, now, 0)
	if g := ids(due, dID); !slices.Equal(g, []string{"F", "P"}) && !slices.Equal(g, []string{"P", "F"}) {
		t.Fatalf("Due after redeliver = %v", g)
	}
	if depth, _, _ := db.QueueStats(ctx); depth != 2 {
		t.Fatalf("depth = %d, want 2", depth)
	}
}

func TestSeenExecutionsAndMeta(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	mustNil(t, db.MarkExecutionsSeen(ctx, []string{"x1", "x2"}))
	seen, err := db.SeenExecutions(ctx, []string{"x1", "x3", "x2"})
	mustNil(t, err)
	if len(seen) != 2 || !seen["x1"] || !seen["x2"] || seen["x3"] {
		t.Fatalf("SeenExecutions = %v", seen)
	}
	if err := db.MarkExecutionsSeen(ctx, []string{"ok", ""}); err == nil {
		t.Fatal("empty execution id accepted")
	}

	if _, err := db.GetMeta(ctx, "cursor"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("GetMeta missing = %v", err)
	}
	mustNil(t, db.PutMeta(ctx, "cursor", []byte("42")))
	v, err := db.GetMeta(ctx, "cursor")
	mustNil(t, err)
	if string(v) != "42" {
		t.Fatalf("GetMeta = %q", v)
	}
	for _, k := range []string{"", "schema", "ping"} {
		if err := db.PutMeta(ctx, k, nil); err == nil {
			t.Fatalf("PutMeta(%q) accepted", k)
		}
	}
	mustNil(t, db.Ping(ctx))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping(cancelled) = %v", err)
	}
}

func TestScanDueAfterResumes(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	// D2 and D3 share a due time: the order within it is by id.
	for _, d := range []*rswebhooks.Delivery{
		delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(1*time.Second)),
		delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second)),
		delivery("D3", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(2*time.Second)),
		delivery("D4", "W2", "E1", rswebhooks.DeliveryPending, t0.Add(3*time.Second)),
		delivery("D5", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(4*time.Second)),
		delivery("D6", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Hour)),
	} {
		mustNil(t, db.PutDelivery(ctx, d))
	}
	now := t0.Add(time.Minute)
	var head []rswebhooks.DueRef
	mustNil(t, db.ScanDue(ctx, now, 2, func(r rswebhooks.DueRef) bool { head = append(head, r); return true }))
	if g := []string{head[0].ID, head[1].ID}; len(head) != 2 || !slices.Equal(g, []string{"D1", "D2"}) {
		t.Fatalf("ScanDue max 2 = %+v", head)
	}
	scan := func(after rswebhooks.DueRef, max int) (out []string) {
		t.Helper()
		mustNil(t, db.ScanDueAfter(ctx, now, after, max, func(r rswebhooks.DueRef) bool { out = append(out, r.ID+"/"+r.WebhookID); return true }))
		return out
	}
	if g := scan(head[1], 2); !slices.Equal(g, []string{"D3/W2", "D4/W2"}) {
		t.Fatalf("ScanDueAfter(D2, 2) = %v, want D3 (same due time, later id) and D4", g)
	}
	// The ref's delivery finished meanwhile: the scan still resumes after its place.
	d2 := delivery("D2", "W1", "E1", rswebhooks.DeliverySucceeded, t0.Add(2*time.Second))
	mustNil(t, db.Complete(ctx, d2, nil))
	if g := scan(head[1], 0); !slices.Equal(g, []string{"D3/W2", "D4/W2", "D5/W1"}) {
		t.Fatalf("ScanDueAfter(finished D2) = %v, want D3 D4 D5 (D6 not due)", g)
	}
	if g := scan(rswebhooks.DueRef{ID: "D5", Due: t0.Add(4 * time.Second)}, 0); len(g) != 0 {
		t.Fatalf("ScanDueAfter(last due) = %v, want none", g)
	}
}
