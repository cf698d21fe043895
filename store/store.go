package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Sentinel errors callers branch on with errors.Is (with rswebhooks.ErrNotFound
// and rswebhooks.ErrConflict, which the store's methods return wrapped).
var (
	// ErrSchemaTooNew: the data directory was written by a newer release.
	ErrSchemaTooNew = errors.New("data directory schema is newer than this release supports")
	// ErrLocked: another process holds the data directory.
	ErrLocked = errors.New("data directory is locked by another process")
)

// SchemaVersion is the on-disk layout version stored at m/schema. Version 2
// stores an event's snapshot once for its deliveries (s/<eventID>); Open
// converts a version-1 store (see migrate). Version 3 keeps the attempt
// that finished a delivery in its record (deliveryRecord.FinalAttempt)
// instead of at its own a/ key; nothing is converted (both forms are
// read), Open only records the version, so that releases of schema 2,
// which would list such a delivery's attempts without that one, refuse the
// directory.
const SchemaVersion = 3

// Defaults for Options.
const (
	DefaultGCInterval   = 5 * time.Minute
	DefaultMemTableSize = 8 << 20
	// DefaultValueThreshold: values of this size and more go to the value
	// log, so the LSM tree holds keys, small index values and pointers:
	// every record (delivery state, attempt, event, snapshot, webhook) is
	// written once to the value log instead of being rewritten by each
	// memtable flush and compaction, about a fifth less CPU per delivery
	// than 1 KiB (docs/benchmarks.md). Not part of the on-disk format.
	DefaultValueThreshold = 128
	// DefaultLockWait bounds how long Open retries a held directory lock.
	DefaultLockWait = 5 * time.Second
	// DefaultCheckInterval is the period of the degraded-mode monitor.
	DefaultCheckInterval = time.Second
	// DefaultRemindEvery is the period of the "still degraded" log line.
	DefaultRemindEvery = 5 * time.Minute
)

// DefaultMinFree is the free space the store wants on its filesystem before
// it writes, for a memtable size: the rest of the current memtable log and
// the next one (up to 1.15 memtables each), the level-0 table a flush writes
// (1 memtable) and a level-0 compaction that rewrites up to four tables
// before it deletes them (4 memtables): 7 memtables, 56 MiB by default.
func DefaultMinFree(memTableSize int64) int64 { return 7 * memTableSize }

// Options configure Open. Only Dir is required.
type Options struct {
	// Dir is the Badger directory; created if missing. Required.
	Dir string
	// Logger receives the store's and Badger's logs (Badger's Info as Debug).
	// The zero value discards them.
	Logger zerolog.Logger
	// Retention is how long events, attempts, finished deliveries and seen
	// executions are kept. Zero means rswebhooks.DefaultRetention (7 days).
	Retention time.Duration
	// GCInterval is the period of Run's value-log GC. Zero means 5 minutes.
	GCInterval time.Duration
	// Now is the clock used for timestamps and for deciding when retained
	// data expires. Nil means time.Now. Badger itself judges expiry by the
	// wall clock, so an expiry is stored as "this long after now" measured
	// on the wall clock (see badgerExpiry): a test clock pinned to any date
	// keeps the same durations.
	Now func() time.Time

	// SyncWrites makes every commit fsync (power-loss safe, ~10x slower).
	// False survives a process crash or SIGKILL.
	SyncWrites bool
	// MemTableSize in bytes; zero means 8 MiB. A data dir created with a
	// larger size is opened with that first (see package doc).
	MemTableSize int64
	// ValueThreshold in bytes; zero means DefaultValueThreshold (128). At
	// most 15% of MemTableSize.
	ValueThreshold int64
	// Registerer receives the store's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// LockWait bounds the retries of Open while another process holds the
	// directory lock (overlapping restarts). Zero means 5 s; negative: no retry.
	LockWait time.Duration

	// MinFree is the free space (bytes) the data directory's filesystem must
	// keep for the store to write; below it the store is degraded
	// (disk_full). Zero means DefaultMinFree(MemTableSize); negative turns
	// the free-space check off.
	MinFree int64
	// CheckInterval is the period of Run's degraded-mode monitor (write
	// probe, free space, memtable-log preallocation). Zero means 1 s.
	CheckInterval time.Duration
	// RemindEvery repeats the "still degraded" log line. Zero means 5 min;
	// negative: never.
	RemindEvery time.Duration

	// noGuard skips the per-write checks (benchmark baseline only).
	noGuard bool
	// onCondition is a test hook called after each degraded-mode transition.
	onCondition func(cond string)
	// onLockRetry is a test hook called before each lock retry.
	onLockRetry func(attempt int)
	// onMigrate, a test hook, is called after each migration transaction
	// with the number of records converted so far.
	onMigrate func(converted int)
	// tweakBadger, a test hook, changes the Badger options Open uses (to
	// write a data dir the way an earlier release did).
	tweakBadger func(badger.Options) badger.Options
	// gcTick replaces Run's ticker in tests; afterGC is called after each pass.
	gcTick  <-chan time.Time
	afterGC func(error)
}

func (o *Options) validate() error {
	if o.Dir == "" {
		return errors.New("store: Options.Dir is required")
	}
	if o.Retention < 0 {
		return fmt.Errorf("store: Options.Retention must not be negative, got %s", o.Retention)
	}
	if o.Retention == 0 {
		o.Retention = rswebhooks.DefaultRetention
	}
	if o.Retention < time.Second {
		return fmt.Errorf("store: Options.Retention must be at least 1s, got %s", o.Retention)
	}
	if o.GCInterval < 0 {
		return fmt.Errorf("store: Options.GCInterval must not be negative, got %s", o.GCInterval)
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.MemTableSize < 1<<20 {
		return fmt.Errorf("store: Options.MemTableSize must be at least 1 MiB, got %d", o.MemTableSize)
	}
	if o.ValueThreshold == 0 {
		o.ValueThreshold = DefaultValueThreshold
	}
	if o.ValueThreshold < 0 || o.ValueThreshold > o.MemTableSize*15/100 {
		return fmt.Errorf("store: Options.ValueThreshold must be between 1 and 15%% of MemTableSize (%d), got %d",
			o.MemTableSize*15/100, o.ValueThreshold)
	}
	if o.LockWait == 0 {
		o.LockWait = DefaultLockWait
	}
	if o.MinFree == 0 {
		o.MinFree = DefaultMinFree(o.MemTableSize)
	}
	if o.CheckInterval < 0 {
		return fmt.Errorf("store: Options.CheckInterval must not be negative, got %s", o.CheckInterval)
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.RemindEvery == 0 {
		o.RemindEvery = DefaultRemindEvery
	}
	return nil
}

// DB is the store. Its methods are safe for concurrent use.
type DB struct {
	// bdb is nil while the store is unopened (see Unopened).
	bdb atomic.Pointer[badger.DB]
	// guard refuses writes in degraded mode (see guard.go).
	guard *guard
	opts  Options
	log   zerolog.Logger
	now   func() time.Time
	// memTableSize actually used to open Badger.
	memTableSize int64
	queue        cursor[uint64] // due nanos of q/ keys
	unfanned     cursor[string] // event ids of ef/ keys
	m            *Metrics
	unreadable   unreadableSet
	// closed is set by Close; the monitor then stops reopening.
	closed atomic.Bool
	// nextOpen and openDelay pace the monitor's retries of an unopened
	// store (monitor goroutine only).
	nextOpen  time.Time
	openDelay time.Duration
	// webhooksVersion counts committed webhook writes (see WebhooksVersion).
	webhooksVersion atomic.Uint64
	// leases are the deliveries leased to attempts in flight (lease.go).
	leases leaseTable
	// snaps are recently decoded event snapshots (snapshot.go).
	snaps snapshotCache
	// migrated counts the records Open converted to the current schema.
	migrated int
	// due signals dispatchers that deliveries became due (DueSignal).
	due chan struct{}
	// rotationEnd is when the earliest known secret-rotation grace period
	// ends (unix ns on the store's clock; 0: none known). Open sets it to 1
	// so Run's first check looks for rotations that ended while stopped.
	rotationEnd atomic.Int64
}

var _ rswebhooks.Store = (*DB)(nil)

// Backend names the engine: "badger".
func (db *DB) Backend() string { return "badger" }

// badgerOptions is the sidecar profile described in the package doc.
func badgerOptions(o Options, memTableSize int64, log zerolog.Logger) badger.Options {
	return badger.DefaultOptions(o.Dir).
		WithLogger(newBadgerLogger(log, o.RemindEvery)).
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(1 << 20).
		WithBlockCacheSize(8 << 20).
		WithCompression(options.Snappy).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(o.ValueThreshold).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithSyncWrites(o.SyncWrites).
		WithDetectConflicts(true)
}

// ErrNotClosed: Close left Badger open, because closing would write into a
// full or unwritable directory (its flush writes memory-mapped tables, which
// fault on a full disk) or did not finish in time (Badger blocks for ever
// when it cannot flush). Committed writes are in the memtable log already
// and are replayed at the next start, as after a crash.
var ErrNotClosed = errors.New("store not closed cleanly")

// Close flushes and closes the database. It is safe to call once. An
// unopened store closes at once; a degraded one (disk full, directory
// unwritable) is left to the process exit with ErrNotClosed.
func (db *DB) Close() error {
	db.closed.Store(true)
	if db.bdb.Load() != nil {
		// A fresh look (the disk may have filled since the last write); a
		// condition found by the monitor's probe stays.
		if c := db.guard.quickCheck(); c != nil {
			db.guard.set(c)
		}
	}
	if c := db.guard.cond.Load(); c != nil && c.Condition != rswebhooks.StoreUnopened {
		db.bdb.Store(nil)
		return fmt.Errorf("store: %s: %w: degraded (%s): %s", db.opts.Dir, ErrNotClosed, c.Condition, c.Detail)
	}
	b := db.bdb.Swap(nil)
	if b == nil {
		return nil
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", db.opts.Dir, err)
	}
	return nil
}

// CloseWithin is Close bounded by d: Badger's Close can block for ever when
// it cannot flush (a removed directory), so after d it gives up with
// ErrNotClosed and leaves Badger's goroutines to the process exit.
func (db *DB) CloseWithin(d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- db.Close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("store: close %s: %w: still flushing after %s", db.opts.Dir, ErrNotClosed, d)
	}
}

// errClosed: the store was used after Close.
var errClosed = errors.New("store is closed")

// absent explains why there is no Badger: closed, or unopened.
func (db *DB) absent() error {
	if err := db.guard.err(); err != nil {
		return err
	}
	return errClosed
}

// monitor is one pass of the degraded-mode monitor (see guard.go).
func (db *DB) monitor() {
	if db.bdb.Load() == nil {
		db.reopen()
		return
	}
	db.guard.probe()
	if db.guard.lost.Load() {
		db.rescue()
	}
}

// rescue moves the store into a data directory that was removed under it
// and has come back (recreated, or its volume attached again): Badger still
// holds the removed files open, so everything committed is copied from it
// into a new store in the directory, which then takes over. The old
// instance is abandoned (its Close would block on the missing directory).
func (db *DB) rescue() {
	fi, err := os.Stat(db.opts.Dir)
	if err != nil || !fi.IsDir() || db.guard.writeProbe() != nil {
		return // not back yet
	}
	old := db.bdb.Load()
	o := db.opts
	o.LockWait = -1
	nb, err := openDir(o, db.log)
	if err != nil {
		db.log.Debug().Err(err).Msg("data directory is back but a new store cannot be opened in it yet")
		return
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := old.Backup(pw, 0)
		pw.CloseWithError(err)
	}()
	if err := nb.Load(pr, 64); err != nil {
		_ = pr.CloseWithError(err)
		_ = nb.Close()
		db.log.Error().Err(err).Msg("data directory is back but the store could not be copied into it; still degraded")
		return
	}
	if err := nb.Sync(); err != nil {
		_ = nb.Close()
		db.log.Error().Err(err).Msg("data directory is back but the copied store could not be synced; still degraded")
		return
	}
	if !db.bdb.CompareAndSwap(old, nb) {
		_ = nb.Close()
		return
	}
	db.log.Warn().Str("dir", db.opts.Dir).Msg("data directory is back: everything committed was copied into a new store there")
	db.guard.lost.Store(false)
	db.guard.opened()
	db.guard.set(nil)
}

// Condition is the store's degraded-mode condition (one of
// rswebhooks.StoreConditions), or "" when it accepts writes.
func (db *DB) Condition() string { return db.guard.condition() }

// Unavailable returns the degraded-mode condition as an error (a
// *rswebhooks.StoreUnavailableError), or nil when the store accepts writes.
func (db *DB) Unavailable() error { return db.guard.err() }

// Run runs the degraded-mode monitor every CheckInterval and, every
// GCInterval, drops the event snapshots no delivery refers to any more
// (dropSnapshots) and runs value-log GC, until ctx is done, then returns nil. It erases the
// previous secrets of rotations whose grace period ended (EndRotations)
// within a CheckInterval of the end, and on every GC tick. Each GC pass calls
// RunValueLogGC(0.5) until nothing is rewritten; none runs while degraded.
// Expired keys (retention) are dropped by Badger's compactions.
func (db *DB) Run(ctx context.Context) error {
	tick := db.opts.gcTick
	if tick == nil {
		t := time.NewTicker(db.opts.GCInterval)
		defer t.Stop()
		tick = t.C
	}
	check := time.NewTicker(db.opts.CheckInterval)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-check.C:
			db.monitor()
			if db.rotationsDue() && db.guard.err() == nil {
				db.endRotations(ctx)
			}
		case <-tick:
			if db.guard.err() != nil {
				continue
			}
			// Also on the GC period, in case a rotation's end was missed.
			db.endRotations(ctx)
			if _, err := db.dropSnapshots(ctx); err != nil && ctx.Err() == nil {
				db.log.Error().Err(err).Msg("drop unused event snapshots")
			}
			err := db.gc(ctx)
			if err != nil {
				db.log.Error().Err(err).Msg("value-log GC failed")
			}
			if db.opts.afterGC != nil {
				db.opts.afterGC(err)
			}
		}
	}
}

