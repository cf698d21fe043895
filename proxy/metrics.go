package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// methodLabels are the only values of the method label; anything else is
// counted as "OTHER" so a client cannot blow up the label set.
var methodLabels = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}

func methodIndex(m string) int {
	for i, l := range methodLabels[:len(methodLabels)-1] {
		if m == l {
			return i
		}
	}
	return len(methodLabels) - 1
}

// Metrics are the proxy's Prometheus metrics (listed in deploy/metrics.txt):
// rswebhooks_proxy_requests_total{method,code},
// rswebhooks_proxy_request_duration_seconds{method} and
// rswebhooks_upstream_errors_total; and the capture budget's
// rswebhooks_capture_bytes and rswebhooks_capture_skipped_total{reason}.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       [len(methodLabels)]prometheus.Observer
	upstreamErrors prometheus.Counter
	captureBytes   prometheus.Gauge
	skipped        [len(skipReasons)]prometheus.Counter
	// counters caches requests' series by method and status code (100..599),
	// resolved on first use, so counting a request does no label lookup.
	// Series appear only once used, as with WithLabelValues.
	counters [len(methodLabels)][600]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

// NewMetrics creates the proxy metrics and registers them with reg (nil: not
// registered). The duration series of every method label start at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_proxy_requests_total",
			Help: "Requests served by the proxy listener, by method and response status code.",
		}, []string{"method", "code"}),
		upstreamErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "rswebhooks_upstream_errors_total",
			Help: "Requests that got no response from the upstream (answered 502).",
		}),
		captureBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_capture_bytes",
			Help: "Bytes of tapped bodies held for detection right now; never above the capture budget.",
		}),
	}
	skipped := f.NewCounterVec(prometheus.CounterOpts{
		Name: "rswebhooks_capture_skipped_total",
		Help: "Tapped bodies not captured whole: reason=budget (the capture budget was spent; the body streamed on uncaptured), reason=limit (longer than the capture limit).",
	}, []string{"reason"})
	for i, r := range skipReasons {
		m.skipped[i] = skipped.WithLabelValues(r)
	}
	hist := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rswebhooks_proxy_request_duration_seconds",
		Help:    "Time from request arrival to the end of the response, by method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"method"})
	for i, l := range methodLabels {
		m.duration[i] = hist.WithLabelValues(l)
	}
	return m
}

func (m *Metrics) observe(method string, code int, seconds float64) {
	i := methodIndex(method)
	m.duration[i].Observe(seconds)
	if code < 100 || code >= len(m.counters[i]) {
		m.requests.WithLabelValues(methodLabels[i], strconv.Itoa(code)).Inc()
		return
	}
	ref := m.counters[i][code].Load()
	if ref == nil {
		// Racing first uses resolve the same series; either pointer is fine.
		ref = &counterRef{c: m.requests.WithLabelValues(methodLabels[i], strconv.Itoa(code))}
		m.counters[i][code].Store(ref)
	}
	ref.c.Inc()
}

func (m *Metrics) captureSkipped(reason string) {
	for i, r := range skipReasons {
		if r == reason {
			m.skipped[i].Inc()
			return
		}
	}
}
