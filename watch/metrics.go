package watch

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Poll results, the values of the result label.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// Metrics are the watcher's Prometheus metrics.
type Metrics struct {
	// Polls counts poll cycles by result (ok|error, both pre-created).
	Polls *prometheus.CounterVec
	// PollDuration is the wall time of one poll cycle.
	PollDuration prometheus.Histogram
	// Lag is, at the end of each poll, the seconds since the start of the
	// last successful poll: the age of the watcher's view of the server. It
	// is about one poll's duration while healthy and grows while polls fail.
	Lag prometheus.Gauge
}

// NewMetrics registers the watcher metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Polls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_watcher_polls_total",
			Help: "Execution watcher poll cycles by result (ok or error).",
		}, []string{"result"}),
		PollDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "rswebhooks_watcher_poll_duration_seconds",
			Help:    "Wall time of one execution watcher poll cycle.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		Lag: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_watcher_lag_seconds",
			Help: "Seconds since the start of the last successful execution watcher poll, updated after every poll.",
		}),
	}
	m.Polls.WithLabelValues(ResultOK)
	m.Polls.WithLabelValues(ResultError)
	return m
}