// endRotations runs EndRotations and logs a failure (the next tick retries).
func (db *DB) endRotations(ctx context.Context) {
	if _, err := db.EndRotations(ctx); err != nil && ctx.Err() == nil {
		db.log.Error().Err(err).Msg("end secret rotations")
	}
}

// gc runs one GC pass: RunValueLogGC until it has nothing to rewrite.
func (db *DB) gc(ctx context.Context) error {
	b := db.bdb.Load()
	if b == nil {
		return nil
	}
	for n := 0; ctx.Err() == nil; n++ {
		err := b.RunValueLogGC(0.5)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite):
			db.log.Debug().Int("rewritten", n).Msg("value-log GC done")
			return nil
		case errors.Is(err, badger.ErrRejected):
			// DB closing, or another GC is running: not a failure.
			return nil
		default:
			return fmt.Errorf("store: value-log GC: %w", err)
		}
	}
	return nil
}

// Retention is how long events, attempts, finished deliveries and seen
// executions are kept (Options.Retention with its default applied). Parts
// whose own bookkeeping depends on it (the execution watcher) take it
// from here.
func (db *DB) Retention() time.Duration { return db.opts.Retention }

// Size returns the on-disk size of the LSM tree (table files) and of the
// value log in bytes, read from the data directory, so it is right from the
// start (Badger's own figure is refreshed only about every minute). Memtable
// logs count with the LSM tree. Badger preallocates memtable and value-log
// files sparsely, so the figure is the space allocated where the platform
// tells it (like du), not the apparent length.
func (db *DB) Size() (lsm, vlog int64) {
	entries, err := os.ReadDir(db.opts.Dir)
	if err != nil {
		if b := db.bdb.Load(); b != nil {
			return b.Size()
		}
		return 0, 0
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		switch filepath.Ext(e.Name()) {
		case ".sst", ".mem":
			lsm += diskUsage(info)
		case ".vlog":
			vlog += diskUsage(info)
		}
	}
	return lsm, vlog
}

