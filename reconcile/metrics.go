package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rswebhooks/rswebhooks"
)

// Run results, the values of the result label.
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultRefused = "refused" // the service account is not an administrator
)

// Metrics are the reconciler's Prometheus metrics.
type Metrics struct {
	// Runs counts reconcile runs by result (ok|error|refused).
	Runs *prometheus.CounterVec
	// Changes counts the changes emitted: what the proxy missed, by
	// filter name and event type (Created|Updated|Deleted).
	Changes *prometheus.CounterVec
	// Duration is the wall time of one run.
	Duration prometheus.Histogram
	// LastSuccess is the unix time of the last successful run's start.
	LastSuccess prometheus.Gauge
}

// NewMetrics registers the reconciler metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_reconcile_runs_total",
			Help: "Reconcile runs by result (ok, error, or refused when the service account is not an administrator).",
		}, []string{"result"}),
		Changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_reconcile_changes_total",
			Help: "Changes the reconciler found that the proxy did not see, by filter name and event type.",
		}, []string{"type", "event"}),
		Duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "rswebhooks_reconcile_duration_seconds",
			Help:    "Wall time of one reconcile run.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		LastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_reconcile_last_success_timestamp_seconds",
			Help: "Unix time of the start of the last successful reconcile run (0 before the first).",
		}),
	}
	for _, r := range []string{ResultOK, ResultError, ResultRefused} {
		m.Runs.WithLabelValues(r)
	}
	for _, f := range rswebhooks.Filters() {
		for _, e := range []string{rswebhooks.EventCreated, rswebhooks.EventUpdated, rswebhooks.EventDeleted} {
			m.Changes.WithLabelValues(f, e)
		}
	}
	return m
}
