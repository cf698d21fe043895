package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Degraded mode.
//
// Badger writes through memory-mapped files: a page that the filesystem
// cannot allocate (disk full) kills the process with SIGBUS, and a data
// directory that disappears makes its flushes retry for ever while writes
// stall behind them. The store therefore guards itself: before every write it
// checks the directory (statfs against Options.MinFree, and that it is still
// the directory Open opened), and a monitor (Run) re-checks every
// Options.CheckInterval with a real write probe and preallocates the active
// memtable log so Badger's writes into it cannot fault. While a condition
// holds, writes fail at once with a *rswebhooks.StoreUnavailableError (nothing
// is written, nothing already committed is touched) and reads keep working;
// when it clears, the store leaves degraded mode by itself. Each transition is
// logged once, and a reminder every Options.RemindEvery while it lasts.

// probeFile is created and removed by the monitor's write probe.
const probeFile = ".rswebhooks-probe"

// guard tracks the store's degraded-mode condition.
type guard struct {
	dir     string
	minFree int64
	remind  time.Duration
	log     zerolog.Logger
	// prealloc is how much of each memtable log (.mem) is allocated ahead:
	// what Badger can write into one before it rotates.
	prealloc int64

	// cond is the current condition; nil means writable.
	cond atomic.Pointer[rswebhooks.StoreUnavailableError]
	// dirID identifies the directory Open opened (nil or zero: unknown).
	dirID atomic.Pointer[fileID]

	// lost is set when the directory was removed or replaced under the
	// store: the monitor then rescues the store into it once it is back.
	lost atomic.Bool
	// passedAt is when admit's checks last passed (since guardEpoch).
	passedAt atomic.Int64

	mu       sync.Mutex // serialises transitions and reminders
	since    time.Time
	reminded time.Time
	onChange func(cond string) // test hook, after each transition
}

// admitReuse is how long a passed pre-write check stands for later writes.
const admitReuse = 10 * time.Millisecond

// guardEpoch anchors passedAt on the monotonic clock.
var guardEpoch = time.Now()

// fileID is a file's identity (device and inode where the platform has them).
type fileID struct{ dev, ino uint64 }

func newGuard(dir string, o Options, memTableSize int64, log zerolog.Logger) *guard {
	g := &guard{
		dir:      dir,
		minFree:  o.MinFree,
		remind:   o.RemindEvery,
		log:      log,
		prealloc: memTableSize + memTableSize*15/100 + 1<<20,
		onChange: o.onCondition,
	}
	g.identifyDir()
	return g
}

func (g *guard) identifyDir() {
	if fi, err := os.Stat(g.dir); err == nil {
		id := identify(fi)
		g.dirID.Store(&id)
	}
}

// opened is called when an unopened store finally opened: the condition
// clears and the directory is the one now open.
func (g *guard) opened() {
	g.identifyDir()
	g.mu.Lock()
	cur := g.cond.Load()
	g.mu.Unlock()
	if cur != nil && cur.Condition == rswebhooks.StoreUnopened {
		g.set(nil)
	}
}

// err returns the current condition as an error, or nil.
func (g *guard) err() error {
	if c := g.cond.Load(); c != nil {
		return c
	}
	return nil
}

// condition is the current condition's name, or "".
func (g *guard) condition() string {
	if c := g.cond.Load(); c != nil {
		return c.Condition
	}
	return ""
}

// admit is called before every write: cheap checks (stat and statfs of the
// directory) that refuse the write when the disk is (nearly) full or the
// directory is gone. A condition found by the monitor's probe (unwritable)
// or a failed open stays until the monitor clears it.
func (g *guard) admit() error {
	cur := g.cond.Load()
	if cur != nil && cur.Condition != rswebhooks.StoreDiskFull {
		return cur
	}
	// The checks cost two system calls (~1 µs on a quiet machine, 10-30 µs
	// on a busy one); writes within admitReuse of a passed check share it.
	// The preallocated memtable log covers what Badger writes meanwhile.
	now := time.Since(guardEpoch)
	if cur == nil && now-time.Duration(g.passedAt.Load()) < admitReuse {
		return nil
	}
	next := g.quickCheck()
	if next == nil {
		g.passedAt.Store(int64(now))
	}
	if next == nil && cur == nil {
		return nil
	}
	g.set(next)
	return g.err()
}

