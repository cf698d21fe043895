// Package leader runs a job that only one node of a cluster may run at a
// time (the execution watcher): it campaigns through an Elector, runs the
// job while this node leads, stops it the moment leadership is lost, and
// campaigns again. A single node (Badger mode) uses Always and leads for
// good.
package leader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/poll"
)

// Elector grants leadership. Campaign blocks until this node leads, then
// returns a context that is done when leadership is lost (the lock's
// connection broke, the lease could not be renewed) and a release function
// that gives leadership up at once; release is safe to call more than
// once. Campaign returns an error only when ctx is done (then ctx.Err())
// or it can never succeed; transient trouble (the database down) is
// retried inside.
type Elector interface {
	Campaign(ctx context.Context) (lead context.Context, release func(), err error)
}

// Always is the Elector of a node alone: it leads at once and for good.
type Always struct{}

// Campaign implements Elector.
func (Always) Campaign(ctx context.Context) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	lead, cancel := context.WithCancel(ctx)
	return lead, cancel, nil
}

// ElectorFunc adapts a function to Elector.
type ElectorFunc func(ctx context.Context) (context.Context, func(), error)

// Campaign implements Elector.
func (f ElectorFunc) Campaign(ctx context.Context) (context.Context, func(), error) { return f(ctx) }

var (
	_ Elector = Always{}
	_ Elector = ElectorFunc(nil)
)

// Metrics of a Runner.
type Metrics struct {
	// Leader is 1 while this node runs the job.
	Leader prometheus.Gauge
	// Changes counts the times this node became leader.
	Changes prometheus.Counter
}

// NewMetrics registers the metrics of the execution watcher's election on
// reg (nil: kept but not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Leader: f.NewGauge(prometheus.GaugeOpts{
			Name: "rswebhooks_watcher_leader",
			Help: "1 while this node is the one that polls executions (cluster mode elects one; a single node always is).",
		}),
		Changes: f.NewCounter(prometheus.CounterOpts{
			Name: "rswebhooks_watcher_leader_changes_total",
			Help: "Times this node became the execution watcher's leader.",
		}),
	}
}

// Runner runs Job whenever Elector makes this node the leader.
type Runner struct {
	// Name says what is led, in logs ("execution watcher").
	Name    string
	Elector Elector
	// Job runs while this node leads; its context is done when leadership
	// is lost or Run's context is done. It should return nil then. An
	// error is logged and leadership given up (another node may do better),
	// then this node campaigns again.
	Job     func(ctx context.Context) error
	Logger  zerolog.Logger
	Metrics *Metrics // nil: NewMetrics(nil)
}

// Run campaigns, runs Job while leading, and campaigns again after losing,
// until ctx is done (then it returns nil).
func (r *Runner) Run(ctx context.Context) error {
	if r.Elector == nil || r.Job == nil {
		return errors.New("leader: Runner.Elector and Runner.Job are required")
	}
	m := r.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	log := r.Logger.With().Str("component", "leader").Logger()
	for {
		lead, release, err := r.Elector.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // cancelled: the runner stops cleanly
			}
			return fmt.Errorf("leader: campaign for the %s: %w", r.Name, err)
		}
		m.Leader.Set(1)
		m.Changes.Inc()
		log.Info().Str("job", r.Name).Msg("this node leads: running the " + r.Name)
		jerr := r.Job(lead)
		lost := lead.Err() != nil
		release()
		m.Leader.Set(0)
		switch {
		case ctx.Err() != nil:
			return nil //nolint:nilerr // cancelled: the runner stops cleanly
		case jerr != nil:
			log.Error().Err(jerr).Str("job", r.Name).Msg("the " + r.Name + " failed; leadership given up")
			// Let another node take over before campaigning again.
			if poll.Sleep(ctx, backoffAfterFailure) != nil {
				return nil //nolint:nilerr // cancelled: the runner stops cleanly
			}
		case lost:
			log.Warn().Str("job", r.Name).Msg("leadership lost: the " + r.Name + " stopped here; another node takes over")
		}
	}
}

// backoffAfterFailure is how long a node whose job failed waits before it
// campaigns again.
const backoffAfterFailure = time.Second
