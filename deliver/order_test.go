package deliver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// waitUntil polls cond every 5 ms until it holds, failing after waitTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
	}
}

// orderedEvents stores n events (resources 1…n) in event order.
func orderedEvents(t *testing.T, h *harness, n int) {
	t.Helper()
	var ids rswebhooks.IDSource
	now := time.Now().UTC()
	for i := 1; i <= n; i++ {
		ev := &rswebhooks.Event{ID: ids.Next(now), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventUpdated,
			ResourceID: itoa(i), Time: now}
		if err := h.db.AppendEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	h.e.Wake()
}

// arrivals is a loopback receiver that records the resource of each
// request in arrival order and answers with answer (status for the nth
// arrival of a resource, 1-based).
type arrivals struct {
	mu     sync.Mutex
	seq    []string
	n      map[string]int
	answer func(resource string, n int, seen func(string) bool) int
	got    chan struct{}
}

func newArrivals(t *testing.T, answer func(resource string, n int, seen func(string) bool) int) (*arrivals, *httptest.Server) {
	a := &arrivals{n: map[string]int{}, answer: answer, got: make(chan struct{}, 1000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body Body
		_ = json.NewDecoder(r.Body).Decode(&body)
		res := body.Notifications[0].ResourceID
		a.mu.Lock()
		a.seq = append(a.seq, res)
		a.n[res]++
		n := a.n[res]
		a.mu.Unlock()
		a.got <- struct{}{}
		w.WriteHeader(a.answer(res, n, a.seen))
	}))
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *arrivals) seen(res string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[res] > 0
}

func (a *arrivals) sequence() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seq)
}

// failSecondTwice answers 500 to the first two attempts of resource 2.
func failSecondTwice(res string, n int, _ func(string) bool) int {
	if res == "2" && n <= 2 {
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// An ordered webhook whose receiver fails the 2nd of 10 notifications
// twice receives them in event order: the 2nd holds the rest until it
// succeeds.
func TestOrderedDeliveryWaitsForTheFailingOne(t *testing.T) {
	a, srv := newArrivals(t, failSecondTwice)
	h := newHarness(t, func(o *Options) {
		o.Policy = Policy{Delays: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}}
	})
	h.addWebhook(srv.URL+"/hook", func(w *rswebhooks.Webhook) { w.Ordered = true })
	h.start()
	orderedEvents(t, h, 10)
	for range 12 {
		recv(t, a.got, "a notification")
	}
	for d := h.nextFinal(); ; d = h.nextFinal() {
		if d.Event.ResourceID == "10" {
			break
		}
	}
	want := strings.Fields("1 2 2 2 3 4 5 6 7 8 9 10")
	if got := a.sequence(); !slices.Equal(got, want) {
		t.Fatalf("arrivals %v, want %v", got, want)
	}
}

// The same run without Ordered (per-webhook concurrency 2) can deliver out
// of order: the 3rd notification arrives while the 2nd waits for its retry
// (the receiver holds the 2nd's first answer until the 3rd has arrived).
func TestConcurrentDeliveryCanReorder(t *testing.T) {
	a, srv := newArrivals(t, nil)
	release := make(chan struct{})
	a.answer = func(res string, n int, seen func(string) bool) int {
		if res == "3" {
			close(release)
		}
		if res == "2" && n == 1 {
			select {
			case <-release:
			case <-time.After(waitTimeout):
				return http.StatusTeapot // the test fails below: 3 never came
			}
		}
		return failSecondTwice(res, n, seen)
	}
	h := newHarness(t, func(o *Options) {
		o.Policy = Policy{Delays: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}}
	})
	h.addWebhook(srv.URL+"/hook", nil)
	h.start()
	orderedEvents(t, h, 10)
	for range 12 {
		recv(t, a.got, "a notification")
	}
	seq := a.sequence()
	last2 := -1 // where the 2nd's successful (3rd) attempt arrived
	for i, n := 0, 0; i < len(seq); i++ {
		if seq[i] == "2" {
			if n++; n == 3 {
				last2 = i
			}
		}
	}
	first3 := slices.Index(seq, "3")
	if first3 < 0 || last2 < 0 || first3 > last2 {
		t.Fatalf("arrivals %v: no notification after the 2nd arrived before its success; want an inversion", seq)
	}
	t.Logf("arrivals without Ordered: %v", seq)
}

