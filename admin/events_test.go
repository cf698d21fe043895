package admin_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
)

// feedFixture stores events about a report (readable by every user) and a
// data connection (administrators only), each fanned out to a webhook of
// alice's and one of bob's.
type feedFixture struct {
	e                  *env
	alice, bob         string // tokens
	aliceHook, bobHook *rswebhooks.Webhook
	events             []*rswebhooks.Event // oldest first
}

func newFeedFixture(t *testing.T, opts ...envOptions) *feedFixture {
	t.Helper()
	o := envOptions{}
	if len(opts) > 0 {
		o = opts[0]
	}
	e := newEnv(t, o)
	f := &feedFixture{e: e, alice: e.token("alice"), bob: e.token("bob")}
	const reg = "/api/webhooks/registrations"
	for _, who := range []struct {
		tok string
		dst **rswebhooks.Webhook
	}{{f.alice, &f.aliceHook}, {f.bob, &f.bobHook}} {
		res := e.do("POST", reg, who.tok, hookBody(e.recv.URL+"/h", map[string]any{"Filters": []string{}}))
		if res.status != 201 {
			t.Fatalf("register: %d %s", res.status, res.body)
		}
		var w rswebhooks.Webhook
		res.json(t, &w)
		*who.dst = &w
	}
	cat, err := e.sim.CreateCategory("Feed")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.sim.CreateReport(cat, "Sales", "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.sim.CreateDataConnection("Warehouse")
	if err != nil {
		t.Fatal(err)
	}
	base := e.clock.Now().Add(-time.Hour)
	ctx := context.Background()
	for i, x := range []struct{ filter, typ, id string }{
		{"reports", "Created", rep}, {"connections", "Created", conn}, {"reports", "Updated", rep},
		{"connections", "Deleted", conn}, {"reports", "Deleted", rep},
	} {
		at := base.Add(time.Duration(i) * time.Minute)
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: x.filter, Type: x.typ, ResourceID: x.id, Time: at, Source: rswebhooks.SourceProxy}
		if err := e.db.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		var ds []*rswebhooks.Delivery
		for _, w := range []*rswebhooks.Webhook{f.aliceHook, f.bobHook} {
			ds = append(ds, &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(ev, w.ID), WebhookID: w.ID, EventID: ev.ID, Event: *ev,
				State: rswebhooks.DeliverySucceeded, Attempts: 1, LastStatus: 200, CreatedUTC: at, UpdatedUTC: at})
		}
		if err := e.db.FanOut(ctx, ev.ID, ds); err != nil {
			t.Fatal(err)
		}
		f.events = append(f.events, ev)
	}
	return f
}

func (f *feedFixture) page(t *testing.T, tok string, q url.Values) admin.EventPage {
	t.Helper()
	res := f.e.do("GET", "/api/webhooks/events?"+q.Encode(), tok, nil)
	if res.status != 200 {
		t.Fatalf("GET events?%s: %d %s", q.Encode(), res.status, res.body)
	}
	var p admin.EventPage
	res.json(t, &p)
	return p
}

func ids(p admin.EventPage) []string {
	var out []string
	for _, e := range p.Events {
		out = append(out, e.ID)
	}
	return out
}

