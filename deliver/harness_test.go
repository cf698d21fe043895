package deliver

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

const waitTimeout = 10 * time.Second

// recv waits for a value with a bounded timeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		panic("unreachable")
	}
}

// received is one request a test receiver got.
type received struct {
	Header http.Header
	Body   []byte
}

// receiver returns a handler that records each request on the channel and
// answers with fn (nil: 200).
func receiver(ch chan<- received, fn func(w http.ResponseWriter, r *http.Request, n int)) http.Handler {
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		ch <- received{Header: r.Header.Clone(), Body: body}
		if fn != nil {
			fn(w, r, i)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

type harness struct {
	t        testing.TB
	db       *store.DB
	e        *Engine
	reg      *prometheus.Registry
	finished chan rswebhooks.Delivery
	now      func() time.Time
	stop     func()
}

func loopbackClient(timeout time.Duration) *http.Client {
	return NewHTTPClient(ClientOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: timeout})
}

// newHarness opens a real store in a temp dir and builds an engine (not yet
// running) whose client may reach loopback receivers.
func newHarness(t testing.TB, mod func(*Options)) *harness {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, reg: prometheus.NewRegistry(), finished: make(chan rswebhooks.Delivery, 1000)}
	opts := Options{
		Store:          db,
		Access:         AllowAll{},
		Client:         loopbackClient(5 * time.Second),
		Policy:         Policy{Delays: []time.Duration{time.Millisecond, time.Millisecond}},
		AttemptTimeout: 5 * time.Second,
		Registerer:     h.reg,
		Logger:         zerolog.Nop(),
		Version:        "1.2.3",
	}
	if mod != nil {
		mod(&opts)
	}
	h.now = opts.Now
	if h.now == nil {
		h.now = time.Now
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.onComplete = func(d rswebhooks.Delivery) { h.finished <- d }
	h.e = e
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return h
}

// start runs the engine until the test ends.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.e.Run(ctx) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			h.t.Errorf("Run did not return within %s of cancel", waitTimeout)
		}
	}
}

func (h *harness) addWebhook(uri string, mod func(*rswebhooks.Webhook)) *rswebhooks.Webhook {
	h.t.Helper()
	now := h.now().UTC()
	w := &rswebhooks.Webhook{
		ID: rswebhooks.NewID(now), URI: uri, Secret: testSecret, Filters: []string{rswebhooks.FilterAll},
		User: rswebhooks.User{ID: "u-alice", Name: "alice"}, CreatedUTC: now, UpdatedUTC: now,
	}
	if mod != nil {
		mod(w)
	}
	if err := h.db.CreateWebhook(context.Background(), w); err != nil {
		h.t.Fatal(err)
	}
	return w
}

func (h *harness) addEvent(filter, resourceID string) *rswebhooks.Event {
	h.t.Helper()
	now := h.now().UTC()
	ev := &rswebhooks.Event{
		ID: rswebhooks.NewID(now), Filter: filter, Type: rswebhooks.EventCreated, ResourceID: resourceID,
		ResourceName: "Sales " + resourceID, UserID: "u-bob", UserName: "bob", Time: now, APIVersion: "v2",
		Method: http.MethodPost, Path: "/api/reportserver/v2/" + filter,
	}
	if err := h.db.AppendEvent(context.Background(), ev); err != nil {
		h.t.Fatal(err)
	}
	h.e.Wake()
	return ev
}

// next waits for the next delivery state change recorded by the engine.
func (h *harness) next() rswebhooks.Delivery {
	h.t.Helper()
	return recv(h.t, h.finished, "a recorded delivery")
}

// nextFinal waits until delivery changes reach a state other than pending.
func (h *harness) nextFinal() rswebhooks.Delivery {
	h.t.Helper()
	for {
		if d := h.next(); d.State != rswebhooks.DeliveryPending {
			return d
		}
	}
}
