package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// conditions records the guard's transitions.
type conditions struct {
	mu  sync.Mutex
	got []string
}

func (c *conditions) add(s string) { c.mu.Lock(); c.got = append(c.got, s); c.mu.Unlock() }
func (c *conditions) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// Below MinFree the store refuses writes before touching Badger, keeps
// serving reads, and accepts writes again when space returns.
func TestGuardDiskFull(t *testing.T) {
	var seen conditions
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.onCondition = seen.add })
	ctx := context.Background()
	mustNil(t, db.AppendEvent(ctx, event("E1")))

	free, _, err := freeSpace(db.opts.Dir)
	mustNil(t, err)
	db.guard.minFree = free + 1<<40 // the disk is "full"
	db.guard.passedAt.Store(0)      // as after admitReuse
	err = db.AppendEvent(ctx, event("E2"))
	if !errors.Is(err, rswebhooks.ErrStoreUnavailable) || rswebhooks.StoreCondition(err) != rswebhooks.StoreDiskFull {
		t.Fatalf("append below MinFree: %v, want a disk_full StoreUnavailableError", err)
	}
	if _, err := db.GetEvent(ctx, "E2"); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Errorf("the refused event was written: %v", err)
	}
	if _, err := db.GetEvent(ctx, "E1"); err != nil {
		t.Errorf("reads fail in degraded mode: %v", err)
	}
	if db.Condition() != rswebhooks.StoreDiskFull || db.Unavailable() == nil {
		t.Errorf("Condition = %q", db.Condition())
	}
	if err := db.AppendEvent(ctx, event("E3")); !errors.Is(err, rswebhooks.ErrStoreUnavailable) {
		t.Fatalf("second append: %v", err)
	}

	db.guard.minFree = 1 << 20 // space returns
	mustNil(t, db.AppendEvent(ctx, event("E4")))
	if db.Condition() != "" {
		t.Errorf("still degraded after space returned: %q", db.Condition())
	}
	if got := seen.list(); strings.Join(got, ",") != "disk_full," {
		t.Errorf("transitions %q, want [disk_full, \"\"] (one each, not one per write)", got)
	}
}

// The monitor preallocates the active memtable log, so Badger's mmapped
// writes into it cannot fault on a disk that fills up between two checks.
func TestMonitorPreallocatesMemtableLog(t *testing.T) {
	db, _ := openTest(t, t.TempDir())
	db.monitor()
	entries, err := os.ReadDir(db.opts.Dir)
	mustNil(t, err)
	found := false
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".mem" {
			continue
		}
		found = true
		info, err := e.Info()
		mustNil(t, err)
		if got := diskUsage(info); got < db.memTableSize {
			t.Errorf("%s: %d bytes allocated after the monitor ran, want at least the memtable size %d", e.Name(), got, db.memTableSize)
		}
	}
	if !found {
		t.Fatal("no memtable log in the data directory")
	}
}

// A removed directory is noticed before the write (no stall behind
// Badger's flush retries), and Close then leaves Badger alone at once.
func TestGuardDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db, _ := openTest(t, dir)
	ctx := context.Background()
	mustNil(t, db.AppendEvent(ctx, event("E1")))
	mustNil(t, os.RemoveAll(dir))
	db.guard.passedAt.Store(0) // as after admitReuse
	err := db.AppendEvent(ctx, event("E2"))
	if rswebhooks.StoreCondition(err) != rswebhooks.StoreUnwritable || !strings.Contains(err.Error(), "was removed") {
		t.Fatalf("append after the directory was removed: %v", err)
	}
	start := time.Now()
	err = db.CloseWithin(5 * time.Second)
	if !errors.Is(err, ErrNotClosed) || time.Since(start) > time.Second {
		t.Errorf("CloseWithin = %v after %s, want ErrNotClosed at once", err, time.Since(start))
	}
}