// quickCheck looks at the directory's identity and free space.
func (g *guard) quickCheck() *rswebhooks.StoreUnavailableError {
	fi, err := os.Stat(g.dir)
	if errors.Is(err, fs.ErrNotExist) {
		g.lost.Store(true)
		return unwritable("data directory %s was removed under the running store; when it is back, everything committed is copied into it", g.dir)
	}
	if err != nil {
		return unwritable("data directory %s cannot be read: %v", g.dir, err)
	}
	if id := g.dirID.Load(); id != nil && *id != (fileID{}) && identify(fi) != *id {
		g.lost.Store(true)
		return unwritable("data directory %s was removed or replaced under the running store; everything committed is being copied into it", g.dir)
	}
	free, readOnly, err := freeSpace(g.dir)
	if err != nil {
		return unwritable("free space of %s unknown: %v", g.dir, err)
	}
	if readOnly {
		return unwritable("data directory %s is on a filesystem mounted read-only", g.dir)
	}
	if free >= 0 && free < g.minFree {
		return &rswebhooks.StoreUnavailableError{
			Condition: rswebhooks.StoreDiskFull,
			Detail: fmt.Sprintf("%s has %s free, the store needs at least %s (--min-free-space) for its next files",
				g.dir, bytesText(free), bytesText(g.minFree)),
		}
	}
	return nil
}

// probe is the monitor's full check: the quick one, then a real write in the
// directory (a read-only filesystem, a directory made unwritable), then the
// preallocation of the active memtable logs.
func (g *guard) probe() {
	if c := g.cond.Load(); c != nil && c.Condition == rswebhooks.StoreUnopened {
		g.remindIfDue()
		return
	}
	next := g.quickCheck()
	if next == nil {
		next = g.writeProbe()
	}
	if next == nil {
		next = g.preallocate()
	}
	g.set(next)
	g.remindIfDue()
}

func (g *guard) writeProbe() *rswebhooks.StoreUnavailableError {
	p := filepath.Join(g.dir, probeFile)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.Write([]byte{'.'})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if rerr := os.Remove(p); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return unwritable("cannot write in data directory %s: %v", g.dir, err)
	}
	return nil
}

// preallocate allocates the part of each memtable log Badger may still write
// into, so that its memory-mapped writes find their pages allocated even if
// the disk fills up between two checks.
func (g *guard) preallocate() *rswebhooks.StoreUnavailableError {
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return unwritable("cannot list data directory %s: %v", g.dir, err)
	}
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".mem" {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		want := min(info.Size(), g.prealloc)
		if diskUsage(info) >= want {
			continue
		}
		err = allocate(filepath.Join(g.dir, e.Name()), want)
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist), errors.Is(err, errUnsupported):
		case isNoSpace(err):
			return &rswebhooks.StoreUnavailableError{Condition: rswebhooks.StoreDiskFull,
				Detail: fmt.Sprintf("cannot allocate the memtable log %s: %v", e.Name(), err)}
		default:
			g.log.Debug().Err(err).Str("file", e.Name()).Msg("preallocating the memtable log")
		}
	}
	return nil
}

// failed records a write error from Badger that shows the directory cannot
// be written (the guard's checks passed, the filesystem said no).
func (g *guard) failed(err error) {
	if c := classifyWriteErr(g.dir, err); c != nil {
		g.set(c)
	}
}

// set moves to next (nil: writable), logging a transition once.
func (g *guard) set(next *rswebhooks.StoreUnavailableError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.cond.Load()
	switch {
	case cur == nil && next == nil:
		return
	case cur != nil && next != nil && cur.Condition == next.Condition:
		g.cond.Store(next) // fresher detail, same state
		return
	}
	g.cond.Store(next)
	now := time.Now()
	if next == nil {
		g.log.Warn().Str("was", cur.Condition).Dur("after", now.Sub(g.since).Round(time.Millisecond)).
			Msg("store writable again: leaving degraded mode, new events are stored")
	} else {
		g.log.Error().Str("condition", next.Condition).Str("detail", next.Detail).
			Msg("store degraded: writes refused, proxied traffic continues, new events are counted lost (rswebhooks_events_lost_total)")
		g.since, g.reminded = now, now
	}
	if g.onChange != nil {
		g.onChange(g.condition())
	}
}

// remindIfDue repeats the degraded-mode line every RemindEvery.
func (g *guard) remindIfDue() {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cond.Load()
	if c == nil || g.remind <= 0 || time.Since(g.reminded) < g.remind {
		return
	}
	g.reminded = time.Now()
	g.log.Error().Str("condition", c.Condition).Str("detail", c.Detail).
		Dur("for", time.Since(g.since).Round(time.Second)).Msg("store still degraded: writes refused")
}

// classifyWriteErr maps a failed Badger write to a condition, or nil for an
// error that says nothing about the directory (a conflict, a bad value).
func classifyWriteErr(dir string, err error) *rswebhooks.StoreUnavailableError {
	switch {
	case err == nil:
		return nil
	case isNoSpace(err):
		return &rswebhooks.StoreUnavailableError{Condition: rswebhooks.StoreDiskFull,
			Detail: fmt.Sprintf("writing in %s: %v", dir, err)}
	case isReadOnly(err), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return unwritable("writing in %s: %v", dir, err)
	}
	return nil
}

func unwritable(format string, a ...any) *rswebhooks.StoreUnavailableError {
	return &rswebhooks.StoreUnavailableError{Condition: rswebhooks.StoreUnwritable, Detail: fmt.Sprintf(format, a...)}
}

// bytesText prints a byte count in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
