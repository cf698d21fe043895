package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/signature"
)

func decodeBody(t *testing.T, b []byte) Body {
	t.Helper()
	var body Body
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
	return body
}

func counter(t *testing.T, h *harness, name, label string) float64 {
	t.Helper()
	switch name {
	case "deliveries":
		return promtest.ToFloat64(h.e.m.Deliveries.WithLabelValues(label))
	case "attempts":
		return promtest.ToFloat64(h.e.m.Attempts.WithLabelValues(label))
	}
	t.Fatalf("unknown counter %s", name)
	return 0
}

func TestDeliverSuccess(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, nil))
	defer srv.Close()
	h := newHarness(t, nil)
	w := h.addWebhook(srv.URL+"/hook?token=abc", func(w *rswebhooks.Webhook) {
		w.Properties = map[string]json.RawMessage{"env": json.RawMessage(`"test"`)}
		w.Headers = map[string]string{"X-Tenant": "t1"}
	})
	h.start()
	ev := h.addEvent(rswebhooks.FilterReports, "r1")

	r := recv(t, got, "the notification")
	d := h.nextFinal()
	if d.State != rswebhooks.DeliverySucceeded || d.Attempts != 1 || d.LastStatus != 200 {
		t.Fatalf("delivery = %+v, want succeeded after 1 attempt with 200", d)
	}
	if err := signature.Verify(w.Secret, r.Header.Get("ms-signature"), r.Body); err != nil {
		t.Fatalf("ms-signature: %v", err)
	}
	if err := signature.VerifyStandard(w.Secret, r.Header, r.Body, time.Now(), 0); err != nil {
		t.Fatalf("webhook-signature: %v", err)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json; charset=utf-8", "User-Agent": "rswebhooks/1.2.3",
		"Webhook-Id": d.ID, "X-Tenant": "t1",
	} {
		if r.Header.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, r.Header.Get(k), want)
		}
	}
	body := decodeBody(t, r.Body)
	if body.ID != d.ID || body.Attempt != 1 || string(body.Properties["env"]) != `"test"` || len(body.Notifications) != 1 {
		t.Fatalf("body = %+v", body)
	}
	n := body.Notifications[0]
	if n.Action != "reports" || n.EventType != "Created" || n.EventID != ev.ID || n.ResourceID != "r1" || n.UserName != "bob" {
		t.Fatalf("notification = %+v", n)
	}
	as, err := h.db.Attempts(context.Background(), d.ID)
	if err != nil || len(as) != 1 || as[0].StatusCode != 200 || as[0].N != 1 {
		t.Fatalf("attempts = %+v, %v", as, err)
	}
	if v := counter(t, h, "deliveries", "succeeded"); v != 1 {
		t.Errorf("deliveries_total{succeeded} = %v, want 1", v)
	}
	if v := counter(t, h, "attempts", "2xx"); v != 1 {
		t.Errorf("attempts_total{2xx} = %v, want 1", v)
	}
	if n := promtest.CollectAndCount(h.e.m.Lag); n != 1 {
		t.Errorf("lag histogram series = %d, want 1", n)
	}
	checkHistogramCount(t, h, "rswebhooks_delivery_lag_seconds", 1)
	checkHistogramCount(t, h, "rswebhooks_delivery_attempt_duration_seconds", 1)
	verifyWithNode(t, w.Secret, r)
}

func checkHistogramCount(t *testing.T, h *harness, name string, want uint64) {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			if got := mf.GetMetric()[0].GetHistogram().GetSampleCount(); got != want {
				t.Errorf("%s count = %d, want %d", name, got, want)
			}
			return
		}
	}
	t.Errorf("metric %s not registered", name)
}

