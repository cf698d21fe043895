package spool

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Forwarding results (label result of rswebhooks_spool_forwarded_total).
const (
	ResultOK        = "ok"        // stored
	ResultDuplicate = "duplicate" // the database already had it
	ResultRefused   = "refused"   // refused by the database or unreadable: lost
)

// Metrics of the spool. They exist (at zero) on a node without one, so
// every node exports the same names.
type Metrics struct {
	Outage    prometheus.Gauge
	Forwarded *prometheus.CounterVec
	src       atomic.Pointer[Spool]
}

// NewMetrics registers the spool's metrics on reg (nil: kept but not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Outage: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_spool_outage",
			Help: "1 while the shared database does not answer and acknowledged events go to the local spool.",
		}),
		Forwarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_spool_forwarded_total",
			Help: "Spooled events forwarded to the database, by result: ok, duplicate (it already had the id), refused (lost).",
		}, []string{"result"}),
	}
	for _, r := range []string{ResultOK, ResultDuplicate, ResultRefused} {
		m.Forwarded.WithLabelValues(r)
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rswebhooks_spool_events",
		Help: "Acknowledged events waiting in the local spool for the database.",
	}, func() float64 {
		if s := m.src.Load(); s != nil {
			n, _ := s.Stats()
			return float64(n)
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rswebhooks_spool_oldest_age_seconds",
		Help: "Age of the oldest event waiting in the local spool (0 when empty).",
	}, func() float64 {
		if s := m.src.Load(); s != nil {
			if _, oldest := s.Stats(); !oldest.IsZero() {
				return s.o.Now().Sub(oldest).Seconds()
			}
		}
		return 0
	})
	return m
}

func (m *Metrics) attach(s *Spool) { m.src.Store(s) }
