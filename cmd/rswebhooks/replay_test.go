package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
)

func TestWebhooksReplayContinuesUntilTheRangeIsDone(t *testing.T) {
	a := startAdminWith(t, func(o *admin.Options) { o.MaxReplay = 2 })
	w := decode[rswebhooks.Webhook](t, a.ok(t, "webhooks", "add", "--url", a.receiver+"/h", "--filter", "reports", "-o", "json"))
	ctx := context.Background()
	now := time.Now().UTC()
	// Five report events in the last hour, one older, one of another filter.
	for i, x := range []struct {
		filter string
		ago    time.Duration
	}{{"reports", 50 * time.Minute}, {"reports", 40 * time.Minute}, {"tasks", 35 * time.Minute}, {"reports", 30 * time.Minute},
		{"reports", 20 * time.Minute}, {"reports", 10 * time.Minute}, {"reports", 3 * time.Hour}} {
		at := now.Add(-x.ago)
		if err := a.db.AppendEvent(ctx, &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: x.filter, Type: "Updated", ResourceID: string(rune('a' + i)), Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	out := a.ok(t, "webhooks", "replay", w.ID, "--since", "1h")
	if !strings.HasPrefix(out, "5 deliveries queued to "+w.ID+" (5 events matched") || !strings.Contains(out, "new ids") {
		t.Fatalf("replay output:\n%s", out)
	}
	ds, err := a.db.ListDeliveries(ctx, w.ID, 0)
	if err != nil || len(ds) != 5 {
		t.Fatalf("deliveries after replay: %d, %v; want 5 (three calls of at most 2)", len(ds), err)
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if d.Event.Filter != "reports" || now.Sub(d.Event.Time) > time.Hour || seen[d.EventID] {
			t.Fatalf("unexpected replayed delivery %+v", d)
		}
		seen[d.EventID] = true
	}
	// --until narrows; JSON sums the calls.
	got := decode[rswebhooks.ReplayResult](t, a.ok(t, "webhooks", "replay", w.ID, "--since", "1h", "--until", "25m", "-o", "json"))
	if got.Queued != 3 || !got.Done {
		t.Fatalf("replay --until 25m = %+v, want 3 queued", got)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"webhooks", "replay", w.ID}, "--since: required"},
		{[]string{"webhooks", "replay", w.ID, "--since", "last week"}, "--since: \"last week\" is neither"},
		{[]string{"webhooks", "replay", w.ID, "--since", "1h", "--until", "2h"}, "Until: must be after Since"},
		{[]string{"webhooks", "replay", "nope", "--since", "1h"}, "not found"},
	} {
		r := a.run(t, operatorToken, c.args...)
		if r.err == nil || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: err %v, stderr %q; want %q", c.args, r.err, r.stderr, c.want)
		}
	}
}
