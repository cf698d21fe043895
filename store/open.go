package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// formatFile records the Badger options that are part of the on-disk format.
const formatFile = "RSWEBHOOKS-STORE"

type format struct {
	MemTableSize int64 `json:"memTableSize"`
}

func readFormat(dir string) (format, error) {
	var f format
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read %s: %w", formatFile, err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("read %s in %s: %w", formatFile, dir, err)
	}
	return f, nil
}

func writeFormat(dir string, f format) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	// Written, synced, renamed, and the directory synced: a filesystem
	// failure or power loss leaves the old file or the new one, never an
	// empty one.
	tmp := filepath.Join(dir, formatFile+".tmp")
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", formatFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, formatFile)); err != nil {
		return fmt.Errorf("write %s: %w", formatFile, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not supported on every platform; best effort
		d.Close()
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Open opens (creating if needed) the store in opts.Dir.
//
// It retries for up to Options.LockWait while another process holds the
// directory (ErrLocked after that), guards MemTableSize (see package doc)
// and refuses a schema newer than SchemaVersion (ErrSchemaTooNew). An
// older schema is converted before Open returns (see migrate).
func Open(opts Options) (*DB, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.With().Str("component", "store").Logger()
	bdb, err := openDir(opts, log)
	if err != nil {
		return nil, err
	}
	db := &DB{opts: opts, log: log, now: opts.Now, memTableSize: opts.MemTableSize, due: make(chan struct{}, 1)}
	db.rotationEnd.Store(1)
	db.bdb.Store(bdb)
	db.guard = newGuard(opts.Dir, opts, opts.MemTableSize, log)
	if err := db.checkSchema(bdb); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	if err := db.buildOrderIndex(bdb); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	// Registered only on success: a caller may fall back to Unopened with
	// the same Registerer.
	db.m = NewMetrics(opts.Registerer)
	return db, nil
}

// Unopened returns a store in degraded mode (condition unopened) for a data
// directory Open failed on with cause: every read and write fails with a
// *rswebhooks.StoreUnavailableError carrying cause, so the daemon can serve
// traffic without it. Its Run retries Open (with backoff up to a minute)
// and leaves degraded mode once the directory opens, for instance after
// another process released it or "rswebhooks store repair" fixed it.
func Unopened(opts Options, cause error) (*DB, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.With().Str("component", "store").Logger()
	db := &DB{opts: opts, log: log, now: opts.Now, memTableSize: opts.MemTableSize, m: NewMetrics(opts.Registerer), due: make(chan struct{}, 1)}
	db.rotationEnd.Store(1)
	db.guard = newGuard(opts.Dir, opts, opts.MemTableSize, log)
	db.guard.set(&rswebhooks.StoreUnavailableError{Condition: rswebhooks.StoreUnopened,
		Detail: fmt.Sprintf("the store in %s could not be opened: %v; see \"rswebhooks store check\"", opts.Dir, cause)})
	return db, nil
}

// reopen is the monitor's retry of an unopened store.
func (db *DB) reopen() {
	if db.closed.Load() || time.Now().Before(db.nextOpen) {
		return
	}
	o := db.opts
	o.LockWait = -1 // no waiting inside the monitor
	bdb, err := openDir(o, db.log)
	if err == nil {
		if err = db.checkSchema(bdb); err == nil {
			err = db.buildOrderIndex(bdb)
		}
		if err != nil {
			_ = bdb.Close()
		}
	}
	if err != nil {
		db.openDelay = min(max(2*db.openDelay, db.opts.CheckInterval), time.Minute)
		db.nextOpen = time.Now().Add(db.openDelay)
		db.log.Debug().Err(err).Dur("retry_in", db.openDelay).Msg("store still cannot be opened")
		db.guard.remindIfDue()
		return
	}
	if !db.bdb.CompareAndSwap(nil, bdb) || db.closed.Load() {
		_ = bdb.Close()
		return
	}
	db.guard.opened()
	db.guard.probe()
}

// openDir opens Badger in opts.Dir after the memtable-size dance.
func openDir(opts Options, log zerolog.Logger) (*badger.DB, error) {
	if err := checkDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir %s: %w", opts.Dir, err)
	}
	f, err := readFormat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	want := opts.MemTableSize
	if f.MemTableSize > want {
		// The WAL may hold more than a smaller arena can replay: open with the
		// recorded size and close cleanly, which flushes the memtables.
		log.Warn().Int64("recorded", f.MemTableSize).Int64("requested", want).
			Msg("memtable size lowered; flushing with the recorded size first")
		old, err := openBadger(opts, f.MemTableSize, log)
		if err != nil {
			return nil, err
		}
		if err := old.Close(); err != nil {
			return nil, fmt.Errorf("store: close %s after flushing with memtable size %d: %w", opts.Dir, f.MemTableSize, err)
		}
	}
	if f.MemTableSize != want {
		// Recorded before Badger writes with it: a crash from here on leaves a
		// WAL that the recorded size can replay.
		if err := writeFormat(opts.Dir, format{MemTableSize: want}); err != nil {
			return nil, fmt.Errorf("store: %s: %w", opts.Dir, err)
		}
	}
	return openBadger(opts, want, log)
}