func TestEventsFeedPagesNewestFirstWithDeliveries(t *testing.T) {
	f := newFeedFixture(t)
	var want []string
	for i := len(f.events) - 1; i >= 0; i-- {
		want = append(want, f.events[i].ID)
	}
	all := f.page(t, operatorToken, nil)
	if strings.Join(ids(all), ",") != strings.Join(want, ",") || all.NextCursor != "" {
		t.Fatalf("operator feed = %v (next %q), want %v and no cursor", ids(all), all.NextCursor, want)
	}
	for _, ev := range all.Events {
		if len(ev.Deliveries) != 2 || ev.Deliveries[0].State != rswebhooks.DeliverySucceeded {
			t.Fatalf("event %s: deliveries %+v, want both webhooks' (succeeded)", ev.ID, ev.Deliveries)
		}
	}
	// Pages of two cover everything once, in order.
	var got []string
	q := url.Values{"limit": {"2"}}
	for n := 0; ; n++ {
		p := f.page(t, operatorToken, q)
		if len(p.Events) > 2 {
			t.Fatalf("page %d has %d events, limit 2", n, len(p.Events))
		}
		got = append(got, ids(p)...)
		if p.NextCursor == "" {
			break
		}
		if n > 5 {
			t.Fatal("paging does not end")
		}
		q.Set("cursor", p.NextCursor)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged = %v, want %v", got, want)
	}
	// Filters and types, case-insensitive, comma-separated or repeated.
	p := f.page(t, operatorToken, url.Values{"filter": {"Connections"}})
	if strings.Join(ids(p), ",") != f.events[3].ID+","+f.events[1].ID {
		t.Fatalf("filter=connections: %v", ids(p))
	}
	p = f.page(t, operatorToken, url.Values{"type": {"deleted,created"}, "filter": {"reports"}})
	if strings.Join(ids(p), ",") != f.events[4].ID+","+f.events[0].ID {
		t.Fatalf("type=deleted,created&filter=reports: %v", ids(p))
	}
	// since inclusive, until exclusive, by the event's time.
	p = f.page(t, operatorToken, url.Values{"since": {f.events[1].Time.Format(time.RFC3339Nano)}, "until": {f.events[3].Time.Format(time.RFC3339Nano)}})
	if strings.Join(ids(p), ",") != f.events[2].ID+","+f.events[1].ID {
		t.Fatalf("since/until: %v", ids(p))
	}
	p = f.page(t, operatorToken, url.Values{"since": {"150s"}})
	if len(p.Events) != 0 {
		t.Fatalf("since=150s (all events are older): %v", ids(p))
	}
	p = f.page(t, operatorToken, url.Values{"since": {"2h"}})
	if len(p.Events) != len(f.events) {
		t.Fatalf("since=2h: %d events, want %d", len(p.Events), len(f.events))
	}
}

func TestEventsFeedShowsUsersOnlyWhatTheyMayRead(t *testing.T) {
	f := newFeedFixture(t)
	p := f.page(t, f.alice, nil)
	want := f.events[4].ID + "," + f.events[2].ID + "," + f.events[0].ID
	if strings.Join(ids(p), ",") != want {
		t.Fatalf("alice's feed = %v, want the report events %s (data connections need a permission she lacks)", ids(p), want)
	}
	for _, ev := range p.Events {
		if len(ev.Deliveries) != 1 || ev.Deliveries[0].WebhookID != f.aliceHook.ID {
			t.Fatalf("alice sees deliveries %+v of event %s, want only her webhook's", ev.Deliveries, ev.ID)
		}
	}
	// Paging by one still skips what she may not read.
	q := url.Values{"limit": {"1"}}
	var got []string
	for n := 0; n < 10; n++ {
		p := f.page(t, f.alice, q)
		got = append(got, ids(p)...)
		if p.NextCursor == "" {
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	if strings.Join(got, ",") != want {
		t.Fatalf("alice paged by one: %v, want %s", got, want)
	}
}

func TestEventsFeedRefusesBadParameters(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range []struct{ query, want string }{
		{"limit=0", "limit: must be an integer between 1 and 500"},
		{"limit=501", "limit: must be an integer between 1 and 500"},
		{"limit=%2B5", "limit: must be an integer"},
		{"limit=1&limit=2", "limit: given 2 times"},
		{"since=yesterday", "since: must be an RFC 3339 time"},
		{"until=-5m", "until: must be an RFC 3339 time"},
		{"since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until: must be after since"},
		{"filter=reports,widgets", `filter: "widgets" is not one of reports, categories, connections, tasks, alerts`},
		{"type=Executed&type=Pinged", `type: "Pinged" is not one of Created, Updated, Deleted, Executed`},
		{"cursor=abc", "cursor: must be a NextCursor from an earlier answer"},
		{"page=2", "page: unknown parameter; the events feed takes since, until, filter, type, limit, cursor"},
	} {
		res := e.do("GET", "/api/webhooks/events?"+c.query, operatorToken, nil)
		var m struct{ Message string }
		res.json(t, &m)
		if res.status != 400 || !strings.Contains(m.Message, c.want) {
			t.Errorf("?%s: %d %s, want 400 with %q", c.query, res.status, res.body, c.want)
		}
	}
	if res := e.do("GET", "/api/webhooks/events", "", nil); res.status != 401 {
		t.Errorf("without a token: %d, want 401", res.status)
	}
}
