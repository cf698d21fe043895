package detect

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rswebhooks/rswebhooks"
)

// Metrics are the detector's Prometheus metrics.
type Metrics struct {
	// Events counts events stored, by filter name (type) and event type (event).
	Events *prometheus.CounterVec
	// Lost counts events the store refused, by reason: the store's
	// degraded-mode condition (rswebhooks.StoreConditions) or "error" for any
	// other store failure. The response still went out.
	Lost *prometheus.CounterVec
	// Unmatched counts successful non-safe calls no rule (not even an ignore
	// rule) matched, by method: POST, PUT, PATCH, DELETE or OTHER.
	Unmatched *prometheus.CounterVec
	// WithoutID counts events stored with an empty ResourceId because the id
	// lived only in a body that was truncated, too large or unparseable.
	WithoutID *prometheus.CounterVec
}

// unmatchedMethods are the bounded values of the Unmatched method label.
var unmatchedMethods = []string{"POST", "PUT", "PATCH", "DELETE", "OTHER"}

// lostReasonError is the Lost reason of a store failure outside degraded mode.
const lostReasonError = "error"

// lostReasons are the bounded values of the Lost reason label.
func lostReasons() []string { return append(rswebhooks.StoreConditions(), lostReasonError) }

// lostReason maps a store error to its Lost reason.
func lostReason(err error) string {
	if c := rswebhooks.StoreCondition(err); c != "" {
		return c
	}
	return lostReasonError
}

func methodLabel(m string) string {
	for _, v := range unmatchedMethods[:4] {
		if m == v {
			return v
		}
	}
	return "OTHER"
}

// NewMetrics registers the detector's metrics on reg, with every label pair
// pre-created at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_events_total",
			Help: "Events stored, by filter name (type) and event type (event).",
		}, []string{"type", "event"}),
		Lost: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_events_lost_total",
			Help: "Events that could not be stored, by reason (disk_full, unwritable, unopened: the store's degraded mode; error: any other store failure); the client still got the report server's response.",
		}, []string{"reason"}),
		Unmatched: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_unmatched_mutations_total",
			Help: "Successful non-safe calls that no detection rule matched, by method.",
		}, []string{"method"}),
		WithoutID: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_events_without_id_total",
			Help: "Events stored without a resource id because the body holding it was truncated or unparseable, by filter name.",
		}, []string{"type"}),
	}
	for _, t := range rswebhooks.Filters() {
		for _, e := range rswebhooks.EventTypes() {
			m.Events.WithLabelValues(t, e)
		}
		m.WithoutID.WithLabelValues(t)
	}
	for _, r := range lostReasons() {
		m.Lost.WithLabelValues(r)
	}
	for _, v := range unmatchedMethods {
		m.Unmatched.WithLabelValues(v)
	}
	return m
}
