package deliver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// BenchmarkDeliver measures sustained deliveries/s through the durable
// queue (real Badger store, fan-out, signing, loopback receiver) with ~1 KB
// bodies: b.N deliveries spread over 8 webhooks.
func BenchmarkDeliver(b *testing.B) {
	const hooks = 8
	events := (b.N + hooks - 1) / hooks
	total := int64(events * hooks)
	var got atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == total {
			close(done)
		}
	}))
	defer srv.Close()
	h := newHarness(b, func(o *Options) { o.MaxConcurrency = 32; o.PerWebhookConcurrency = 4 })
	h.e.onComplete = nil
	pad := strings.Repeat("x", 560)
	for i := 0; i < hooks; i++ {
		h.addWebhook(srv.URL, func(w *rswebhooks.Webhook) {
			w.Properties = map[string]json.RawMessage{"pad": json.RawMessage(`"` + pad + `"`)}
		})
	}
	h.start()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < events; i++ {
		h.addEvent(rswebhooks.FilterReports, "r")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d delivered", got.Load(), total)
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "deliveries/s")
	b.StopTimer()
}
