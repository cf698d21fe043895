package deliver

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

// bubble is an engine on a real store whose receivers are real HTTP
// servers reached over in-memory connections, for tests that run inside a
// testing/synctest bubble (fake clock: time moves only when every
// goroutine waits).
type bubble struct {
	t     *testing.T
	db    *store.DB
	e     *Engine
	reg   *prometheus.Registry
	start time.Time
	ids   rswebhooks.IDSource

	mu    sync.Mutex
	hits  map[string][]hit // by webhook id
	nets  []*pipeNet
	route map[string]http.Handler // by host
}

// hit is one request a bubble receiver got: when (fake time since start)
// and which resource.
type hit struct {
	at       time.Duration
	resource string
}

// newBubble must be called inside synctest.Test; dir is a t.TempDir() made
// outside the bubble. The engine runs until the bubble's test returns;
// tune changes it before it starts.
func newBubble(t *testing.T, dir string, mod func(*Options), tune ...func(*Engine)) *bubble {
	db, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b := &bubble{t: t, db: db, reg: prometheus.NewRegistry(), start: time.Now(), hits: map[string][]hit{}, route: map[string]http.Handler{}}
	pn := newPipeNet(http.HandlerFunc(b.serve))
	b.nets = append(b.nets, pn)
	client := pn.client()
	opts := Options{
		Store: db, Access: AllowAll{}, Client: client,
		Policy:     Policy{Delays: []time.Duration{time.Second, time.Second, time.Second, time.Second}},
		Registerer: b.reg, Logger: zerolog.Nop(), StatsInterval: time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	if b.e, err = New(opts); err != nil {
		t.Fatal(err)
	}
	for _, f := range tune {
		f(b.e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.e.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		pn.shutdown(client)
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return b
}

// serve records the hit under the webhook id (the host) and passes the
// request to the webhook's handler (none: 200).
func (b *bubble) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Notifications []struct {
			ResourceID string `json:"ResourceId"`
		}
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	res := ""
	if len(body.Notifications) > 0 {
		res = body.Notifications[0].ResourceID
	}
	b.mu.Lock()
	b.hits[r.Host] = append(b.hits[r.Host], hit{at: time.Since(b.start), resource: res})
	h := b.route[r.Host]
	b.mu.Unlock()
	if h != nil {
		h.ServeHTTP(w, r)
	}
}

// addWebhook registers a webhook whose receiver is handler (nil: 200).
func (b *bubble) addWebhook(id string, handler http.Handler, mod func(*rswebhooks.Webhook)) {
	now := time.Now().UTC()
	w := &rswebhooks.Webhook{
		ID: id, URI: "http://" + id + "/hook", Secret: testSecret, Filters: []string{rswebhooks.FilterAll},
		User: rswebhooks.User{ID: "u-" + id, Name: id}, CreatedUTC: now, UpdatedUTC: now,
	}
	if mod != nil {
		mod(w)
	}
	b.mu.Lock()
	b.route[id] = handler
	b.mu.Unlock()
	if err := b.db.CreateWebhook(context.Background(), w); err != nil {
		b.t.Fatal(err)
	}
}

// addEvents stores n events (resources 1…n) and wakes the engine.
func (b *bubble) addEvents(n int) {
	now := time.Now().UTC()
	for i := 1; i <= n; i++ {
		ev := &rswebhooks.Event{ID: b.ids.Next(now), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventUpdated,
			ResourceID: itoa(i), Time: now}
		if err := b.db.AppendEvent(context.Background(), ev); err != nil {
			b.t.Fatal(err)
		}
	}
	b.e.Wake()
}

// got returns the hits of a webhook so far.
func (b *bubble) got(id string) []hit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]hit(nil), b.hits[id]...)
}

// perSecond counts hits in each whole second [from, to).
func perSecond(hs []hit, from, to int) []int {
	out := make([]int, to-from)
	for _, h := range hs {
		if s := int(h.at / time.Second); s >= from && s < to {
			out[s-from]++
		}
	}
	return out
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
