package pgstore

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// ErrSchemaTooNew: the database was migrated by a newer release.
var ErrSchemaTooNew = errors.New("database schema is newer than this release supports")

// Defaults for Options.
const (
	DefaultRetentionInterval = time.Minute
	DefaultMaxConns          = 16
	// retentionBatch bounds the rows one retention DELETE removes.
	retentionBatch = 5000
)

// Notification channels.
const (
	chanDue      = "rswebhooks_due"
	chanWebhooks = "rswebhooks_webhooks"
)

// migrationLock is the advisory lock key held while migrating.
const migrationLock = 1920467280

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options configure Open. Only URL is required.
type Options struct {
	// URL is the PostgreSQL connection string (URL or key=value, libpq
	// conventions). Required. Its password is never logged.
	URL string
	// Logger receives the store's logs. The zero value discards them.
	Logger zerolog.Logger
	// Retention is how long events, attempts, finished deliveries and seen
	// executions are kept. Zero means rswebhooks.DefaultRetention.
	Retention time.Duration
	// RetentionInterval is the period of Run's deletion of expired rows.
	// Zero means one minute.
	RetentionInterval time.Duration
	// Now is the clock for timestamps and expiry. Nil means time.Now.
	Now func() time.Time
	// MaxConns bounds the connection pool (zero: 16), besides the one
	// connection that listens for notifications.
	MaxConns int32
}

func (o *Options) validate() error {
	if o.URL == "" {
		return errors.New("pgstore: Options.URL is required")
	}
	if o.Retention < 0 || o.RetentionInterval < 0 || o.MaxConns < 0 {
		return errors.New("pgstore: Options.Retention, RetentionInterval and MaxConns must not be negative")
	}
	if o.Retention == 0 {
		o.Retention = rswebhooks.DefaultRetention
	}
	if o.Retention < time.Second {
		return fmt.Errorf("pgstore: Options.Retention must be at least 1s, got %s", o.Retention)
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = DefaultRetentionInterval
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// DB is the PostgreSQL store. Its methods are safe for concurrent use.
type DB struct {
	pool *pgxpool.Pool
	opts Options
	log  zerolog.Logger
	now  func() time.Time

	webhooksVersion atomic.Uint64
	due             chan struct{}
	// self tags this store's notifications, which it acts on at once
	// and so ignores when they come back.
	self string

	// Concurrent leases and completions share round trips (batch.go);
	// ended lets a Release after Complete skip its round trip.
	leases    batcher[leaseReq, leaseRes]
	completes batcher[completeReq, completeRes]
	ended     endedLeases
	// own: events appended here waiting for fan-out (NodeUnfannedEvents).
	own ownEvents
	// wakeNodes asks notifyLoop to wake the other nodes (WakeNodes).
	wakeNodes chan struct{}

	stopListen context.CancelFunc
	listenDone chan struct{}
	notifyDone chan struct{}
	closeOnce  sync.Once
}

var _ rswebhooks.Store = (*DB)(nil)
var (
	_ rswebhooks.FanOutBatcher = (*DB)(nil)
	_ rswebhooks.DueScanPacer  = (*DB)(nil)
	_ rswebhooks.LeaseChainer  = (*DB)(nil)

	_ rswebhooks.DueByWebhookScanner = (*DB)(nil)
	_ rswebhooks.NodeUnfanned        = (*DB)(nil)
	_ rswebhooks.NodeWaker           = (*DB)(nil)
)

// Open connects, applies missing migrations and starts listening for
// notifications. It fails if the database cannot be reached or its schema
// is newer than this release.
func Open(ctx context.Context, o Options) (*DB, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("pgstore: --postgres-url %s: %w", RedactURL(o.URL), scrub(err, o.URL))
	}
	cfg.MaxConns = o.MaxConns
	// The delivery engine's hot path uses about warmConns connections at
	// once (appends, the fan-out, the due reads, the lease and completion
	// batches). They are opened before Open returns and kept open, so the
	// first events after a start do not each wait for a new server process
	// (see warm).
	if !strings.Contains(o.URL, "pool_min_conns") {
		cfg.MinConns = min(cfg.MaxConns, warmConns)
	}
	// Connections opened together would otherwise reach their lifetime
	// (pgxpool's default, an hour) together, and the pool would replace
	// them all at once: each new one's first statements wait for a new
	// server process and its plans, every hour, all on the hot path. A
	// jitter of a quarter of the lifetime spreads the replacements, unless
	// the connection string sets one.
	if !strings.Contains(o.URL, "pool_max_conn_lifetime_jitter") {
		cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 4
	}
	// The store's statements are prepared once per connection (pgx's
	// statement cache), but the server's default re-plans the larger ones
	// (the completion, the fan-out, the due reads: a third of its CPU under
	// load) on every execution. A generic plan is made once; as it is made
	// before the tables grow (a new database), sequential scans are
	// disabled so that every plan reads by an index, whatever the tables'
	// size was when it was made (each statement has one; a sequential scan
	// is still used where none applies), and JIT compilation, which the
	// cost of a disabled scan would trigger, is off. A connection string
	// that sets plan_cache_mode (itself or in options) keeps the server's
	// settings.
	rp := cfg.ConnConfig.RuntimeParams
	if _, set := rp["plan_cache_mode"]; !set && !strings.Contains(rp["options"], "plan_cache_mode") {
		rp["plan_cache_mode"], rp["enable_seqscan"], rp["jit"] = "force_generic_plan", "off", "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect to %s: %w", RedactURL(o.URL), scrub(err, o.URL))
	}
	db := &DB{
		pool: pool,
		opts: o,
		log:  o.Logger.With().Str("component", "store").Str("backend", "postgres").Logger(),
		now:  o.Now,
		due:  make(chan struct{}, 1),
		self: rswebhooks.NewID(time.Now()),

		wakeNodes: make(chan struct{}, 1),
	}
	db.leases.run = db.leaseBatch
	db.completes.run = db.completeBatch
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %s: %w", RedactURL(o.URL), scrub(err, o.URL))
	}
	if err := db.warm(ctx, int(cfg.MinConns)); err != nil {
		// Not fatal: the pool opens connections as they are needed.
		db.log.Warn().Err(scrub(err, o.URL)).Msg("could not open the pool's first connections at start")
	}
	lctx, cancel := context.WithCancel(context.Background())
	db.stopListen, db.listenDone, db.notifyDone = cancel, make(chan struct{}), make(chan struct{})
	ready := make(chan struct{})
	go db.listen(lctx, cfg.ConnConfig.Copy(), ready)
	go db.notifyLoop(lctx)
	select {
	case <-ready:
	case <-ctx.Done():
	}
	return db, nil
}