// openBadger opens Badger, retrying while the directory lock is held.
func openBadger(opts Options, memTableSize int64, log zerolog.Logger) (*badger.DB, error) {
	bo := badgerOptions(opts, memTableSize, log)
	if opts.tweakBadger != nil {
		bo = opts.tweakBadger(bo)
	}
	deadline := time.Now().Add(opts.LockWait)
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		bdb, err := badger.Open(bo)
		if err == nil {
			return bdb, nil
		}
		if !isLockErr(err) {
			return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
		}
		if opts.LockWait < 0 || time.Now().Add(delay).After(deadline) {
			return nil, fmt.Errorf("store: open %s after %d attempts: %w (is another rswebhooks running on it? %w)",
				opts.Dir, attempt, ErrLocked, err)
		}
		log.Warn().Str("dir", opts.Dir).Int("attempt", attempt).Dur("retry_in", delay).
			Msg("data directory is locked, retrying")
		if opts.onLockRetry != nil {
			opts.onLockRetry(attempt)
		}
		t := time.NewTimer(delay)
		<-t.C
		delay *= 2
	}
}

// isLockErr recognises Badger's lock failure, which it does not wrap.
func isLockErr(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// badgerLogger sends Badger's logs to zerolog; Badger's Info is chatty
// (every compaction), so it becomes Debug. Badger retries some failures in a
// loop (a memtable flush into a removed directory logs once a second for
// ever), so each error or warning message (by its format) is logged once,
// then at most once per period with the number of repeats left out.
type badgerLogger struct {
	l     zerolog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*repeated // by format string: a bounded set in Badger's code
}

type repeated struct {
	at      time.Time
	skipped int
}

var _ badger.Logger = (*badgerLogger)(nil)

func newBadgerLogger(l zerolog.Logger, every time.Duration) *badgerLogger {
	if every <= 0 {
		every = DefaultRemindEvery
	}
	return &badgerLogger{l: l, every: every, now: time.Now, seen: map[string]*repeated{}}
}

func (b *badgerLogger) Errorf(f string, a ...any)   { b.limited(b.l.Error(), f, a) }
func (b *badgerLogger) Warningf(f string, a ...any) { b.limited(b.l.Warn(), f, a) }
func (b *badgerLogger) Infof(f string, a ...any)    { logf(b.l.Debug(), f, a) }
func (b *badgerLogger) Debugf(f string, a ...any)   { logf(b.l.Debug(), f, a) }

// limited logs f unless the same message was logged less than every ago.
func (b *badgerLogger) limited(e *zerolog.Event, f string, a []any) {
	if e == nil || !e.Enabled() {
		return
	}
	now := b.now()
	b.mu.Lock()
	r := b.seen[f]
	if r != nil && now.Sub(r.at) < b.every {
		r.skipped++
		b.mu.Unlock()
		e.Discard()
		return
	}
	skipped := 0
	if r == nil {
		b.seen[f] = &repeated{at: now}
	} else {
		skipped, r.at, r.skipped = r.skipped, now, 0
	}
	b.mu.Unlock()
	if skipped > 0 {
		e = e.Int("repeated", skipped).Dur("over", b.every)
	}
	logf(e, f, a)
}

// logf formats only when the level is enabled.
func logf(e *zerolog.Event, f string, a []any) {
	if e == nil || !e.Enabled() {
		return
	}
	e.Str("lib", "badger").Msg(trim(f, a))
}

func trim(f string, a []any) string {
	return strings.TrimSpace(fmt.Sprintf(f, a...))
}
