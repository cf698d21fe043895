package daemon

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/reportserver"
)

// serviceLogins counts the service account's logins at the report server
// and logs each change between working and failing once, naming why, so a
// changed password or a disabled account is seen at once, not only as
// access checks that keep waiting.
type serviceLogins struct {
	log   zerolog.Logger
	total *prometheus.CounterVec

	mu     sync.Mutex
	failed string // the last failure's reason; "" while logins work
}

// Login results: ok, refused (name or password refused: a changed password,
// a disabled or deleted account) and error (the server did not answer well).
const (
	loginOK      = "ok"
	loginRefused = "refused"
	loginError   = "error"
)

func newServiceLogins(reg prometheus.Registerer, log zerolog.Logger) *serviceLogins {
	s := &serviceLogins{
		log: log.With().Str("component", "service_account").Logger(),
		total: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_service_account_logins_total",
			Help: "Service-account logins at the report server's /Token, by result (ok, refused, error).",
		}, []string{"result"}),
	}
	for _, r := range []string{loginOK, loginRefused, loginError} {
		s.total.WithLabelValues(r)
	}
	return s
}

// observe is reportserver.Options.OnServiceLogin.
func (s *serviceLogins) observe(err error) {
	result := loginOK
	switch {
	case err == nil:
	case errors.Is(err, reportserver.ErrBadCredentials):
		result = loginRefused
	default:
		result = loginError
	}
	s.total.WithLabelValues(result).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil && s.failed != "":
		s.log.Info().Str("after", s.failed).Msg("the service account logs in again")
		s.failed = ""
	case err != nil && s.failed != result:
		ev := s.log.Error().Err(err).Str("result", result)
		if result == loginRefused {
			ev.Msg("the report server refuses the service account's name or password (changed password, or the account disabled or deleted?): access checks for non-administrators wait and the watcher and reconciler stop until it logs in; retried with a fresh login")
		} else {
			ev.Msg("the service account cannot log in; retried with a fresh login")
		}
		s.failed = result
	}
}