func TestRetryThenSuccess(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("try later"))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	h := newHarness(t, nil)
	w := h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")

	var ids, sigs []string
	for i := 1; i <= 3; i++ {
		r := recv(t, got, "attempt")
		if err := signature.Verify(w.Secret, r.Header.Get("ms-signature"), r.Body); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		b := decodeBody(t, r.Body)
		if b.Attempt != i {
			t.Fatalf("attempt %d has Attempt %d", i, b.Attempt)
		}
		ids = append(ids, b.ID)
		sigs = append(sigs, r.Header.Get("ms-signature"))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("Id changed across attempts: %v", ids)
	}
	if sigs[0] == sigs[1] || sigs[1] == sigs[2] {
		t.Fatalf("signature did not change with Attempt: %v", sigs)
	}
	d := h.nextFinal()
	if d.State != rswebhooks.DeliverySucceeded || d.Attempts != 3 {
		t.Fatalf("delivery = %+v, want succeeded after 3 attempts", d)
	}
	as, _ := h.db.Attempts(context.Background(), d.ID)
	if len(as) != 3 || as[0].StatusCode != 500 || as[0].ResponseBody != "try later" || as[2].StatusCode != 200 {
		t.Fatalf("attempts = %+v", as)
	}
	if v := counter(t, h, "attempts", "5xx"); v != 2 {
		t.Errorf("attempts_total{5xx} = %v, want 2", v)
	}
}

func TestGiveUpAfterLastAttemptAndRedeliver(t *testing.T) {
	fail := true
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 3 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_ = fail
	h := newHarness(t, nil)
	h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	d := h.nextFinal()
	if d.State != rswebhooks.DeliveryFailed || d.Attempts != 3 || !strings.Contains(d.Reason, "gave up after 3 attempts") {
		t.Fatalf("delivery = %+v, want failed after 3 attempts", d)
	}
	if v := counter(t, h, "deliveries", "failed"); v != 1 {
		t.Errorf("deliveries_total{failed} = %v, want 1", v)
	}
	if _, err := h.e.Redeliver(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	d = h.nextFinal()
	if d.State != rswebhooks.DeliverySucceeded || d.Attempts != 4 {
		t.Fatalf("after redeliver = %+v, want succeeded at attempt 4", d)
	}
	if _, err := h.e.Redeliver(context.Background(), "nope"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("Redeliver(unknown) = %v, want ErrNotFound", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h := newHarness(t, func(o *Options) {
		o.AttemptTimeout = 200 * time.Millisecond
		o.Policy = Policy{Delays: []time.Duration{}, MaxRetryAfter: time.Hour}
	})
	h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	d := h.nextFinal()
	if d.State != rswebhooks.DeliveryFailed || !strings.Contains(d.LastError, "attempt timeout of 200ms") {
		t.Fatalf("delivery = %+v, want failed with a timeout error", d)
	}
	if v := counter(t, h, "attempts", "error"); v != 1 {
		t.Errorf("attempts_total{error} = %v, want 1", v)
	}
}

func TestConnectionReset(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST instead of FIN
		}
		_ = conn.Close()
	}))
	defer srv.Close()
	h := newHarness(t, func(o *Options) { o.Policy = Policy{Delays: []time.Duration{time.Millisecond}} })
	h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	recv(t, got, "attempt 1")
	recv(t, got, "attempt 2 (a reset is retried)")
	d := h.nextFinal()
	if d.State != rswebhooks.DeliveryFailed || d.LastStatus != 0 || d.LastError == "" || strings.Contains(d.LastError, "?") {
		t.Fatalf("delivery = %+v, want failed with a transport error", d)
	}
	if v := counter(t, h, "attempts", "error"); v != 2 {
		t.Errorf("attempts_total{error} = %v, want 2", v)
	}
}