// Order comes from the store: an engine started afresh on the same data
// holds the notifications behind a failing one again, even when they were
// made due, and sends them in order once it succeeds.
func TestOrderedSurvivesRestart(t *testing.T) {
	var mu sync.Mutex
	fail := true
	a, srv := newArrivals(t, func(res string, n int, _ func(string) bool) int {
		mu.Lock()
		defer mu.Unlock()
		if res == "2" && fail {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h := newHarness(t, func(o *Options) { o.Policy = Policy{Delays: []time.Duration{time.Hour}} })
	w := h.addWebhook(srv.URL+"/hook", func(w *rswebhooks.Webhook) { w.Ordered = true })
	h.start()
	orderedEvents(t, h, 5)
	recv(t, a.got, "notification 1")
	recv(t, a.got, "notification 2")
	ctx := context.Background()
	pending := func() []*rswebhooks.Delivery {
		ds, err := h.db.ListDeliveries(ctx, w.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []*rswebhooks.Delivery
		for _, d := range ds {
			if d.State == rswebhooks.DeliveryPending {
				out = append(out, d)
			}
		}
		return out
	}
	held := func() bool {
		n := 0
		for _, d := range pending() {
			if d.Reason == ReasonOrderedWait && d.NextUTC.After(time.Now()) {
				n++
			}
		}
		return n == 3
	}
	waitUntil(t, "3, 4 and 5 held behind 2", held)
	h.stop()
	h.stop = nil

	// Make the held ones due, as if the hold had been lost.
	var second string
	for _, d := range pending() {
		if d.Event.ResourceID == "2" {
			second = d.ID
			continue
		}
		if _, err := h.db.Redeliver(ctx, d.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	fail = false
	mu.Unlock()

	e2, err := New(Options{Store: h.db, Access: AllowAll{}, Client: loopbackClient(5 * time.Second),
		Policy: Policy{Delays: []time.Duration{time.Hour}}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = e2.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the restarted engine to hold 3, 4 and 5 again", held)
	if got := a.sequence(); len(got) != 2 {
		t.Fatalf("arrivals after restart before 2 was due: %v, want only [1 2]", got)
	}
	if _, err := e2.Redeliver(ctx, second); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		recv(t, a.got, "a notification after the restart")
	}
	want := strings.Fields("1 2 2 3 4 5")
	if got := a.sequence(); !slices.Equal(got, want) {
		t.Fatalf("arrivals %v, want %v", got, want)
	}
}

// A long backlog of an ordered webhook with a slow receiver, due before
// another webhook's notifications, does not hide them, and stays in order.
func TestOrderedBacklogDoesNotHideOthers(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, dir, nil, func(e *Engine) { e.headScan, e.sweepScan = 40, 40 })
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(100 * time.Millisecond) })
		b.addWebhook("ordered", slow, func(w *rswebhooks.Webhook) { w.Ordered = true })
		b.addEvents(300)
		time.Sleep(time.Second)
		b.addWebhook("free", nil, nil)
		since := time.Now()
		b.addEvents(10)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		free := b.got("free")
		if len(free) != 10 {
			t.Fatalf("other webhook got %d of 10 notifications within 2 s behind a 300-long ordered backlog", len(free))
		}
		if last := free[len(free)-1].at - since.Sub(b.start); last > time.Second {
			t.Errorf("its last notification came %s after the events, want within a second", last)
		}
		time.Sleep(40 * time.Second)
		synctest.Wait()
		got := b.got("ordered")
		if len(got) != 310 {
			t.Fatalf("ordered webhook got %d of 310 notifications", len(got))
		}
		for i, h := range got {
			want := itoa(i + 1)
			if i >= 300 {
				want = itoa(i - 299)
			}
			if h.resource != want {
				t.Fatalf("ordered webhook: notification %d is resource %s, want %s", i+1, h.resource, want)
			}
		}
	})
}
