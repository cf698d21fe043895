package deliver

import (
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
)

// The adaptive rate, step by step on an injected clock: each 429/503 halves
// it (once per second at most), each quiet second adds a tenth of the
// ceiling back until the ceiling is reached and the slowdown is dropped.
func TestPacerCurve(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	t.Run("MaxPerSecond 20", func(t *testing.T) {
		p := newPacer(time.Now)
		steps := []struct {
			at       float64
			slowdown bool
			want     float64
		}{
			{0, false, 20},
			{0, true, 10},   // halved
			{0.5, true, 10}, // a second 429 within the second: not cut again
			{1, true, 6},    // a step up (+20/10) then halved again
			{1.9, false, 6}, // no step within the second
			{2, false, 8},   // +20/10 per quiet second
			{3, false, 10},  // …
			{5, false, 14},  // two steps
			{7, false, 18},  // two more
			{8, false, 20},  // 20 >= ceiling: slowdown dropped, MaxPerSecond again
			{60, false, 20}, // and stays there
			{60, true, 10},  // a new slowdown starts from MaxPerSecond
			{60.2, false, 10},
		}
		for _, s := range steps {
			if s.slowdown {
				p.slowdown("W", 20, 1000, 0, at(s.at))
			}
			if got := p.rate("W", 20, at(s.at)); got != s.want {
				t.Fatalf("at %gs (slowdown %v): rate %g, want %g", s.at, s.slowdown, got, s.want)
			}
		}
	})

	t.Run("no MaxPerSecond", func(t *testing.T) {
		p := newPacer(time.Now)
		if got := p.rate("W", 0, at(0)); got != 0 {
			t.Fatalf("unlimited webhook has rate %g", got)
		}
		// Seen at 40/s when the receiver said 429: start at 20, recover by 4/s.
		p.slowdown("W", 0, 40, 0, at(0))
		want := []float64{20, 24, 28, 32, 36, 0}
		for i, w := range want {
			if got := p.rate("W", 0, at(float64(i))); got != w {
				t.Fatalf("%ds after the 429: rate %g, want %g (0: no bound)", i, got, w)
			}
		}
		if len(p.paces) != 0 {
			t.Fatalf("state kept for a recovered webhook without MaxPerSecond: %d entries", len(p.paces))
		}
	})

	t.Run("floor", func(t *testing.T) {
		p := newPacer(time.Now)
		// 0.05 → 0.025 → (0.03) 0.015 → (0.02) 0.01 → (0.015) 0.0075, floored.
		for i, want := range []float64{0.025, 0.015, 0.01, rswebhooks.MinPerSecond} {
			p.slowdown("W", 0.05, 1, 0, at(float64(i)*1.01))
			if got := p.rate("W", 0.05, at(float64(i)*1.01)); math.Abs(got-want) > 1e-9 {
				t.Fatalf("rate after %d slowdowns = %g, want %g", i+1, got, want)
			}
		}
	})

	t.Run("Retry-After", func(t *testing.T) {
		p := newPacer(time.Now)
		p.slowdown("W", 0, 10, 3*time.Second, at(0))
		for _, s := range []float64{0, 1, 2.9} {
			if n, wait, why := p.available("W", 0, at(s)); n != 0 || why != ThrottleRetryAfter || wait != at(3).Sub(at(s)) {
				t.Fatalf("at %gs: available %d, wait %s, reason %q; want 0, %s, retry_after", s, n, wait, why, at(3).Sub(at(s)))
			}
		}
		if n, _, _ := p.available("W", 0, at(3)); n < 1 {
			t.Fatalf("no attempt allowed once the Retry-After ended (n = %d)", n)
		}
	})

	t.Run("token bucket", func(t *testing.T) {
		p := newPacer(time.Now)
		// Burst(5) = 1: one at once, then one each 200 ms.
		if !p.take("W", 5, at(0)) || p.take("W", 5, at(0)) {
			t.Fatal("a full bucket of 5/s did not give exactly one token at once")
		}
		if n, wait, why := p.available("W", 5, at(0.1)); n != 0 || wait != 100*time.Millisecond || why != ThrottleMaxPerSecond {
			t.Fatalf("at 0.1s: %d, %s, %q; want 0, 100ms, max_per_second", n, wait, why)
		}
		if !p.take("W", 5, at(0.2)) {
			t.Fatal("no token after 200 ms at 5/s")
		}
		if Burst(100) != 10 || Burst(0.5) != 1 {
			t.Fatalf("Burst(100) = %g, Burst(0.5) = %g; want 10 and 1", Burst(100), Burst(0.5))
		}
	})
}