// An unopened store (here: locked by another holder) refuses everything
// with the reason, and its monitor opens it once the lock is released.
func TestUnopenedStoreReopens(t *testing.T) {
	dir := t.TempDir()
	holder, _ := openTest(t, dir)
	_, err := Open(Options{Dir: dir, LockWait: -1})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	var seen conditions
	db, err := Unopened(Options{Dir: dir, CheckInterval: time.Millisecond, onCondition: seen.add}, err)
	mustNil(t, err)
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	if _, err := db.GetEvent(ctx, "E1"); rswebhooks.StoreCondition(err) != rswebhooks.StoreUnopened {
		t.Fatalf("read while unopened: %v", err)
	}
	if err := db.AppendEvent(ctx, event("E1")); rswebhooks.StoreCondition(err) != rswebhooks.StoreUnopened ||
		!strings.Contains(err.Error(), "locked") {
		t.Fatalf("write while unopened: %v", err)
	}
	db.monitor() // still locked
	if db.Condition() != rswebhooks.StoreUnopened {
		t.Fatalf("condition %q while still locked", db.Condition())
	}
	mustNil(t, holder.Close())
	deadline := time.Now().Add(10 * time.Second)
	for db.Condition() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the monitor did not open the store after the lock was released")
		}
		db.nextOpen = time.Time{} // no backoff wait in the test
		db.monitor()
	}
	mustNil(t, db.AppendEvent(ctx, event("E1")))
	if got := seen.list(); strings.Join(got, ",") != "unopened," {
		t.Errorf("transitions %q", got)
	}
}

// SalvageWebhooks reads registrations from a directory whose MANIFEST is
// damaged: from the memtable log (no clean close) and from tables (after
// one); deleted registrations stay deleted.
func TestSalvageWebhooks(t *testing.T) {
	ctx := context.Background()
	for _, closed := range []bool{false, true} {
		t.Run(map[bool]string{false: "memtable log", true: "tables"}[closed], func(t *testing.T) {
			dir := t.TempDir()
			db, _ := openTest(t, dir)
			for _, id := range []string{"W1", "W2", "W3"} {
				mustNil(t, db.CreateWebhook(ctx, webhook(id, "alice", t0)))
			}
			mustNil(t, db.DeleteWebhook(ctx, "W2"))
			if closed {
				mustNil(t, db.Close())
			}
			mf, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_WRONLY, 0)
			mustNil(t, err)
			_, err = mf.WriteAt([]byte("XXXXXXXX"), 0)
			mustNil(t, err)
			mf.Close()
			if closed {
				if _, err := Open(Options{Dir: dir}); err == nil {
					t.Fatal("a damaged MANIFEST opened")
				}
			}
			s, err := SalvageWebhooks(dir)
			mustNil(t, err)
			var ids []string
			for _, w := range s.Webhooks {
				ids = append(ids, w.ID)
			}
			if strings.Join(ids, ",") != "W1,W3" || len(s.Problems) != 0 {
				t.Fatalf("salvaged %v, problems %v; want W1,W3 and none", ids, s.Problems)
			}
			if s.Webhooks[0].Secret != webhook("W1", "alice", t0).Secret {
				t.Error("the salvaged webhook lost its secret")
			}
		})
	}
}

// A removed data directory that comes back (recreated, volume attached
// again) gets everything committed before, copied from the files Badger
// still holds open; the store leaves degraded mode without a restart and a
// later Open finds it all.
func TestRescueIntoRecreatedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Open(Options{Dir: dir})
	mustNil(t, err)
	ctx := context.Background()
	mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", t0)))
	mustNil(t, db.AppendEvent(ctx, event("E1")))
	mustNil(t, os.RemoveAll(dir))
	db.guard.passedAt.Store(0)
	if err := db.AppendEvent(ctx, event("E2")); rswebhooks.StoreCondition(err) != rswebhooks.StoreUnwritable {
		t.Fatalf("append after removal: %v", err)
	}
	db.monitor() // not back yet
	if db.Condition() != rswebhooks.StoreUnwritable {
		t.Fatalf("condition %q before the directory is back", db.Condition())
	}
	mustNil(t, os.MkdirAll(dir, 0o700))
	db.monitor()
	if db.Condition() != "" {
		t.Fatalf("condition %q after the directory came back", db.Condition())
	}
	if _, err := db.GetWebhook(ctx, "W1"); err != nil {
		t.Fatalf("webhook after the rescue: %v", err)
	}
	mustNil(t, db.AppendEvent(ctx, event("E3")))
	mustNil(t, db.Close())

	db2, err := Open(Options{Dir: dir})
	mustNil(t, err)
	defer db2.Close()
	for _, id := range []string{"E1", "E3"} {
		if _, err := db2.GetEvent(ctx, id); err != nil {
			t.Errorf("event %s after reopening the rescued store: %v", id, err)
		}
	}
	if _, err := db2.GetWebhook(ctx, "W1"); err != nil {
		t.Errorf("webhook after reopening the rescued store: %v", err)
	}
}