func TestGonePausesWebhook(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		w.WriteHeader(http.StatusGone)
	}))
	defer srv.Close()
	h := newHarness(t, nil)
	w := h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	d := h.nextFinal()
	if d.State != rswebhooks.DeliveryGone || d.Attempts != 1 {
		t.Fatalf("delivery = %+v, want gone after 1 attempt", d)
	}
	stored, err := h.db.GetWebhook(context.Background(), w.ID)
	if err != nil || !stored.IsPaused {
		t.Fatalf("webhook after 410 = %+v, %v; want paused", stored, err)
	}
	if v := counter(t, h, "deliveries", "gone"); v != 1 {
		t.Errorf("deliveries_total{gone} = %v, want 1", v)
	}
	// A paused webhook gets nothing more.
	h.addEvent(rswebhooks.FilterTasks, "t2")
	if _, _, err := h.e.fanOutOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds, _ := h.db.ListDeliveries(context.Background(), w.ID, 0)
	if len(ds) != 1 {
		t.Fatalf("paused webhook has %d deliveries, want 1", len(ds))
	}
	select {
	case r := <-got:
		if b := decodeBody(t, r.Body); b.Attempt != 1 || b.ID != d.ID {
			t.Fatalf("unexpected request %+v", b)
		}
	default:
		t.Fatal("the 410 request was not recorded")
	}
	if len(got) != 0 {
		t.Fatalf("%d more requests after 410", len(got))
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := testutil.NewClock(t0)
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	h := newHarness(t, func(o *Options) { o.Now = clock.Now })
	h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	d := h.next()
	if d.State != rswebhooks.DeliveryPending || !d.NextUTC.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("after 429 = %+v, want pending until t0+120s", d)
	}
	due, err := h.db.Due(context.Background(), t0.Add(119*time.Second), 0)
	if err != nil || len(due) != 0 {
		t.Fatalf("due before Retry-After = %d, %v; want none", len(due), err)
	}
	clock.Set(t0.Add(120 * time.Second))
	h.e.Wake()
	d = h.nextFinal()
	if d.State != rswebhooks.DeliverySucceeded || d.Attempts != 2 {
		t.Fatalf("delivery = %+v, want succeeded at attempt 2", d)
	}
	if v := counter(t, h, "attempts", "4xx"); v != 1 {
		t.Errorf("attempts_total{4xx} = %v, want 1", v)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := make(chan received, 10)
	other := httptest.NewServer(receiver(target, nil))
	defer other.Close()
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	h := newHarness(t, func(o *Options) { o.Policy = Policy{Delays: []time.Duration{}} })
	h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	d := h.nextFinal()
	if d.State != rswebhooks.DeliveryFailed || d.LastStatus != http.StatusTemporaryRedirect {
		t.Fatalf("delivery = %+v, want failed with 307", d)
	}
	if len(target) != 0 {
		t.Fatal("the redirect was followed")
	}
	if v := counter(t, h, "attempts", "3xx"); v != 1 {
		t.Errorf("attempts_total{3xx} = %v, want 1", v)
	}
}