// MaxPerSecond 5 against a fast receiver: 5 ± 1 notifications in each
// second of 10 (fake clock), while a webhook without a limit gets all of its
// notifications at once.
func TestMaxPerSecondHoldsWhileAnotherRunsFree(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, dir, nil)
		b.addWebhook("limited", nil, func(w *rswebhooks.Webhook) { w.MaxPerSecond = 5 })
		b.addWebhook("free", nil, nil)
		b.addEvents(200)
		time.Sleep(10 * time.Second)
		synctest.Wait()

		limited := b.got("limited")
		for s, n := range perSecond(limited, 0, 10) {
			if n < 4 || n > 6 {
				t.Errorf("second %d: %d notifications to the webhook with MaxPerSecond 5, want 5 ± 1", s, n)
			}
		}
		if n := len(limited); n < 45 || n > 55 {
			t.Errorf("%d notifications in 10 s at MaxPerSecond 5, want 50 ± 5", n)
		}
		free := b.got("free")
		if len(free) != 200 {
			t.Fatalf("webhook without a limit got %d of 200 notifications in 10 s", len(free))
		}
		if last := free[len(free)-1].at; last >= time.Second {
			t.Errorf("webhook without a limit got its last notification after %s, want within the first second", last)
		}
		if got := testutil.ToFloat64(b.e.m.Throttled.WithLabelValues(ThrottleMaxPerSecond)); got < 40 {
			t.Errorf("rswebhooks_throttled_total{reason=max_per_second} = %g, want the held deliveries (>= 40)", got)
		}
		if got := testutil.CollectAndCount(b.e.m.ThrottleDelay); got != 1 {
			t.Fatalf("throttle delay histogram has %d series", got)
		}
	})
}

// A receiver that answers 429 for its first 4 seconds: its webhook's rate
// falls while it does and climbs back step by step after, and another
// webhook's notifications flow at once the whole time.
func TestTooManyRequestsSlowsThatWebhookOnly(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, dir, func(o *Options) {
			o.Policy = Policy{Delays: []time.Duration{30 * time.Second}}
		})
		start := time.Now()
		var refused atomic.Int64
		busy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if time.Since(start) < 4*time.Second {
				refused.Add(1)
				w.WriteHeader(http.StatusTooManyRequests)
			}
		})
		b.addWebhook("busy", busy, func(w *rswebhooks.Webhook) { w.MaxPerSecond = 40 })
		b.addWebhook("calm", nil, nil)
		b.addEvents(400)
		time.Sleep(12 * time.Second)
		synctest.Wait()

		rates := perSecond(b.got("busy"), 0, 12)
		t.Logf("attempts per second to the webhook answering 429 until 4 s: %v", rates)
		// Falling while refused: 40/s, then halved each second.
		for s := 1; s < 4; s++ {
			if rates[s] >= rates[s-1] && rates[s-1] > 1 {
				t.Errorf("second %d: %d attempts, not fewer than %d the second before while the receiver answers 429", s, rates[s], rates[s-1])
			}
		}
		// Recovering step by step once it answers 200 again.
		for s := 5; s < 11; s++ {
			if rates[s] < rates[s-1] {
				t.Errorf("second %d: %d attempts, fewer than %d the second before after the receiver recovered", s, rates[s], rates[s-1])
			}
			if rates[s] > rates[s-1]+4+int(Burst(40)) {
				t.Errorf("second %d: %d attempts, a jump from %d rather than a step of 4", s, rates[s], rates[s-1])
			}
		}
		if rates[10] < 30 {
			t.Errorf("second 10: %d attempts, want the rate back near 40", rates[10])
		}
		calm := b.got("calm")
		if len(calm) != 400 || calm[len(calm)-1].at >= time.Second {
			t.Errorf("other webhook: %d of 400 notifications, last at %s; want all within the first second", len(calm), calm[len(calm)-1].at)
		}
		if got := testutil.ToFloat64(b.e.m.Slowdowns.WithLabelValues("429")); got < 3 {
			t.Errorf("rswebhooks_throttle_slowdowns_total{status=429} = %g, want a cut per refused second", got)
		}
		if got := testutil.ToFloat64(b.e.m.Throttled.WithLabelValues(ThrottleAdaptive)); got < 1 {
			t.Errorf("rswebhooks_throttled_total{reason=adaptive} = %g, want > 0", got)
		}
		if refused.Load() == 0 {
			t.Fatal("the receiver never refused")
		}
	})
}

