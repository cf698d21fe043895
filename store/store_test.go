package store

import (
	"context"
	"fmt"
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

func dID(d *rswebhooks.Delivery) string { return d.ID }
func evID(e *rswebhooks.Event) string   { return e.ID }
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
