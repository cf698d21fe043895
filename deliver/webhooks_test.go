package deliver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/store"
)

// countingStore counts the webhook reads that reach the real store and can
// run a write in the middle of one.
type countingStore struct {
	*store.DB
	gets, lists int
	duringGet   func()
}

func (s *countingStore) GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error) {
	s.gets++
	w, err := s.DB.GetWebhook(ctx, id)
	if s.duringGet != nil {
		f := s.duringGet
		s.duringGet = nil
		f()
	}
	return w, err
}

func (s *countingStore) ListWebhooks(ctx context.Context, owner string) ([]*rswebhooks.Webhook, error) {
	s.lists++
	return s.DB.ListWebhooks(ctx, owner)
}

func TestWebhookCache(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := testutil.NewClock(t0)
	s := &countingStore{DB: db}
	c := newWebhookCache(s, clock.Now)
	hook := func(id string) *rswebhooks.Webhook {
		return &rswebhooks.Webhook{ID: id, URI: "http://127.0.0.1/" + id, Secret: "s", Filters: []string{"*"},
			User: rswebhooks.User{ID: "u1", Name: "alice"}, CreatedUTC: t0, UpdatedUTC: t0}
	}
	for _, id := range []string{"W1", "W2"} {
		if err := db.CreateWebhook(ctx, hook(id)); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) (*rswebhooks.Webhook, error) {
		t.Helper()
		return c.get(ctx, id)
	}
	wantGets := func(step string, n int) {
		t.Helper()
		if s.gets != n {
			t.Fatalf("%s: %d store reads, want %d", step, s.gets, n)
		}
	}

	if _, err := get("W1"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("W1"); err != nil {
		t.Fatal(err)
	}
	wantGets("cached", 1)

	// A pause that has returned is seen by the next read.
	if err := db.SetPaused(ctx, "W1", true); err != nil {
		t.Fatal(err)
	}
	if w, err := get("W1"); err != nil || !w.IsPaused {
		t.Fatalf("after SetPaused: %+v, %v; want paused", w, err)
	}
	wantGets("after pause", 2)

	// A delete likewise.
	if err := db.DeleteWebhook(ctx, "W1"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("W1"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("after DeleteWebhook: %v, want ErrNotFound", err)
	}

	// The TTL bounds an entry's age even without writes.
	if _, err := get("W2"); err != nil {
		t.Fatal(err)
	}
	n := s.gets
	clock.Set(t0.Add(webhookTTL - time.Millisecond))
	_, _ = get("W2")
	wantGets("within TTL", n)
	clock.Set(t0.Add(webhookTTL))
	_, _ = get("W2")
	wantGets("TTL expired", n+1)

	// A write committed while a read is under way: the read's (older)
	// result is returned but not kept.
	clock.Set(t0.Add(time.Hour))
	s.duringGet = func() {
		if err := db.SetPaused(ctx, "W2", true); err != nil {
			t.Error(err)
		}
	}
	c.mu.Lock()
	delete(c.byID, "W2")
	c.mu.Unlock()
	if w, _ := get("W2"); w.IsPaused {
		t.Fatal("read raced with the pause yet saw it; test is not testing the race")
	}
	if w, _ := get("W2"); !w.IsPaused {
		t.Fatal("an entry filled before a concurrent pause was kept")
	}

	// The list follows creates.
	l, err := c.all(ctx)
	if err != nil || len(l) != 1 {
		t.Fatalf("all = %d webhooks, %v", len(l), err)
	}
	if _, err := c.all(ctx); err != nil || s.lists != 1 {
		t.Fatalf("list not cached: %d store lists, %v", s.lists, err)
	}
	if err := db.CreateWebhook(ctx, hook("W3")); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.all(ctx); len(l) != 2 || s.lists != 2 {
		t.Fatalf("after create: %d webhooks, %d store lists", len(l), s.lists)
	}
	// Entries filled by the list serve gets.
	n = s.gets
	if w, err := get("W3"); err != nil || w.ID != "W3" {
		t.Fatalf("get W3 = %v, %v", w, err)
	}
	wantGets("filled by list", n)
}

// TestLoadSkipsStaleRefs: a queue reference listed before its delivery
// finished or was moved to a later time is not attempted.
func TestLoadSkipsStaleRefs(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	w := h.addWebhook("http://127.0.0.1:1/", nil)
	now := h.now().UTC()
	put := func(id string, state string, next time.Time) rswebhooks.DueRef {
		t.Helper()
		d := &rswebhooks.Delivery{ID: id, WebhookID: w.ID, EventID: "E1", State: rswebhooks.DeliveryPending,
			NextUTC: now, CreatedUTC: now, UpdatedUTC: now}
		if err := h.db.PutDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		refs, err := h.db.DueRefs(ctx, now, 0)
		if err != nil || len(refs) == 0 || refs[len(refs)-1].ID != id {
			t.Fatalf("DueRefs = %+v, %v", refs, err)
		}
		d.State, d.NextUTC = state, next
		if err := h.db.Complete(ctx, d, nil); err != nil {
			t.Fatal(err)
		}
		return refs[len(refs)-1]
	}
	if d := h.e.load(ctx, put("D1", rswebhooks.DeliveryPending, now)); d == nil || d.ID != "D1" {
		t.Fatalf("load of a due delivery = %+v", d)
	}
	if d := h.e.load(ctx, put("D2", rswebhooks.DeliverySucceeded, now)); d != nil {
		t.Fatalf("load of a finished delivery = %+v, want nil", d)
	}
	if d := h.e.load(ctx, put("D3", rswebhooks.DeliveryPending, now.Add(time.Hour))); d != nil {
		t.Fatalf("load of a delivery moved to later = %+v, want nil", d)
	}
	if d := h.e.load(ctx, rswebhooks.DueRef{ID: "nope", WebhookID: w.ID}); d != nil {
		t.Fatalf("load of an unknown delivery = %+v, want nil", d)
	}
}