// A 503 with Retry-After pauses that webhook until then; another webhook is
// not held.
func TestRetryAfterPausesThatWebhookOnly(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, dir, nil)
		var n atomic.Int64
		b.addWebhook("busy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}), nil)
		b.addWebhook("calm", nil, nil)
		b.addEvents(50)
		time.Sleep(20 * time.Second)
		synctest.Wait()

		busy := b.got("busy")
		var during int
		for _, h := range busy[1:] {
			if h.at < 5*time.Second {
				during++
			}
		}
		// The first answer paused the webhook; attempts already in flight
		// with it (per-webhook concurrency) may still arrive.
		if during > b.e.opts.PerWebhookConcurrency-1 {
			t.Errorf("%d attempts to the paused webhook within its 5 s Retry-After", during)
		}
		if len(busy) < 51 {
			t.Errorf("paused webhook got %d attempts by 20 s, want all 50 notifications (and the retry)", len(busy))
		}
		calm := b.got("calm")
		if len(calm) != 50 || calm[len(calm)-1].at >= time.Second {
			t.Errorf("other webhook: %d of 50 notifications, last at %s; want all within the first second", len(calm), calm[len(calm)-1].at)
		}
		if got := testutil.ToFloat64(b.e.m.Throttled.WithLabelValues(ThrottleRetryAfter)); got < 1 {
			t.Errorf("rswebhooks_throttled_total{reason=retry_after} = %g, want > 0", got)
		}
	})
}

// A long backlog of a rate-limited webhook, due before another webhook's
// notifications, does not hide them: when one read of the queue is full
// of deliveries the rate holds, those are moved back (spread by the rate).
func TestRateLimitedBacklogDoesNotHideOthers(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, dir, nil, func(e *Engine) { e.headScan, e.sweepScan = 40, 40 })
		b.addWebhook("limited", nil, func(w *rswebhooks.Webhook) { w.MaxPerSecond = 1 })
		b.addEvents(300)
		time.Sleep(time.Second)
		b.addWebhook("free", nil, nil)
		since := time.Now()
		b.addEvents(10)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		free := b.got("free")
		if len(free) != 10 {
			t.Fatalf("webhook without a limit got %d of 10 notifications within 2 s behind a 300-long rate-limited backlog", len(free))
		}
		if last := free[len(free)-1].at - since.Sub(b.start); last > time.Second {
			t.Errorf("its last notification came %s after the events, want within a second", last)
		}
		if n := len(b.got("limited")); n > 5 {
			t.Errorf("rate-limited webhook got %d notifications in 3 s at MaxPerSecond 1", n)
		}
	})
}

// The same on real loopback sockets and the real clock: a receiver that
// answers 429 with Retry-After: 30 gets no further attempt while another
// webhook receives all of its notifications.
func TestTooManyRequestsOnLoopback(t *testing.T) {
	var busyHits, calmHits atomic.Int64
	calmDone := make(chan struct{})
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		busyHits.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer busy.Close()
	calm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calmHits.Add(1) == 40 {
			close(calmDone)
		}
	}))
	defer calm.Close()
	h := newHarness(t, func(o *Options) { o.Policy = Policy{Delays: []time.Duration{time.Hour}} })
	h.addWebhook(busy.URL+"/hook", nil)
	h.addWebhook(calm.URL+"/hook", nil)
	h.start()
	for i := range 40 {
		h.addEvent(rswebhooks.FilterReports, itoa(i))
	}
	recv(t, calmDone, "all 40 notifications to the other webhook")
	waitUntil(t, "the paused webhook's due deliveries to be held", func() bool {
		return testutil.ToFloat64(h.e.m.Throttled.WithLabelValues(ThrottleRetryAfter)) >= 1
	})
	// Attempts in flight with the first 429 may still arrive; none after.
	if n := busyHits.Load(); n > int64(h.e.opts.PerWebhookConcurrency) {
		t.Errorf("%d attempts to the webhook paused by Retry-After: 30, want at most the %d in flight with the first", n, h.e.opts.PerWebhookConcurrency)
	}
	if got := testutil.ToFloat64(h.e.m.Slowdowns.WithLabelValues("429")); got < 1 {
		t.Errorf("rswebhooks_throttle_slowdowns_total{status=429} = %g, want a cut", got)
	}
}