// warmConns is how many connections the pool keeps open (pgxpool's
// MinConns), unless the connection string sets pool_min_conns.
const warmConns = 6

// warm opens n of the pool's connections now, at once: each costs the
// server a new process and a round trip or more, which on a busy server
// takes tens of milliseconds, and the first burst of events after a start
// would otherwise wait for them (the first statements of a cold pool took
// 30–100 ms in bench/cluster, and the backlog they left took up to a
// second to drain at 1,000 events/s). It returns the first error.
func (db *DB) warm(ctx context.Context, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	type got struct {
		c   *pgxpool.Conn
		err error
	}
	ch := make(chan got, n)
	for range n {
		go func() {
			c, err := db.pool.Acquire(ctx)
			ch <- got{c, err}
		}()
	}
	var first error
	for range n {
		g := <-ch
		if g.err != nil {
			if first == nil {
				first = g.err
			}
			continue
		}
		conns = append(conns, g.c)
	}
	return first
}

// Backend names the engine: "postgres".
func (db *DB) Backend() string { return "postgres" }

// Close stops listening and closes the pool.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.stopListen()
		<-db.listenDone
		<-db.notifyDone
		db.pool.Close()
	})
	return nil
}

// Unavailable is nil: PostgreSQL has no degraded mode of ours; a failing
// database fails the calls, and Ping says so.
func (db *DB) Unavailable() error { return nil }

// Condition is "" (see Unavailable).
func (db *DB) Condition() string { return "" }

// migrations returns the embedded migrations in version order.
func migrations() (map[int]string, []int, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, nil, err
	}
	byVersion := map[int]string{}
	var versions []int
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, nil, fmt.Errorf("migration file %s: name must start with a positive version and '_'", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, nil, err
		}
		if _, dup := byVersion[v]; dup {
			return nil, nil, fmt.Errorf("migration version %d twice", v)
		}
		byVersion[v] = string(b)
		versions = append(versions, v)
	}
	sort.Ints(versions)
	return byVersion, versions, nil
}

// SchemaVersion is the newest schema version this release knows.
func SchemaVersion() int {
	_, vs, err := migrations()
	if err != nil || len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1]
}