// hungAndFast starts a receiver that holds every request until the test
// ends (its requests arrive on hung) and one that answers at once (on got).
func hungAndFast(t *testing.T) (slow, fast *httptest.Server, hung, got chan received) {
	t.Helper()
	release := make(chan struct{})
	hung = make(chan received, 100)
	slow = httptest.NewServer(receiver(hung, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	got = make(chan received, 10)
	fast = httptest.NewServer(receiver(got, nil))
	t.Cleanup(func() {
		close(release)
		slow.Close()
		fast.Close()
	})
	return slow, fast, hung, got
}

func TestHungReceiverDoesNotBlockOthers(t *testing.T) {
	slow, fast, hung, got := hungAndFast(t)
	h := newHarness(t, func(o *Options) {
		o.MaxConcurrency = 4
		o.PerWebhookConcurrency = 2
		o.BatchSize = 2                    // a due read sees 6 deliveries: all the hung webhook's
		o.AttemptTimeout = 5 * time.Second // slow after 1 s
		o.Policy = Policy{Delays: []time.Duration{}}
	})
	h.addWebhook(slow.URL, func(w *rswebhooks.Webhook) { w.Filters = []string{"reports"} })
	h.addWebhook(fast.URL, func(w *rswebhooks.Webhook) { w.Filters = []string{"tasks"} })
	for i := 0; i < 10; i++ {
		h.addEvent(rswebhooks.FilterReports, "r")
	}
	// Fan out first so the hung webhook's deliveries are all due ahead.
	if _, _, err := h.e.fanOutOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.addEvent(rswebhooks.FilterTasks, "t")
	h.start()
	start := time.Now()
	recv(t, hung, "first request to the hung receiver")
	recv(t, hung, "second request to the hung receiver")
	r := recv(t, got, "the other webhook's notification")
	if b := decodeBody(t, r.Body); b.Notifications[0].Action != "tasks" {
		t.Fatalf("fast receiver got %+v", b)
	}
	if len(hung) != 0 {
		t.Fatalf("hung receiver has %d more concurrent requests, want the limit of 2", len(hung))
	}
	t.Logf("fast delivered after %s", time.Since(start))
	h.stop() // cancel the hung attempts before the servers close
	t.Logf("stopped after %s", time.Since(start))
	h.stop = nil
}

func TestFanOutFiltersAndPaused(t *testing.T) {
	h := newHarness(t, nil)
	reports := h.addWebhook("http://127.0.0.1:1/a", func(w *rswebhooks.Webhook) { w.Filters = []string{"Reports"} })
	tasks := h.addWebhook("http://127.0.0.1:1/b", func(w *rswebhooks.Webhook) { w.Filters = []string{"tasks"} })
	paused := h.addWebhook("http://127.0.0.1:1/c", func(w *rswebhooks.Webhook) { w.IsPaused = true })
	all := h.addWebhook("http://127.0.0.1:1/d", nil)
	ev := h.addEvent(rswebhooks.FilterReports, "r1")
	n, _, err := h.e.fanOutOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("fanOutOnce = %d, %v", n, err)
	}
	for w, want := range map[*rswebhooks.Webhook]int{reports: 1, tasks: 0, paused: 0, all: 1} {
		ds, err := h.db.ListDeliveries(context.Background(), w.ID, 0)
		if err != nil || len(ds) != want {
			t.Errorf("webhook %s: %d deliveries (%v), want %d", w.URI, len(ds), err, want)
		}
		for _, d := range ds {
			if d.EventID != ev.ID || d.State != rswebhooks.DeliveryPending || d.Event.ResourceID != "r1" {
				t.Errorf("delivery %+v", d)
			}
		}
	}
	// Fanned out once only.
	if n, _, _ := h.e.fanOutOnce(context.Background()); n != 0 {
		t.Fatalf("second fan-out handled %d events", n)
	}
}

func TestPausedMeanwhileAndDeleted(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, nil))
	defer srv.Close()
	h := newHarness(t, nil)
	w1 := h.addWebhook(srv.URL, func(w *rswebhooks.Webhook) { w.Filters = []string{"reports"} })
	w2 := h.addWebhook(srv.URL, func(w *rswebhooks.Webhook) { w.Filters = []string{"tasks"} })
	h.addEvent(rswebhooks.FilterReports, "r1")
	h.addEvent(rswebhooks.FilterTasks, "t1")
	if _, _, err := h.e.fanOutOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.db.SetPaused(context.Background(), w1.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := h.db.DeleteWebhook(context.Background(), w2.ID); err != nil {
		t.Fatal(err)
	}
	h.start()
	byHook := map[string]rswebhooks.Delivery{}
	for i := 0; i < 2; i++ {
		d := h.nextFinal()
		byHook[d.WebhookID] = d
	}
	if d := byHook[w1.ID]; d.State != rswebhooks.DeliverySkipped || d.Reason != ReasonWebhookPaused || d.Attempts != 0 {
		t.Errorf("paused meanwhile: %+v", d)
	}
	if d := byHook[w2.ID]; d.State != rswebhooks.DeliveryFailed || d.Reason != ReasonWebhookDeleted {
		t.Errorf("deleted meanwhile: %+v", d)
	}
	if len(got) != 0 {
		t.Fatalf("receiver got %d requests, want none", len(got))
	}
	// A ping still goes to a paused webhook.
	p, err := h.e.Ping(context.Background(), w1.ID, rswebhooks.User{ID: "u-admin", Name: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	r := recv(t, got, "the ping")
	b := decodeBody(t, r.Body)
	if b.ID != p.ID || b.Notifications[0].Action != PingAction || b.Notifications[0].EventType != PingEventType || b.Notifications[0].UserName != "admin" {
		t.Fatalf("ping body = %+v", b)
	}
	if d := h.nextFinal(); d.ID != p.ID || d.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("ping delivery = %+v", d)
	}
	if _, err := h.e.Ping(context.Background(), "nope", rswebhooks.User{}); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("Ping(unknown) = %v, want ErrNotFound", err)
	}
	if v := counter(t, h, "deliveries", "skipped"); v != 1 {
		t.Errorf("deliveries_total{skipped} = %v, want 1", v)
	}
}

