package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
)

// wakeCounter is an admin.Deliveries that records the replay's wake-up.
type wakeCounter struct {
	admin.Deliveries
	n chan struct{}
}

func (w *wakeCounter) Wake() { w.n <- struct{}{} }

func TestReplayQueuesWhatTheOwnerMayReadAsNewDeliveries(t *testing.T) {
	wake := &wakeCounter{n: make(chan struct{}, 10)}
	f := newFeedFixture(t, envOptions{deliveries: wake})
	path := "/api/webhooks/registrations/" + f.aliceHook.ID + "/replay"
	since := f.events[0].Time.Add(-time.Second)
	// A dry run counts and queues nothing.
	res := f.e.do("POST", path, f.alice, map[string]any{"Since": since, "DryRun": true})
	var dry admin.ReplayResult
	res.json(t, &dry)
	if res.status != 200 || dry.Queued != 3 || dry.Matched != 5 || !dry.Done {
		t.Fatalf("dry run: %d %+v, want 200 with Queued 3, Matched 5", res.status, dry)
	}
	if ds, err := f.e.db.ListDeliveries(context.Background(), f.aliceHook.ID, 0); err != nil || len(ds) != len(f.events) {
		t.Fatalf("after a dry run alice's webhook has %d deliveries (%v), want the %d of the fixture", len(ds), err, len(f.events))
	}
	res = f.e.do("POST", path, f.alice, map[string]any{"Since": since})
	if res.status != 202 {
		t.Fatalf("replay: %d %s", res.status, res.body)
	}
	var out admin.ReplayResult
	res.json(t, &out)
	// Five events match alice's all-filters webhook; she may read the three
	// about the report, not the two about the data connection.
	if out.Queued != 3 || out.Matched != 5 || !out.Done || out.Next != nil {
		t.Fatalf("replay = %+v, want Queued 3, Matched 5, Done", out)
	}
	select {
	case <-wake.n:
	default:
		t.Fatal("the delivery engine was not woken")
	}
	ctx := context.Background()
	for i, ev := range f.events {
		ds, err := f.e.db.EventDeliveries(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		var replayed []*rswebhooks.Delivery
		for _, d := range ds {
			if d.WebhookID == f.aliceHook.ID && d.ID != rswebhooks.DeliveryID(ev, f.aliceHook.ID) {
				replayed = append(replayed, d)
			}
		}
		want := 0
		if ev.Filter == "reports" {
			want = 1
		}
		if len(replayed) != want {
			t.Fatalf("event %d (%s): %d replayed deliveries, want %d", i, ev.Filter, len(replayed), want)
		}
		if want == 1 {
			d := replayed[0]
			if d.State != rswebhooks.DeliveryPending || !d.AccessPending || d.EventID != ev.ID || d.Event.ID != ev.ID {
				t.Fatalf("replayed delivery %+v: want pending, access to be decided, same event", d)
			}
		}
	}
	// Only from Since on, and only up to Until.
	res = f.e.do("POST", path, f.alice, map[string]any{"Since": f.events[2].Time, "Until": f.events[4].Time})
	res.json(t, &out)
	if res.status != 202 || out.Queued != 1 || out.Matched != 2 {
		t.Fatalf("replay of [2,4): %d %+v, want Queued 1 (event 2), Matched 2", res.status, out)
	}
	// The owner or an administrator only; someone else's webhook is 404.
	if res := f.e.do("POST", path, f.bob, map[string]any{"Since": since}); res.status != 404 {
		t.Fatalf("bob replays alice's webhook: %d %s", res.status, res.body)
	}
	res = f.e.do("POST", path, operatorToken, map[string]any{"Since": since})
	res.json(t, &out)
	if res.status != 202 || out.Queued != 3 {
		t.Fatalf("operator replays alice's webhook: %d %+v", res.status, out)
	}
}

func TestReplayIsBoundedAndContinues(t *testing.T) {
	f := newFeedFixture(t, envOptions{maxReplay: 2})
	path := "/api/webhooks/registrations/" + f.aliceHook.ID + "/replay"
	req := map[string]any{"Since": f.events[0].Time.Add(-time.Second)}
	var matched, queued []int
	for n := 0; n < 10; n++ {
		res := f.e.do("POST", path, operatorToken, req)
		var out admin.ReplayResult
		res.json(t, &out)
		if res.status != 202 || out.Matched > 2 {
			t.Fatalf("call %d: %d %+v", n, res.status, out)
		}
		matched, queued = append(matched, out.Matched), append(queued, out.Queued)
		if out.Done {
			break
		}
		if out.Next == nil || out.Next.After == "" {
			t.Fatalf("call %d: not done but no Next: %+v", n, out)
		}
		req = map[string]any{"Since": out.Next.Since, "Until": out.Next.Until, "After": out.Next.After}
	}
	if !slices.Equal(matched, []int{2, 2, 1}) || !slices.Equal(queued, []int{1, 1, 1}) {
		t.Fatalf("matched per call %v, queued %v; want [2 2 1] and [1 1 1]", matched, queued)
	}
}

func TestReplayRefusesBadInput(t *testing.T) {
	f := newFeedFixture(t)
	path := "/api/webhooks/registrations/" + f.aliceHook.ID + "/replay"
	now := f.e.clock.Now()
	for _, c := range []struct {
		body any
		want string
	}{
		{"", "request body: a JSON object"},
		{"[]", "request body: must be a JSON object"},
		{map[string]any{}, "Since: required"},
		{map[string]any{"Since": "yesterday"}, "Since: must be an RFC 3339 time"},
		{map[string]any{"Since": now.Add(time.Hour)}, "Since: must not be in the future"},
		{map[string]any{"Since": now.Add(-time.Hour), "Until": now.Add(-2 * time.Hour)}, "Until: must be after Since"},
		{map[string]any{"Since": now.Add(-time.Hour), "After": "nope"}, "After: must be an event id"},
		{map[string]any{"Since": now.Add(-time.Hour), "From": 1}, "From: unknown field"},
		{map[string]any{"Since": now.Add(-time.Hour), "DryRun": "yes"}, "DryRun: must be true or false"},
	} {
		res := f.e.do("POST", path, f.alice, c.body)
		var m struct{ Message string }
		res.json(t, &m)
		if res.status != 400 || !strings.Contains(m.Message, c.want) {
			t.Errorf("%v: %d %q, want 400 with %q", c.body, res.status, m.Message, c.want)
		}
	}
	f.aliceHook.IsPaused = true
	if err := f.e.db.UpdateWebhook(context.Background(), f.aliceHook); err != nil {
		t.Fatal(err)
	}
	res := f.e.do("POST", path, f.alice, map[string]any{"Since": now.Add(-2 * time.Hour)})
	if res.status != 409 || !strings.Contains(string(res.body), "paused") {
		t.Fatalf("replay to a paused webhook: %d %s, want 409", res.status, res.body)
	}
}
