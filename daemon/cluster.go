package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/leader"
	"github.com/rswebhooks/rswebhooks/pgleader"
	"github.com/rswebhooks/rswebhooks/spool"
)

// Names of the advisory locks that elect the node running a part only one
// node may run.
const (
	watcherLock    = "rswebhooks/watcher"
	reconcilerLock = "rswebhooks/reconciler"
)

// elector elects the node that runs the part named by lock (polling every
// interval): in a cluster the holder of a PostgreSQL advisory lock, checked
// every half of min(interval, 10s), so another node takes over well within
// two intervals; a node alone (Badger) always leads.
func elector(o Options, lock string, interval time.Duration) (leader.Elector, error) {
	if o.PostgresURL == "" {
		return leader.Always{}, nil
	}
	cfg, err := pgx.ParseConfig(o.PostgresURL)
	if err != nil {
		return nil, errors.New("--postgres-url: cannot be parsed for the election of " + lock) // the store parsed it already; never echo the URL
	}
	return pgleader.New(pgleader.Options{
		Config:   cfg,
		Name:     lock,
		Node:     o.NodeName,
		Interval: max(min(interval, pgleader.DefaultInterval), time.Second),
		Logger:   o.Logger,
	})
}

// openSpool puts the local spool in front of the shared store's event
// path (cluster mode only): events the proxy acknowledges while PostgreSQL
// does not answer wait in <data-dir>/spool. Nil without --postgres-url.
func openSpool(o Options, next detect.EventStore, m *spool.Metrics, onForward func()) (*spool.Spool, error) {
	if o.PostgresURL == "" {
		return nil, nil
	}
	sp, err := spool.Open(spool.Options{
		Dir:        filepath.Join(o.DataDir, "spool"),
		Next:       next,
		Refused:    refusedByPostgres,
		SyncWrites: o.SyncWrites,
		OnForward:  onForward,
		Logger:     o.Logger,
		Metrics:    m,
	})
	if err != nil {
		return nil, fmt.Errorf("--data-dir (the spool for database outages): %w", err)
	}
	return sp, nil
}

// refusedByPostgres: PostgreSQL answered and refused the event itself (bad
// data, a constraint other than the id's uniqueness): retrying cannot help.
// Anything else (no connection, a timeout, the server shutting down or
// failing over) is an outage, and the event is spooled.
func refusedByPostgres(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.SQLState()[:2] {
	case "22", "23": // data exception, integrity constraint violation
		return true
	}
	return false
}