// migrate applies missing migrations under an advisory lock, one
// transaction each.
func (db *DB) migrate(ctx context.Context) error {
	byVersion, versions, err := migrations()
	if err != nil {
		return err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS rswebhooks_schema (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create the schema version table: %w", err)
	}
	var cur int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM rswebhooks_schema").Scan(&cur); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	latest := versions[len(versions)-1]
	if cur > latest {
		return fmt.Errorf("%w: the database is at version %d, this release knows up to %d; run the newer release or restore a backup",
			ErrSchemaTooNew, cur, latest)
	}
	for _, v := range versions {
		if v <= cur {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, byVersion[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO rswebhooks_schema (version) VALUES ($1)", v)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v, err)
		}
		db.log.Info().Int("version", v).Msg("database schema migrated")
	}
	return nil
}

// listen keeps a connection that LISTENs for due deliveries and webhook
// changes, reconnecting with a backoff, until ctx is done. ready is closed
// after the first LISTEN (or the first failure).
func (db *DB) listen(ctx context.Context, cfg *pgx.ConnConfig, ready chan struct{}) {
	defer close(db.listenDone)
	var once sync.Once
	signalReady := func() { once.Do(func() { close(ready) }) }
	defer signalReady()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, cfg, func() {
			signalReady()
			backoff = 100 * time.Millisecond
		})
		signalReady()
		if ctx.Err() != nil {
			return
		}
		db.log.Warn().Err(scrub(err, db.opts.URL)).Dur("retry_in", backoff).
			Msg("listening for notifications failed; dispatchers poll until it is back")
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+chanDue+"; LISTEN "+chanWebhooks); err != nil {
		return err
	}
	// Whatever was written while we were not listening (signalled before
	// Open returns, so a caller's first drain of DueSignal takes it).
	db.webhooksVersion.Add(1)
	db.signalDue()
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == db.self {
			continue // acted on when it was sent
		}
		switch n.Channel {
		case chanDue:
			db.signalDue()
		case chanWebhooks:
			db.webhooksVersion.Add(1)
		}
	}
}

// DueSignal receives a value soon after deliveries became due by a write
// of any node sharing the database.
func (db *DB) DueSignal() <-chan struct{} { return db.due }

func (db *DB) signalDue() {
	select {
	case db.due <- struct{}{}:
	default:
	}
}

// WakeNodes wakes the dispatchers of every node sharing the database soon
// (rswebhooks.NodeWaker): one NOTIFY, sent by notifyLoop outside any other
// transaction, for all the calls made while one is waiting or being sent.
func (db *DB) WakeNodes() {
	select {
	case db.wakeNodes <- struct{}{}:
	default:
	}
}

// notifyGap is the least time between two of WakeNodes' notifications:
// a dispatcher reads the due queue at most that often on wake-ups anyway
// (dueScanInterval).
const notifyGap = dueScanInterval

// notifyLoop sends WakeNodes' notifications until ctx is done, at most one
// per notifyGap. A failure is logged once until a notification goes
// through again (the other nodes then find the deliveries at their poll).
func (db *DB) notifyLoop(ctx context.Context) {
	defer close(db.notifyDone)
	failing := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.wakeNodes:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := db.pool.Exec(sctx, "SELECT pg_notify($1, $2)", chanDue, db.self)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			db.log.Warn().Err(scrub(err, db.opts.URL)).
				Msg("waking the other nodes failed; they find due deliveries at their next poll")
		case err == nil && failing:
			failing = false
			db.log.Info().Msg("waking the other nodes works again")
		}
		t.Reset(notifyGap) // since Go 1.23 a Reset timer never delivers a stale tick
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WebhooksVersion changes after every webhook write of this process and
// when any node's webhook write is notified.
func (db *DB) WebhooksVersion() uint64 { return db.webhooksVersion.Load() }

// Ping writes the meta key "ping" and reads it back.
func (db *DB) Ping(ctx context.Context) error {
	v := []byte(strconv.FormatInt(db.now().UnixNano(), 10))
	var got []byte
	err := db.pool.QueryRow(ctx, `INSERT INTO meta (key, value) VALUES ('ping', $1)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING value`, v).Scan(&got)
	if err != nil {
		return fmt.Errorf("pgstore: ping: %w", err)
	}
	if !bytes.Equal(got, v) {
		return fmt.Errorf("pgstore: ping: read back %q, wrote %q", got, v)
	}
	return nil
}

// Run deletes expired rows and erases the previous secrets of rotations
// whose grace period ended (EndRotations) every RetentionInterval until ctx
// is done.
func (db *DB) Run(ctx context.Context) error {
	t := time.NewTicker(db.opts.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := db.DeleteExpired(ctx); err != nil && ctx.Err() == nil {
				db.log.Error().Err(err).Msg("deleting expired rows failed; retried next time")
			}
			if _, err := db.EndRotations(ctx); err != nil && ctx.Err() == nil {
				db.log.Error().Err(err).Msg("end secret rotations failed; retried next time")
			}
		}
	}
}