func TestHeadersCannotOverride(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, nil))
	defer srv.Close()
	h := newHarness(t, nil)
	w := h.addWebhook(srv.URL, func(w *rswebhooks.Webhook) {
		w.Headers = map[string]string{
			"ms-signature": "sha256=00", "Webhook-Signature": "v1,AAAA", "webhook-id": "x", "webhook-timestamp": "1",
			"user-agent": "evil", "Content-Type": "text/plain", "X-Ok": "yes", "Bad Name": "v", "X-Split": "a\r\nX-Injected: 1",
		}
	})
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	r := recv(t, got, "notification")
	d := h.nextFinal()
	if err := signature.Verify(w.Secret, r.Header.Get("ms-signature"), r.Body); err != nil {
		t.Fatalf("ms-signature overridden: %v", err)
	}
	if err := signature.VerifyStandard(w.Secret, r.Header, r.Body, time.Now(), 0); err != nil {
		t.Fatalf("standard signature overridden: %v", err)
	}
	if r.Header.Get("Webhook-Id") != d.ID || r.Header.Get("User-Agent") != "rswebhooks/1.2.3" ||
		r.Header.Get("Content-Type") != "application/json; charset=utf-8" || r.Header.Get("X-Ok") != "yes" ||
		r.Header.Get("X-Injected") != "" || r.Header.Get("X-Split") != "" {
		t.Fatalf("headers = %v", r.Header)
	}
	if n := len(r.Header.Values("Ms-Signature")); n != 1 {
		t.Fatalf("%d ms-signature headers", n)
	}
}

func TestAddressPolicyInEngine(t *testing.T) {
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, nil))
	defer srv.Close()
	h := newHarness(t, func(o *Options) { o.Client = nil }) // default client: loopback refused
	h.addWebhook("http://169.254.169.254/latest/meta-data", nil)
	h.addWebhook(srv.URL, nil)
	h.start()
	h.addEvent(rswebhooks.FilterTasks, "t1")
	for i := 0; i < 2; i++ {
		d := h.nextFinal()
		if d.State != rswebhooks.DeliveryFailed || d.Attempts != 1 || !strings.Contains(d.Reason, "refused by deny rule") {
			t.Fatalf("delivery = %+v, want failed at once by the address policy", d)
		}
	}
	if len(got) != 0 {
		t.Fatal("a loopback receiver was reached without --allow-target")
	}
	if v := counter(t, h, "attempts", "error"); v != 2 {
		t.Errorf("attempts_total{error} = %v, want 2", v)
	}
}

