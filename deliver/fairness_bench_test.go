package deliver

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// BenchmarkFairness measures how long another owner's notification waits
// for its first attempt (event stored → request at the receiver) while one
// owner's 1,000 webhooks point at a receiver that does not answer within
// the run (the 30 s receiver of the goal), with the default worker pool
// (16). The "idle" case is the same without that load, the baseline of
// the same run. Reported: p50 and p99 in milliseconds.
func BenchmarkFairness(b *testing.B) {
	for _, load := range []bool{false, true} {
		name := "idle"
		if load {
			name = "1000-slow-webhooks"
		}
		b.Run(name, func(b *testing.B) { benchFairness(b, load) })
	}
}

func benchFairness(b *testing.B, load bool) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	arrived := make(chan time.Time, 1)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- time.Now()
	}))
	defer fast.Close()
	h := newHarness(b, func(o *Options) {
		o.MaxConcurrency = 16
		o.AttemptTimeout = 30 * time.Second
	})
	h.e.onComplete = nil
	if load {
		for range 1000 {
			h.addWebhook(slow.URL+"/", func(w *rswebhooks.Webhook) { w.Filters = []string{rswebhooks.FilterReports} })
		}
	}
	h.addWebhook(fast.URL+"/", func(w *rswebhooks.Webhook) {
		w.User = rswebhooks.User{ID: "u-admin", Name: "admin"}
		w.Filters = []string{rswebhooks.FilterCategories}
	})
	h.start()
	if load {
		h.addEvent(rswebhooks.FilterReports, "r1") // 1,000 deliveries that hang
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		h.addEvent(rswebhooks.FilterCategories, "c")
		at := recv(b, arrived, "the other owner's notification")
		lat = append(lat, at.Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	h.stop()
	h.stop = nil
}