// DeleteExpired deletes every expired row now, in batches, and returns
// the first error. Pending deliveries never expire; an event's snapshot
// goes with the last delivery that refers to it.
func (db *DB) DeleteExpired(ctx context.Context) error {
	now := db.now()
	for _, q := range []string{
		`DELETE FROM leases WHERE ctid = ANY (ARRAY(SELECT ctid FROM leases WHERE until <= $1 LIMIT $2))`,
		`DELETE FROM attempts WHERE ctid = ANY (ARRAY(SELECT ctid FROM attempts WHERE expires_at <= $1 LIMIT $2))`,
		expiredDeliveries,
		`DELETE FROM events WHERE ctid = ANY (ARRAY(SELECT ctid FROM events WHERE expires_at <= $1 AND fanned LIMIT $2))`,
		`DELETE FROM executions WHERE ctid = ANY (ARRAY(SELECT ctid FROM executions WHERE expires_at <= $1 LIMIT $2))`,
		`DELETE FROM meta WHERE ctid = ANY (ARRAY(SELECT ctid FROM meta WHERE expires_at <= $1 LIMIT $2))`,
	} {
		for ctx.Err() == nil {
			var n int64
			var err error
			if q == expiredDeliveries {
				// With their attempts and the snapshots no delivery
				// refers to any more (deleteLocked).
				n, err = db.deleteLocked(ctx, q, now, retentionBatch)
			} else {
				var tag pgconn.CommandTag
				tag, err = db.pool.Exec(ctx, q, now, retentionBatch)
				n = tag.RowsAffected()
			}
			if err != nil {
				return fmt.Errorf("pgstore: delete expired rows: %w", err)
			}
			if n < retentionBatch {
				break
			}
		}
	}
	return ctx.Err()
}

// expiredDeliveries locks a batch of finished deliveries whose retention
// ended, for deleteLocked (rows another transaction holds are left for the
// next batch).
const expiredDeliveries = `SELECT id FROM deliveries WHERE expires_at <= $1 AND state <> 'pending' LIMIT $2 FOR UPDATE SKIP LOCKED`

// expiry is the expires_at of data retained from now.
func (db *DB) expiry() time.Time { return db.now().Add(db.opts.Retention) }

// unexpiredBody reads the body of record id in table (events), or
// ErrNotFound when it is absent or has expired; kind names the record in
// errors.
func (db *DB) unexpiredBody(ctx context.Context, table, kind, id string) ([]byte, error) {
	var body []byte
	err := db.pool.QueryRow(ctx, `SELECT body FROM `+table+` WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)`,
		id, db.now()).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: %w", notFound(kind, id))
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: get %s %s: %w", kind, id, err)
	}
	return body, nil
}

func notFound(kind, id string) error {
	return fmt.Errorf("%s %s: %w", kind, id, rswebhooks.ErrNotFound)
}

// RedactURL returns the connection string with its password replaced by
// "xxxxx" (URL user info, a password query parameter, or key=value).
func RedactURL(conn string) string {
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(conn, "${1}xxxxx")
}

var kvPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// scrub removes the connection string's password from an error's text,
// should a driver error quote it.
func scrub(err error, conn string) error {
	if err == nil {
		return nil
	}
	pw := password(conn)
	if pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }

// Unwrap keeps errors.Is working (the text is what is scrubbed).
func (s *scrubbed) Unwrap() error { return s.err }

func password(conn string) string {
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			return p
		}
		return u.Query().Get("password")
	}
	if m := kvPassword.FindStringSubmatch(conn); m != nil {
		return strings.Trim(m[2], "'")
	}
	return ""
}

// CloseWithin is Close bounded by d; after d it gives up waiting and the
// connections close with the process.
func (db *DB) CloseWithin(d time.Duration) error {
	done := make(chan struct{})
	go func() { _ = db.Close(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("pgstore: close: connections still closing after %s", d)
	}
}

// Retention is how long retained data is kept.
func (db *DB) Retention() time.Duration { return db.opts.Retention }

// CheckURL reports whether conn is a connection string the store can use,
// without connecting; the error never shows the password.
func CheckURL(conn string) error {
	if _, err := pgxpool.ParseConfig(conn); err != nil {
		return fmt.Errorf("cannot be parsed as a PostgreSQL URL or key=value string (%s): %w", RedactURL(conn), scrub(err, conn))
	}
	return nil
}
