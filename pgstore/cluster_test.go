package pgstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

func engine(t *testing.T, s rswebhooks.Store, name string, mod func(*deliver.Options)) *deliver.Engine {
	t.Helper()
	o := deliver.Options{
		Store: s, Access: deliver.AllowAll{}, MaxConcurrency: 8, PerWebhookConcurrency: 2,
		Client:  deliver.NewHTTPClient(deliver.ClientOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}),
		Logger:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Version: name, LeaseHolder: name,
	}
	if mod != nil {
		mod(&o)
	}
	e, err := deliver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runEngine(t *testing.T, e *deliver.Engine) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func appendEvent(t *testing.T, s rswebhooks.Store, i int) *rswebhooks.Event {
	t.Helper()
	now := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", ResourceID: string(rune('a' + i%26)), Time: now}
	if err := s.AppendEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// Two nodes' delivery engines on one database: each event reaches the
// webhook once, and the per-webhook concurrency holds across both nodes.
func TestTwoNodesDeliverOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := open(t, url, storetest.Config{})
	b := open(t, url, storetest.Config{})
	var inflight, peak atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	byNode := map[string]int{}
	const events = 40
	all := make(chan struct{})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-time.After(15 * time.Millisecond) // a receiver that takes a while, so attempts overlap
		inflight.Add(-1)
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		byNode[r.Header.Get("User-Agent")]++
		if len(seen) == events {
			select {
			case <-all:
			default:
				close(all)
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	now := time.Now().UTC()
	w := &rswebhooks.Webhook{ID: "W1", URI: rcv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: now}
	if err := a.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	ea, eb := engine(t, a, "node-a", nil), engine(t, b, "node-b", nil)
	runEngine(t, ea)
	runEngine(t, eb)
	for i := range events {
		if i%2 == 0 {
			appendEvent(t, a, i)
			ea.Wake()
		} else {
			appendEvent(t, b, i)
			eb.Wake()
		}
	}
	select {
	case <-all:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d deliveries arrived within 60s", len(seen), events)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s arrived %d times", id, n)
		}
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d attempts to the webhook at once across the nodes, want at most 2 (PerWebhookConcurrency)", p)
	}
	t.Logf("attempts by node: %v, peak concurrency %d", byNode, peak.Load())
}

// A node that dies mid-attempt leaves its lease to expire; then another
// node sends the delivery, and it is recorded once.
func TestDeadNodesLeaseIsTakenOver(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	aStore, err := pgstore.Open(ctx, pgstore.Options{URL: url, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, url, storetest.Config{})
	reachedA := make(chan struct{}, 1)
	gotB := make(chan string, 4)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client go away
		if r.Header.Get("User-Agent") == "rswebhooks/node-a" {
			reachedA <- struct{}{}
			<-r.Context().Done() // node A dies before it hears back
			return
		}
		gotB <- r.Header.Get("webhook-id")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	now := time.Now().UTC()
	w := &rswebhooks.Webhook{ID: "W1", URI: rcv.URL, Secret: "0123456789abcdef0123456789abcdef", Filters: []string{"*"},
		User: rswebhooks.User{ID: "u1"}, CreatedUTC: now}
	if err := b.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	const leaseFor = 2 * time.Second
	ea := engine(t, aStore, "node-a", func(o *deliver.Options) { o.LeaseFor = leaseFor; o.AttemptTimeout = time.Minute })
	stopA := runEngine(t, ea)
	ev := appendEvent(t, aStore, 0)
	ea.Wake()
	select {
	case <-reachedA:
	case <-time.After(30 * time.Second):
		t.Fatal("node A never attempted the delivery")
	}
	// Node A dies: its database connections go first, so nothing it does
	// afterwards (releasing the lease) reaches the database.
	died := time.Now()
	aStore.Close()
	stopA()

	eb := engine(t, b, "node-b", nil)
	runEngine(t, eb)
	select {
	case id := <-gotB:
		if want := rswebhooks.DeliveryID(ev, "W1"); id != want {
			t.Fatalf("node B sent %s, want %s", id, want)
		}
		if waited := time.Since(died); waited > leaseFor+10*time.Second {
			t.Errorf("node B took over after %s, lease was %s", waited, leaseFor)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node B did not take the delivery over within 30s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := b.GetDelivery(ctx, rswebhooks.DeliveryID(ev, "W1"))
		if err == nil && d.State == rswebhooks.DeliverySucceeded {
			if d.Attempts != 1 {
				t.Fatalf("recorded attempts = %d, want 1 (node A's was never recorded)", d.Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery not recorded as succeeded: %+v %v", d, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}