// MemTableSize returns the memtable size Badger was opened with.
func (db *DB) MemTableSize() int64 { return db.memTableSize }

// Ping writes m/ping and reads it back, proving the store is writable.
func (db *DB) Ping(ctx context.Context) error {
	v := []byte(strconv.FormatInt(db.now().UnixNano(), 10))
	err := db.update(ctx, "ping", func(txn *badger.Txn) error {
		if err := txn.Set(metaKey(metaPing), v); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.view(ctx, "ping", func(txn *badger.Txn) error {
		got, err := getRaw(txn, metaKey(metaPing))
		if err != nil {
			return err
		}
		if string(got) != string(v) {
			return fmt.Errorf("read back %q, wrote %q", got, v)
		}
		return nil
	})
}

// maxTxnRetries bounds retries on Badger transaction conflicts.
const maxTxnRetries = 8

// update runs fn in a read-write transaction, retrying on Badger conflicts.
func (db *DB) update(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	b := db.bdb.Load()
	if b == nil {
		return fmt.Errorf("store: %s: %w", op, db.absent())
	}
	if !db.opts.noGuard {
		if err := db.guard.admit(); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	var err error
	for i := 0; i < maxTxnRetries; i++ {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("store: %s: %w", op, cerr)
		}
		err = b.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		db.guard.failed(err)
		return fmt.Errorf("store: %s: %w", op, db.noteUnreadable(err))
	}
	return nil
}

// view runs fn in a read-only transaction.
func (db *DB) view(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	b := db.bdb.Load()
	if b == nil {
		return fmt.Errorf("store: %s: %w", op, db.absent())
	}
	if err := b.View(fn); err != nil {
		return fmt.Errorf("store: %s: %w", op, db.noteUnreadable(err))
	}
	return nil
}

// expiresAt is the Badger ExpiresAt (unix seconds) for retained data.
func (db *DB) expiresAt() uint64 {
	return db.badgerExpiry(db.now().Add(db.opts.Retention))
}

// badgerExpiry turns an expiry on the store's clock into Badger's ExpiresAt,
// which Badger compares with the wall clock: the remaining duration is kept,
// so a store clock that differs from the wall clock (a test clock, a skewed
// injected one) neither expires data early nor keeps it for ever. Rounded up
// to the next second so nothing expires before its time.
func (db *DB) badgerExpiry(at time.Time) uint64 {
	left := at.Sub(db.now())
	if left <= 0 {
		return 1 // already expired
	}
	wall := time.Now().Add(left)
	secs := wall.Unix()
	if wall.Nanosecond() > 0 {
		secs++
	}
	return uint64(secs)
}

// setJSON stores v at key; expires is 0 for never. Without HTML escaping,
// so raw JSON values (webhook Properties) are stored byte for byte.
func setJSON(txn *badger.Txn, key []byte, v any, expires uint64) error {
	b, err := encodeJSON(key, v)
	if err != nil {
		return err
	}
	return setRaw(txn, key, b, expires)
}

func setRaw(txn *badger.Txn, key, v []byte, expires uint64) error {
	e := badger.NewEntry(key, v)
	e.ExpiresAt = expires
	return txn.SetEntry(e)
}

// getRaw returns a copy of the value at key, or ErrNotFound.
func getRaw(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%s: %w", key, rswebhooks.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// getJSON decodes the value at key into v, or returns ErrNotFound.
func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := getItem(txn, key)
	if err != nil {
		return err
	}
	return decodeItem(item, v)
}

// getItem returns the item at key, or ErrNotFound.
func getItem(txn *badger.Txn, key []byte) (*badger.Item, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%s: %w", key, rswebhooks.ErrNotFound)
	}
	return item, err
}

// decodeItem decodes the item's value into v.
func decodeItem(item *badger.Item, v any) error {
	return item.Value(func(b []byte) error {
		return jsonUnmarshal(item.Key(), b, v)
	})
}

// exists reports whether key is present (and not expired).
func exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// jsonUnmarshal decodes the value stored at key; a value that cannot be
// decoded is an *UnreadableError.
func jsonUnmarshal(key, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return unreadableAt(key, err)
	}
	return nil
}
