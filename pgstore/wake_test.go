package pgstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// dueChannel is the channel every node LISTENs on for due deliveries.
const dueChannel = "rswebhooks_due"

// dueListener LISTENs on the due channel on a connection of its own.
func dueListener(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c := connect(t, url)
	if _, err := c.Exec(ctx, "LISTEN "+dueChannel); err != nil {
		t.Fatal(err)
	}
	return c
}

// noNotificationBefore sends a marker notification from a connection of
// its own and fails if the listener receives anything before it: the
// server delivers notifications in commit order, so one sent earlier
// arrives first.
func noNotificationBefore(t *testing.T, url string, l *pgx.Conn, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := connect(t, url)
	if _, err := c.Exec(ctx, "SELECT pg_notify($1, 'marker')", dueChannel); err != nil {
		t.Fatal(err)
	}
	n, err := l.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("waiting for the marker notification: %v", err)
	}
	if n.Payload != "marker" {
		t.Fatalf("%s sent a notification to the other nodes (payload %q) before the marker", what, n.Payload)
	}
}

func waitSignal(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("no DueSignal within 10s after %s", what)
	}
}

func drainSignal(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// FanOutEventsHere wakes no dispatcher, on this node or another (the
// engine wakes its own); WakeNodes wakes the others.
func TestFanOutHereWakesNoNode(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := open(t, url, storetest.Config{})
	b := open(t, url, storetest.Config{})
	l := dueListener(t, url)
	ctx := context.Background()
	now := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", Time: now}
	if err := a.AppendEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	drainSignal(a.DueSignal())
	errs := a.FanOutEventsHere(ctx, []rswebhooks.EventFanOut{{EventID: ev.ID, Deliveries: []*rswebhooks.Delivery{{
		ID: rswebhooks.DeliveryID(ev, "W1"), WebhookID: "W1", EventID: ev.ID, Event: *ev,
		State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now,
	}}}})
	if errs != nil {
		t.Fatal(errs)
	}
	select {
	case <-a.DueSignal():
		t.Fatal("FanOutEventsHere signalled its own node's dispatcher")
	default:
	}
	noNotificationBefore(t, url, l, "FanOutEventsHere")

	drainSignal(b.DueSignal())
	a.WakeNodes()
	waitSignal(t, b.DueSignal(), "WakeNodes, on the other node")
}

// wakeCounter counts a node's WakeNodes calls and its due-queue reads.
type wakeCounter struct {
	*pgstore.DB
	wakes, reads atomic.Int64
	read         chan struct{} // closed at the first read
	once         sync.Once
}

func newWakeCounter(db *pgstore.DB) *wakeCounter {
	return &wakeCounter{DB: db, read: make(chan struct{})}
}

func (w *wakeCounter) WakeNodes() {
	w.wakes.Add(1)
	w.DB.WakeNodes()
}

func (w *wakeCounter) ScanDueByWebhook(ctx context.Context, now time.Time, perWebhook, max int, fn func(rswebhooks.DueRef) bool) error {
	w.reads.Add(1)
	w.once.Do(func() { close(w.read) })
	return w.DB.ScanDueByWebhook(ctx, now, perWebhook, max, fn)
}

// A node whose dispatcher starts the deliveries of its own events sends no
// notification to the other nodes: not from the fan-out, not afterwards.
func TestNodeWithRoomWakesNoOtherNode(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := newWakeCounter(open(t, url, storetest.Config{}))
	b := newWakeCounter(open(t, url, storetest.Config{}))
	l := dueListener(t, url)
	const events = 40
	rcv := newPeakReceiver(events)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	w := &rswebhooks.Webhook{ID: "W1", URI: srv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: time.Now().UTC()}
	if err := a.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	ea := engine(t, a, "node-a", nil)
	runEngine(t, ea)
	runEngine(t, engine(t, b, "node-b", nil))
	for i := range events {
		appendEvent(t, a, i)
		ea.Wake()
	}
	rcv.wait(t)
	noNotificationBefore(t, url, l, "a node with room for its deliveries")
	if n := a.wakes.Load() + b.wakes.Load(); n != 0 {
		t.Errorf("%d WakeNodes calls, want none", n)
	}
}

// A node that cannot start a due delivery (its only worker is busy) wakes
// the other nodes, and one of them sends it at once, long before its poll.
func TestBusyNodeWakesAnother(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := newWakeCounter(open(t, url, storetest.Config{}))
	b := newWakeCounter(open(t, url, storetest.Config{}))
	ctx := context.Background()
	hung := make(chan struct{})
	release := make(chan struct{})
	got := make(chan string, 4) // User-Agent of W2's attempts
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/w1" {
			close(hung)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		} else {
			got <- r.Header.Get("User-Agent")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	defer close(release)
	now := time.Now().UTC()
	for _, h := range []struct{ id, path, filter string }{{"W1", "/w1", "reports"}, {"W2", "/w2", "users"}} {
		w := &rswebhooks.Webhook{ID: h.id, URI: rcv.URL + h.path, Secret: "0123456789abcdef0123456789abcdef",
			Filters: []string{h.filter}, User: rswebhooks.User{ID: "u-" + h.id}, CreatedUTC: now}
		if err := a.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// Polls far beyond the test: only a wake-up makes a node read the queue.
	slowPoll := func(o *deliver.Options) {
		o.PollInterval = time.Hour
		o.StatsInterval = time.Hour
		o.MaxConcurrency = 1
	}
	ea := engine(t, a, "node-a", slowPoll)
	eb := engine(t, b, "node-b", slowPoll)
	runEngine(t, eb)
	<-b.read // node B's first read found nothing
	runEngine(t, ea)
	appendEvent(t, a, 0) // "reports": W1, which hangs
	ea.Wake()
	select {
	case <-hung:
	case <-time.After(30 * time.Second):
		t.Fatal("node A never attempted W1's delivery")
	}
	t1 := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(t1), Filter: "users", Type: "Created", Time: t1}
	if err := a.AppendEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	ea.Wake()
	select {
	case ua := <-got:
		if ua != "rswebhooks/node-b" {
			t.Fatalf("W2's delivery sent by %s while node A's only worker was busy, want node B", ua)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("W2's delivery not sent within 30s while node A was busy (node A woke the others %d times)", a.wakes.Load())
	}
	if a.wakes.Load() == 0 {
		t.Error("node B sent W2's delivery without node A waking it")
	}
}

// A webhook's free slot is left to the node that holds its other slot for
// a moment only: while that node's attempt hangs, the other node delivers
// the webhook's new events.
func TestHeldWebhookSlotsStillServed(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := open(t, url, storetest.Config{})
	b := open(t, url, storetest.Config{})
	ctx := context.Background()
	holder := make(chan string, 1) // the node whose first attempt hangs
	release := make(chan struct{})
	var once sync.Once
	const events = 5
	got := make(chan string, events)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		first := false
		once.Do(func() { first = true; holder <- r.Header.Get("User-Agent") })
		if first {
			select { // the first attempt hangs
			case <-release:
			case <-r.Context().Done():
			}
		} else {
			got <- r.Header.Get("User-Agent")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	defer close(release)
	w := &rswebhooks.Webhook{ID: "W1", URI: rcv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: time.Now().UTC()}
	if err := a.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	ea := engine(t, a, "node-a", nil) // PerWebhookConcurrency 2
	eb := engine(t, b, "node-b", nil)
	runEngine(t, ea)
	runEngine(t, eb)
	appendEvent(t, a, 0)
	ea.Wake()
	var held string
	select {
	case held = <-holder:
	case <-time.After(30 * time.Second):
		t.Fatal("the first delivery was never attempted")
	}
	// The other node gets the webhook's next events.
	other, wake := rswebhooks.Store(b), eb
	if held == "rswebhooks/node-b" {
		other, wake = a, ea
	}
	for i := 1; i <= events; i++ {
		appendEvent(t, other, i)
		wake.Wake()
	}
	for range events {
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			t.Fatalf("the webhook's events were not delivered within 30s while %s held one of its two slots", held)
		}
	}
}

// A node whose slots for a webhook are all busy does not read the queue
// for each new event of that webhook its fan-out writes: nothing it read
// could start (its slots go on with those deliveries, or read the queue
// when they finish).
func TestFullSlotsSkipReads(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := newWakeCounter(open(t, url, storetest.Config{}))
	ctx := context.Background()
	release := make(chan struct{})
	var inflight atomic.Int64
	busy := make(chan struct{}, 2)
	const events = 40
	var mu sync.Mutex
	seen := map[string]int{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if inflight.Add(1) <= 2 {
			busy <- struct{}{}
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	w := &rswebhooks.Webhook{ID: "W1", URI: rcv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: time.Now().UTC()}
	if err := a.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	// PerWebhookConcurrency 2. Deliveries buffered behind attempts that
	// hang turn the webhook slow and are moved back by AttemptTimeout:
	// short enough for the test to see them through.
	ea := engine(t, a, "node-a", func(o *deliver.Options) { o.AttemptTimeout = 20 * time.Second })
	runEngine(t, ea)
	fannedOut := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, _, err := a.UnfannedStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d events not fanned out within 10s", n)
			}
			<-time.After(2 * time.Millisecond)
		}
	}
	for i := range 2 {
		appendEvent(t, a, i)
		ea.Wake()
	}
	for range 2 {
		select {
		case <-busy:
		case <-time.After(30 * time.Second):
			t.Fatal("the webhook's two slots were not taken")
		}
	}
	before := a.reads.Load()
	for i := range events {
		appendEvent(t, a, 2+i)
		ea.Wake()
		fannedOut()
	}
	reads := a.reads.Load() - before
	close(release)
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == events+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries arrived within 90s", n, events+2)
		}
		<-time.After(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s arrived %d times", id, n)
		}
	}
	t.Logf("%d reads of the queue for %d events fanned out while the slots were busy", reads, events)
	if reads > events/4 {
		t.Errorf("%d reads of the queue for %d events fanned out while the webhook's slots were busy, want at most %d", reads, events, events/4)
	}
}
