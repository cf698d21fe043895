package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// leaseCounter counts the deliveries a node leases by Lease (the
// dispatcher's path) and by CompleteAndLease (a slot going on).
type leaseCounter struct {
	*pgstore.DB
	leases, moved, refused atomic.Int64
}

func (c *leaseCounter) Lease(ctx context.Context, id string, now time.Time, req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	d, err := c.DB.Lease(ctx, id, now, req)
	if err == nil {
		c.leases.Add(1)
	}
	if errors.Is(err, rswebhooks.ErrLeaseRefused) {
		c.refused.Add(1)
	}
	return d, err
}

func (c *leaseCounter) CompleteAndLease(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt, now time.Time,
	req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	next, err := c.DB.CompleteAndLease(ctx, d, a, now, req)
	if next != nil {
		c.moved.Add(1)
	}
	return next, err
}

// peakReceiver answers 204 after a while (delay), counting each delivery id and the
// most attempts in flight at once; order lists event resource ids as they
// arrive.
type peakReceiver struct {
	inflight, peak atomic.Int64
	mu             sync.Mutex
	seen           map[string]int
	order          []string
	want           int
	all            chan struct{}
	delay          time.Duration
}

func newPeakReceiver(want int) *peakReceiver {
	return &peakReceiver{seen: map[string]int{}, want: want, all: make(chan struct{}), delay: 5 * time.Millisecond}
}

func (p *peakReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.inflight.Add(1)
	for q := p.peak.Load(); n > q && !p.peak.CompareAndSwap(q, n); q = p.peak.Load() {
	}
	body, _ := io.ReadAll(r.Body)
	<-time.After(p.delay) // a receiver that takes a while, so attempts overlap
	p.inflight.Add(-1)
	var n2 struct {
		Notifications []struct {
			ResourceID string `json:"ResourceId"`
		}
	}
	_ = json.Unmarshal(body, &n2)
	res := ""
	if len(n2.Notifications) > 0 {
		res = n2.Notifications[0].ResourceID
	}
	p.mu.Lock()
	p.seen[r.Header.Get("webhook-id")]++
	p.order = append(p.order, res)
	if len(p.seen) == p.want {
		select {
		case <-p.all:
		default:
			close(p.all)
		}
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (p *peakReceiver) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.all:
	case <-time.After(60 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("%d of %d deliveries arrived within 60s", len(p.seen), p.want)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, n := range p.seen {
		if n != 1 {
			t.Errorf("delivery %s arrived %d times", id, n)
		}
	}
}

// With a backlog, the slots of two nodes go on with their webhook's next
// deliveries (leases moved by CompleteAndLease) instead of a lease each,
// and still send each delivery once within the webhook's concurrency
// across the nodes.
func TestSlotsGoOnWithTheirWebhook(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := &leaseCounter{DB: open(t, url, storetest.Config{})}
	b := &leaseCounter{DB: open(t, url, storetest.Config{})}
	const events = 60
	rcv := backlog(t, a, events, newPeakReceiver(events))
	ea, eb := engine(t, a, "node-a", nil), engine(t, b, "node-b", nil)
	runEngine(t, ea)
	runEngine(t, eb)
	ea.Wake()
	eb.Wake()
	rcv.wait(t)
	if p := rcv.peak.Load(); p > 2 {
		t.Errorf("%d attempts to the webhook at once across the nodes, want at most 2 (PerWebhookConcurrency)", p)
	}
	leased, moved := a.leases.Load()+b.leases.Load(), a.moved.Load()+b.moved.Load()
	if leased+moved < events {
		t.Errorf("%d leased and %d moved for %d deliveries sent", leased, moved, events)
	}
	if moved == 0 || leased >= events {
		t.Errorf("%d deliveries leased by Lease and %d by a moved lease: slots did not go on with their webhook", leased, moved)
	}
	t.Logf("leased %d, moved %d, peak %d", leased, moved, rcv.peak.Load())
}

// Three nodes sharing one webhook's slots: each delivery once, within the
// webhook's concurrency, and a node whose lease was refused (another node
// took the slot, or a slot going on took the delivery) waits for its next
// read instead of trying the rest of what it read, each refused in turn.
func TestThreeNodesShareOneWebhook(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const events = 150
	rcv := newPeakReceiver(events)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	now := time.Now().UTC()
	var nodes []*leaseCounter
	for range 3 {
		nodes = append(nodes, &leaseCounter{DB: open(t, url, storetest.Config{})})
	}
	w := &rswebhooks.Webhook{ID: "W1", URI: srv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: now}
	if err := nodes[0].CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	var engines []*deliver.Engine
	for i, n := range nodes {
		e := engine(t, n, "node-"+string(rune('a'+i)), nil)
		runEngine(t, e)
		engines = append(engines, e)
	}
	for i := range events {
		appendEvent(t, nodes[i%3], i)
		engines[i%3].Wake()
	}
	rcv.wait(t)
	if p := rcv.peak.Load(); p > 2 {
		t.Errorf("%d attempts to the webhook at once across the nodes, want at most 2 (PerWebhookConcurrency)", p)
	}
	var leased, moved, refused int64
	for _, n := range nodes {
		leased, moved, refused = leased+n.leases.Load(), moved+n.moved.Load(), refused+n.refused.Load()
	}
	t.Logf("leased %d, moved %d, refused %d, peak %d", leased, moved, refused, rcv.peak.Load())
	if refused > events/3 {
		t.Errorf("%d leases refused for %d deliveries: nodes keep trying deliveries others took", refused, events)
	}
}

// An ordered webhook's slot does not go on by itself: its order is the
// dispatcher's (one at a time, in event order).
func TestOrderedWebhookSlotsDoNotGoOn(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := &leaseCounter{DB: open(t, url, storetest.Config{})}
	const events = 12
	rcv := newPeakReceiver(events)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	now := time.Now().UTC()
	w := &rswebhooks.Webhook{ID: "W1", URI: srv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: now, Ordered: true}
	if err := a.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range events {
		// Ids a millisecond apart, so id order is append order.
		at := now.Add(time.Duration(i) * time.Millisecond)
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: "reports", Type: "Created", ResourceID: string(rune('a' + i)), Time: at}
		if err := a.AppendEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.ResourceID)
	}
	ea := engine(t, a, "node-a", nil)
	runEngine(t, ea)
	ea.Wake()
	rcv.wait(t)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for i := range want {
		if rcv.order[i] != want[i] {
			t.Fatalf("arrival order %v, want %v", rcv.order, want)
		}
	}
	if p := rcv.peak.Load(); p != 1 {
		t.Errorf("%d attempts at once to an ordered webhook, want 1", p)
	}
	if m := a.moved.Load(); m != 0 {
		t.Errorf("%d leases moved for an ordered webhook, want none", m)
	}
}

