package deliver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the delivery side's series (listed in deploy/metrics.txt). Label values are
// bounded and pre-created, so every series starts at 0.
type Metrics struct {
	Deliveries      *prometheus.CounterVec // outcome: succeeded|failed|gone|skipped
	Attempts        *prometheus.CounterVec // status_class: 2xx|3xx|4xx|5xx|error
	AttemptDuration prometheus.Histogram
	QueueDepth      prometheus.Gauge
	OldestPending   prometheus.Gauge
	Lag             prometheus.Histogram
	Webhooks        *prometheus.GaugeVec // state: active|paused|owner_missing
	Denied          prometheus.Counter
	Unfanned        prometheus.Gauge
	UnfannedAge     prometheus.Gauge
	Throttled       *prometheus.CounterVec // reason: max_per_second|adaptive|retry_after
	ThrottleDelay   prometheus.Histogram
	Slowdowns       *prometheus.CounterVec // status: 429|503
	Throttling      prometheus.Gauge
}

// Outcome label values of rswebhooks_deliveries_total.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeGone      = "gone"
	OutcomeSkipped   = "skipped"
)

// NewMetrics registers the delivery metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Deliveries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_deliveries_total",
			Help: "Deliveries that ended, by outcome (succeeded, failed, gone, skipped).",
		}, []string{"outcome"}),
		Attempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_delivery_attempts_total",
			Help: "Delivery attempts by the receiver's status class (error: no HTTP answer).",
		}, []string{"status_class"}),
		AttemptDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "rswebhooks_delivery_attempt_duration_seconds",
			Help:    "Duration of one delivery attempt, from request to response body read.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		QueueDepth: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_delivery_queue_depth",
			Help: "Pending deliveries in the durable queue.",
		}),
		OldestPending: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_delivery_oldest_pending_age_seconds",
			Help: "How long the earliest-due pending delivery has been due (0 when none is due).",
		}),
		Lag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "rswebhooks_delivery_lag_seconds",
			Help:    "Time from the event to its successful delivery.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600},
		}),
		Webhooks: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rswebhooks_webhooks",
			Help: "Registered webhooks by state (active, paused, owner_missing: owner deleted or disabled at the report server).",
		}, []string{"state"}),
		Denied: f.NewCounter(prometheus.CounterOpts{
			Name: "rswebhooks_deliveries_denied_total",
			Help: "Deliveries dropped before their first attempt because the owner may not read the resource.",
		}),
		Unfanned: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_events_unfanned",
			Help: "Stored events not yet turned into deliveries.",
		}),
		UnfannedAge: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_events_unfanned_oldest_age_seconds",
			Help: "Age of the oldest event not yet turned into deliveries (0 when none waits).",
		}),
		Throttled: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_throttled_total",
			Help: "Deliveries a webhook's rate held back when they were due, by reason (max_per_second: its MaxPerSecond; adaptive: its rate lowered after 429/503 answers; retry_after: a receiver's Retry-After pause). Each delivery counts once.",
		}, []string{"reason"}),
		ThrottleDelay: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "rswebhooks_throttle_delay_seconds",
			Help:    "Delay a webhook's rate added to a held delivery: from when it was first held to its attempt.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		Slowdowns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_throttle_slowdowns_total",
			Help: "Times a webhook's rate was halved because its receiver answered 429 or 503, by status.",
		}, []string{"status"}),
		Throttling: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_throttled_webhooks",
			Help: "Webhooks whose rate is lowered after 429/503 answers or paused by a Retry-After.",
		}),
	}
	for _, r := range []string{ThrottleMaxPerSecond, ThrottleAdaptive, ThrottleRetryAfter} {
		m.Throttled.WithLabelValues(r)
	}
	m.Slowdowns.WithLabelValues("429")
	m.Slowdowns.WithLabelValues("503")
	for _, o := range []string{OutcomeSucceeded, OutcomeFailed, OutcomeGone, OutcomeSkipped} {
		m.Deliveries.WithLabelValues(o)
	}
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		m.Attempts.WithLabelValues(c)
	}
	m.Webhooks.WithLabelValues("active")
	m.Webhooks.WithLabelValues("paused")
	m.Webhooks.WithLabelValues("owner_missing")
	return m
}
