package access

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Result label values of rswebhooks_access_checks_total.
const (
	ResultAllowed      = "allowed"
	ResultDenied       = "denied"
	ResultOwnerMissing = "owner_missing"
	ResultUnknown      = "unknown"
	ResultError        = "error"
)

// Metrics counts access decisions.
type Metrics struct {
	Checks *prometheus.CounterVec // result
}

// NewMetrics registers the access metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Checks: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_access_checks_total",
			Help: "Access decisions for notifications by result (allowed, denied, owner_missing, unknown: no service account, error: the report server could not answer).",
		}, []string{"result"}),
	}
	for _, r := range []string{ResultAllowed, ResultDenied, ResultOwnerMissing, ResultUnknown, ResultError} {
		m.Checks.WithLabelValues(r)
	}
	return m
}

// Result maps a decision to its label value.
func Result(ok bool, err error) string {
	switch {
	case errors.Is(err, ErrOwnerMissing):
		return ResultOwnerMissing
	case errors.Is(err, ErrAccessUnknown):
		return ResultUnknown
	case err != nil:
		return ResultError
	case ok:
		return ResultAllowed
	}
	return ResultDenied
}

func (m *Metrics) count(ok bool, err error) {
	if m == nil {
		return
	}
	m.Checks.WithLabelValues(Result(ok, err)).Inc()
}
