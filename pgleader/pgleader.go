// Package pgleader elects the leader of a cluster with a PostgreSQL
// session-level advisory lock held on a dedicated connection. The node whose
// connection holds the lock leads; when it dies its connection closes and
// PostgreSQL releases the lock at once, and another node, trying every
// half interval, takes over. A leader that cannot reach the database for
// half an interval steps down, and the server ends its session after an
// interval without a query (idle_session_timeout), so a leader cut off by
// the network loses the lock too: takeover happens within two intervals
// whatever the failure.
//
// The connection must reach PostgreSQL directly or through session pooling;
// a transaction-pooling proxy (PgBouncer pool_mode=transaction) cannot hold
// a session lock.
package pgleader

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/poll"
	"github.com/rswebhooks/rswebhooks/leader"
)

// DefaultInterval is Options.Interval's default.
const DefaultInterval = 10 * time.Second

// Options configure New.
type Options struct {
	// Config is the connection (pgx.ParseConfig of --postgres-url).
	// Required. A copy is used, with the application name and the idle
	// session timeout set.
	Config *pgx.ConnConfig
	// Name identifies the lock ("rswebhooks/watcher"); nodes campaigning
	// under the same name in the same database elect one leader. Required.
	Name string
	// Node is this node's name, shown in pg_stat_activity.application_name.
	Node string
	// Interval: followers try every half interval, the leader checks its
	// connection every half interval. Default DefaultInterval; at least
	// 200 ms.
	Interval time.Duration
	Logger   zerolog.Logger
}

// Lock is a leader.Elector over a PostgreSQL advisory lock.
type Lock struct {
	o   Options
	key int64
	log zerolog.Logger
}

var _ leader.Elector = (*Lock)(nil)

// New validates opts.
func New(opts Options) (*Lock, error) {
	if opts.Config == nil {
		return nil, errors.New("pgleader: Options.Config is required")
	}
	if opts.Name == "" {
		return nil, errors.New("pgleader: Options.Name is required")
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval < 200*time.Millisecond {
		return nil, fmt.Errorf("pgleader: Options.Interval must be at least 200ms, got %s", opts.Interval)
	}
	return &Lock{o: opts, key: Key(opts.Name),
		log: opts.Logger.With().Str("component", "leader").Str("lock", opts.Name).Logger()}, nil
}

// Key is the advisory lock key of a name: the first 8 bytes of its
// SHA-256, so every node derives the same key without coordination.
func Key(name string) int64 {
	h := sha256.Sum256([]byte(name))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// Campaign implements leader.Elector: it connects (retrying while the
// database is unreachable) and tries the lock every half interval until it
// holds it or ctx is done.
func (l *Lock) Campaign(ctx context.Context) (context.Context, func(), error) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	half := l.o.Interval / 2
	warned := false
	for {
		if conn == nil {
			c, err := l.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				if !warned {
					l.log.Warn().Err(err).Msg("cannot reach PostgreSQL to campaign for leadership; retrying")
					warned = true
				}
			} else {
				conn = c
			}
		}
		if conn != nil {
			got, err := l.try(ctx, conn)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				l.log.Debug().Err(err).Msg("advisory lock attempt failed; reconnecting")
				closeConn(conn)
				conn = nil
			case got:
				c := conn
				conn = nil // owned by hold now
				lead, release := l.hold(ctx, c)
				return lead, release, nil
			}
		}
		if err := poll.Sleep(ctx, half); err != nil {
			return nil, nil, err
		}
	}
}

func (l *Lock) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := l.o.Config.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = truncate("rswebhooks leader "+l.o.Node, 63)
	// The server ends a session idle for an interval: the leader queries
	// every half interval, so only a leader cut off loses its lock this way.
	cfg.RuntimeParams["idle_session_timeout"] = strconv.FormatInt(l.o.Interval.Milliseconds(), 10)
	cctx, cancel := context.WithTimeout(ctx, max(l.o.Interval, 2*time.Second))
	defer cancel()
	return pgx.ConnectConfig(cctx, cfg)
}

func (l *Lock) try(ctx context.Context, conn *pgx.Conn) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, max(l.o.Interval/2, time.Second))
	defer cancel()
	var got bool
	err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got)
	return got, err
}

// hold keeps the lock: it checks the connection every half interval and
// ends the lead context when a check fails or release is called; the
// connection is closed then, which releases the lock.
func (l *Lock) hold(ctx context.Context, conn *pgx.Conn) (context.Context, func()) {
	lead, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer closeConn(conn)
		defer cancel()
		t := time.NewTicker(l.o.Interval / 2)
		defer t.Stop()
		for {
			select {
			case <-lead.Done():
				return
			case <-t.C:
			}
			qctx, qcancel := context.WithTimeout(lead, l.o.Interval/2)
			var held bool
			err := conn.QueryRow(qctx, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objid = ($1::bigint & 4294967295)::oid AND classid = (($1::bigint >> 32) & 4294967295)::oid)", l.key).Scan(&held)
			qcancel()
			if lead.Err() != nil {
				return
			}
			if err != nil || !held {
				l.log.Warn().Err(err).Bool("held", held).Msg("the leader's lock connection failed its check; stepping down")
				return
			}
		}
	}()
	var once sync.Once
	return lead, func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