func TestGauges(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := testutil.NewClock(t0)
	h := newHarness(t, func(o *Options) { o.Now = clock.Now })
	h.addWebhook("http://127.0.0.1:1/", nil)
	h.addWebhook("http://127.0.0.1:1/", func(w *rswebhooks.Webhook) { w.IsPaused = true })
	h.addEvent(rswebhooks.FilterTasks, "t1")
	h.addEvent(rswebhooks.FilterTasks, "t2")
	if _, _, err := h.e.fanOutOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(90 * time.Second))
	h.e.updateStats(context.Background())
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"queue depth", promtest.ToFloat64(h.e.m.QueueDepth), 2},
		{"oldest pending age", promtest.ToFloat64(h.e.m.OldestPending), 90},
		{"webhooks active", promtest.ToFloat64(h.e.m.Webhooks.WithLabelValues("active")), 1},
		{"webhooks paused", promtest.ToFloat64(h.e.m.Webhooks.WithLabelValues("paused")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// Every bounded label value exists from the start.
	if n := promtest.CollectAndCount(h.e.m.Deliveries); n != 4 {
		t.Errorf("deliveries_total has %d series, want 4", n)
	}
	if n := promtest.CollectAndCount(h.e.m.Attempts); n != 5 {
		t.Errorf("delivery_attempts_total has %d series, want 5", n)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{Access: AllowAll{}}); err == nil || !strings.Contains(err.Error(), "Options.Store") {
		t.Errorf("New without Store = %v", err)
	}
	h := newHarness(t, nil)
	if _, err := New(Options{Store: h.db}); err == nil || !strings.Contains(err.Error(), "Options.Access") {
		t.Errorf("New without Access = %v", err)
	}
	if _, err := New(Options{Store: h.db, Access: AllowAll{}, Policy: Policy{Jitter: 2}}); err == nil || !strings.Contains(err.Error(), "Jitter") {
		t.Errorf("New with bad jitter = %v", err)
	}
	e, err := New(Options{Store: h.db, Access: AllowAll{}})
	if err != nil || e.Policy().MaxAttempts() != 8 {
		t.Fatalf("defaults: %v, %+v", err, e.Policy())
	}
}

// A refill reads a bounded part of the queue; the sweep over the rest still
// finds another webhook's delivery behind a long backlog of a webhook at its
// limit.
func TestSweepFindsDeliveryBehindBacklog(t *testing.T) {
	slow, fast, hung, got := hungAndFast(t)
	h := newHarness(t, func(o *Options) {
		o.MaxConcurrency = 4
		o.PerWebhookConcurrency = 2
		o.BatchSize = 2
		o.AttemptTimeout = 5 * time.Second
		o.Policy = Policy{Delays: []time.Duration{}}
	})
	h.e.headScan, h.e.sweepScan = 3, 4 // 60 hung deliveries ahead: many refills to sweep past
	hw := h.addWebhook(slow.URL, func(w *rswebhooks.Webhook) { w.Filters = []string{"reports"} })
	h.addWebhook(fast.URL, func(w *rswebhooks.Webhook) { w.Filters = []string{"tasks"} })
	for i := 0; i < 60; i++ {
		h.addEvent(rswebhooks.FilterReports, "r")
	}
	if _, _, err := h.e.fanOutOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.addEvent(rswebhooks.FilterTasks, "t")
	h.start()
	recv(t, hung, "first request to the hung receiver")
	recv(t, hung, "second request to the hung receiver")
	r := recv(t, got, "the other webhook's notification")
	if b := decodeBody(t, r.Body); b.Notifications[0].Action != "tasks" {
		t.Fatalf("fast receiver got %+v", b)
	}
	if len(hung) != 0 {
		t.Fatalf("hung receiver has %d more concurrent requests, want the limit of 2", len(hung))
	}
	// Found by the sweep, not because the slow webhook's deliveries were
	// moved back in the queue (which happens once an attempt is slow).
	ds, err := h.db.ListDeliveries(context.Background(), hw.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.NextUTC.After(d.CreatedUTC) {
			t.Fatalf("delivery %s was postponed to %s", d.ID, d.NextUTC)
		}
	}
	if len(ds) != 60 {
		t.Fatalf("%d deliveries of the hung webhook, want 60", len(ds))
	}
	h.stop()
	h.stop = nil
}