var _ deliver.Store = (*leaseCounter)(nil)

// Each node fans out the events appended through it; another node's
// events wait for their node for a grace period, after which any node
// takes them (their node may have died).
func TestNodesFanOutTheirOwnEvents(t *testing.T) {
	url := pgtest.NewDatabase(t)
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	clock := testutil.NewClock(t0)
	a := open(t, url, storetest.Config{Now: clock.Now})
	b := open(t, url, storetest.Config{Now: clock.Now})
	ctx := context.Background()
	ea := &rswebhooks.Event{ID: rswebhooks.NewID(t0), Filter: "reports", Type: "Created", ResourceID: "a", Time: t0}
	eb := &rswebhooks.Event{ID: rswebhooks.NewID(t0.Add(time.Millisecond)), Filter: "reports", Type: "Created", ResourceID: "b", Time: t0}
	if err := a.AppendEvent(ctx, ea); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendEvent(ctx, eb); err != nil {
		t.Fatal(err)
	}
	got := func(db *pgstore.DB) []string {
		t.Helper()
		es, err := db.NodeUnfannedEvents(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.ResourceID)
		}
		return out
	}
	if g := got(a); !slices.Equal(g, []string{"a"}) {
		t.Fatalf("node a's events to fan out = %v, want [a]", g)
	}
	if g := got(b); !slices.Equal(g, []string{"b"}) {
		t.Fatalf("node b's events to fan out = %v, want [b]", g)
	}
	if all, err := a.UnfannedEvents(ctx, 0); err != nil || len(all) != 2 {
		t.Fatalf("UnfannedEvents = %d events, %v; want both", len(all), err)
	}
	// Node b is gone: past the grace period node a takes its event too.
	clock.Add(3 * time.Second)
	if g := got(a); !slices.Equal(g, []string{"a", "b"}) {
		t.Fatalf("node a's events to fan out after the grace period = %v, want [a b]", g)
	}
	if err := a.FanOut(ctx, eb.ID, nil); err != nil {
		t.Fatal(err)
	}
	if g := got(a); !slices.Equal(g, []string{"a"}) {
		t.Fatalf("after b's fan-out node a has %v, want [a]", g)
	}
}

// A slot that went on with its webhook comes back to the dispatcher after
// a while (a quarter of the slow-webhook threshold) and starts the
// webhook's next delivery with a lease of its own: not one of the
// deliveries the webhook's other slots, going on too, take meanwhile (the
// earliest due, which a read lists first and the dispatcher had buffered),
// each refused after a round trip while the slot waits.
func TestReturningSlotLeasesWhatOtherSlotsLeave(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := &leaseCounter{DB: open(t, url, storetest.Config{})}
	const events = 400
	// Each attempt takes 25 ms, so a slot that went on finishes at most
	// once while the dispatcher reads the queue and leases (refusals the
	// dispatcher cannot foresee: a slot that finishes twice in that
	// window takes a delivery past the ones it passes over), also on a
	// loaded machine under -race; slots still come back every 250 ms.
	rcv := newPeakReceiver(events)
	rcv.delay = 25 * time.Millisecond
	rcv = backlog(t, a, events, rcv)
	e := engine(t, a, "node-a", func(o *deliver.Options) { o.PerWebhookConcurrency = 4 })
	runEngine(t, e)
	e.Wake()
	rcv.wait(t)
	if p := rcv.peak.Load(); p > 4 {
		t.Errorf("%d attempts to the webhook at once, want at most 4 (PerWebhookConcurrency)", p)
	}
	leased, moved, refused := a.leases.Load(), a.moved.Load(), a.refused.Load()
	t.Logf("leased %d, moved %d, refused %d, peak %d", leased, moved, refused, rcv.peak.Load())
	if leased <= 4 {
		t.Fatalf("%d leases by the dispatcher: no slot came back to it (the test needs slots that do)", leased)
	}
	if refused > leased/4 {
		t.Errorf("%d leases refused against %d granted: slots coming back tried deliveries the webhook's other slots took", refused, leased)
	}
}

// backlog creates webhook W1 with receiver rcv, which it returns, and
// appends events events that it matches.
func backlog(t *testing.T, s rswebhooks.Store, events int, rcv *peakReceiver) *peakReceiver {
	t.Helper()
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := &rswebhooks.Webhook{ID: "W1", URI: srv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: time.Now().UTC()}
	if err := s.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	for i := range events {
		appendEvent(t, s, i)
	}
	return rcv
}
