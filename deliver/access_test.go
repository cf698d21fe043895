package deliver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
)

// accessFn adapts a function to Access.
type accessFn func(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error)

func (f accessFn) CanRead(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error) {
	return f(ctx, owner, ev)
}

// Access is decided per delivery, just before its first attempt: one
// owner's undecided access (a permission read that hangs, then fails) does
// not hold up another webhook's delivery nor later events; a deleted owner
// is a decision (skipped owner_missing, webhook flagged, cleared when the
// owner is back); a denied delivery is dropped; a transient failure is
// retried on the schedule and ends as access_error.
func TestAccessDecidedPerDelivery(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	gone := true
	h := newHarness(t, func(o *Options) {
		o.MaxConcurrency = 4
		o.Access = accessFn(func(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error) {
			switch owner.ID {
			case "u-flaky":
				select {
				case <-release:
				case <-ctx.Done():
				}
				return false, errors.New("report server answered 503")
			case "u-gone":
				mu.Lock()
				defer mu.Unlock()
				if gone {
					return false, rswebhooks.ErrOwnerMissing
				}
				return true, nil
			case "u-no":
				return false, nil
			}
			return true, nil
		})
	})
	got := make(chan received, 16)
	rcv := httptest.NewServer(receiver(got, nil))
	defer rcv.Close()
	owner := func(id string) func(*rswebhooks.Webhook) {
		return func(w *rswebhooks.Webhook) { w.User = rswebhooks.User{ID: id, Name: strings.TrimPrefix(id, "u-")} }
	}
	flaky := h.addWebhook(rcv.URL+"/flaky", owner("u-flaky"))
	goneHook := h.addWebhook(rcv.URL+"/gone", owner("u-gone"))
	no := h.addWebhook(rcv.URL+"/no", owner("u-no"))
	ok := h.addWebhook(rcv.URL+"/ok", owner("u-ok"))
	h.start()

	ev1 := h.addEvent(rswebhooks.FilterReports, "r1")
	ev2 := h.addEvent(rswebhooks.FilterReports, "r2")
	// Both events reach the allowed webhook while flaky's check still hangs.
	for range 2 {
		r := recv(t, got, "a notification for the allowed webhook")
		if !strings.Contains(string(r.Body), "Sales r") {
			t.Fatalf("unexpected body %s", r.Body)
		}
	}
	ctx := context.Background()
	for _, ev := range []*rswebhooks.Event{ev1, ev2} {
		d, err := h.db.GetDelivery(ctx, rswebhooks.DeliveryID(ev, flaky.ID))
		if err != nil || d.Attempts != 0 || !d.AccessPending {
			t.Fatalf("flaky delivery before release = %+v, %v; want pending, undecided", d, err)
		}
	}
	close(release)

	finals := map[string]rswebhooks.Delivery{}
	for len(finals) < 6 { // ok×2 succeeded, gone×2 skipped, flaky×2 access_error
		d := h.next()
		if d.State != rswebhooks.DeliveryPending {
			finals[d.ID] = d
		}
	}
	for _, ev := range []*rswebhooks.Event{ev1, ev2} {
		want := map[string]struct{ state, reason string }{
			ok.ID:       {rswebhooks.DeliverySucceeded, ""},
			goneHook.ID: {rswebhooks.DeliverySkipped, ReasonOwnerMissing},
			flaky.ID:    {rswebhooks.DeliverySkipped, ReasonAccessError},
		}
		for wh, w := range want {
			d := finals[rswebhooks.DeliveryID(ev, wh)]
			if d.State != w.state || d.Reason != w.reason {
				t.Errorf("webhook %s: %s %q, want %s %q", wh, d.State, d.Reason, w.state, w.reason)
			}
		}
		if _, err := h.db.GetDelivery(ctx, rswebhooks.DeliveryID(ev, no.ID)); !errors.Is(err, rswebhooks.ErrNotFound) {
			t.Errorf("denied delivery kept: %v", err)
		}
	}
	as, err := h.db.Attempts(ctx, rswebhooks.DeliveryID(ev1, flaky.ID))
	if err != nil || len(as) != 3 || !strings.Contains(as[0].Error, "access check") || !strings.Contains(as[0].Error, "503") {
		t.Fatalf("flaky attempts = %v, %v; want 3 recorded access check failures", as, err)
	}
	w, _ := h.db.GetWebhook(ctx, goneHook.ID)
	if !w.OwnerMissing {
		t.Fatal("webhook of a deleted owner not flagged OwnerMissing")
	}
	if v := testutil.ToFloat64(h.e.m.Denied); v != 2 {
		t.Errorf("deliveries_denied_total = %v, want 2", v)
	}
	if v := counter(t, h, "deliveries", "skipped"); v != 4 {
		t.Errorf("deliveries_total{skipped} = %v, want 4", v)
	}
	h.e.updateStats(ctx)
	if v := testutil.ToFloat64(h.e.m.Webhooks.WithLabelValues("owner_missing")); v != 1 {
		t.Errorf("webhooks{owner_missing} = %v, want 1", v)
	}

	// The owner comes back: notifications resume and the flag clears.
	mu.Lock()
	gone = false
	mu.Unlock()
	ev3 := h.addEvent(rswebhooks.FilterReports, "r3")
	want := map[string]bool{rswebhooks.DeliveryID(ev3, goneHook.ID): true, rswebhooks.DeliveryID(ev3, ok.ID): true}
	for len(want) > 0 {
		if d := h.next(); d.State == rswebhooks.DeliverySucceeded {
			delete(want, d.ID)
		} else if want[d.ID] {
			t.Fatalf("after the owner came back: %s %s %q", d.ID, d.State, d.Reason)
		}
	}
	if w, _ := h.db.GetWebhook(ctx, goneHook.ID); w.OwnerMissing {
		t.Fatal("OwnerMissing not cleared after the owner came back")
	}
}

// One owner's many webhooks at a receiver that hangs take at most
// PerOwnerConcurrency workers; another owner's notification, due after all
// of them, is delivered while they still hang.
func TestOwnersShareWorkersFairly(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.MaxConcurrency = 8
		o.PerOwnerConcurrency = 4
		o.BatchSize = 8
	})
	hang := make(chan struct{})
	var mu sync.Mutex
	inflight, most := 0, 0
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	defer slow.Close()
	defer close(hang) // before slow.Close, which waits for the handlers
	got := make(chan received, 4)
	fast := httptest.NewServer(receiver(got, nil))
	defer fast.Close()
	for range 200 {
		h.addWebhook(slow.URL+"/", func(w *rswebhooks.Webhook) { w.Filters = []string{rswebhooks.FilterReports} })
	}
	h.addWebhook(fast.URL+"/", func(w *rswebhooks.Webhook) {
		w.User = rswebhooks.User{ID: "u-admin", Name: "admin"}
		w.Filters = []string{rswebhooks.FilterCategories}
	})
	h.start()
	h.addEvent(rswebhooks.FilterReports, "r1") // 200 deliveries for alice
	h.addEvent(rswebhooks.FilterCategories, "c1")
	r := recv(t, got, "the other owner's notification")
	if !strings.Contains(string(r.Body), `"categories"`) {
		t.Fatalf("unexpected notification %s", r.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 4 {
		t.Fatalf("%d attempts to one owner's webhooks at once, want at most PerOwnerConcurrency=4", most)
	}
}
