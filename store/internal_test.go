package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"github.com/rswebhooks/rswebhooks"
)

// expiry returns item.ExpiresAt() of key, and whether it exists.
func expiry(t *testing.T, db *DB, k []byte) (uint64, bool) {
	t.Helper()
	var exp uint64
	found := true
	err := db.bdb.Load().View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		exp = item.ExpiresAt()
		return nil
	})
	mustNil(t, err)
	return exp, found
}

func TestRetentionTTL(t *testing.T) {
	const retention = 48 * time.Hour
	db, c := openTest(t, t.TempDir(), func(o *Options) { o.Retention = retention })
	ctx := context.Background()
	// Badger hides expired keys by wall time; the store keeps the retention
	// as a duration from the wall clock, whatever its own clock says.
	ttl := func() uint64 { return uint64(time.Now().Add(retention).Unix()) }
	lo := ttl()

	mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", c.t)))
	mustNil(t, db.AppendEvent(ctx, event("E1")))
	mustNil(t, db.MarkExecutionsSeen(ctx, []string{"X1"}))
	mustNil(t, db.PutMeta(ctx, "k", []byte("v")))
	pending := delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, c.t)
	done := delivery("D2", "W1", "E1", rswebhooks.DeliveryFailed, time.Time{})

	// step checks keys that never expire (0) and keys with a retention TTL
	// (1): a TTL must lie between the wall clock + retention before the
	// write and one second past it after the write (rounded up).
	step := func(name string, lo uint64, want map[string]uint64) {
		t.Helper()
		hi := ttl() + 1
		for k, w := range want {
			got, ok := expiry(t, db, []byte(k))
			if !ok {
				t.Errorf("%s: key %q missing", name, k)
				continue
			}
			switch {
			case w == 0 && got != 0:
				t.Errorf("%s: ExpiresAt(%q) = %d, want none", name, k, got)
			case w == 1 && (got < lo || got > hi):
				t.Errorf("%s: ExpiresAt(%q) = %d, want in [%d, %d]", name, k, got, lo, hi)
			}
		}
	}
	step("before fan-out", lo, map[string]uint64{
		"w/W1": 0, "wo/alice/W1": 0,
		"e/E1": 0, "ef/E1": 0, // unfanned events never expire
		"x/X1": 1, "m/k": 0,
	})
	lo = ttl()
	mustNil(t, db.FanOut(ctx, "E1", []*rswebhooks.Delivery{pending, done}))
	step("after fan-out", lo, map[string]uint64{
		"e/E1": 1,
		"d/D1": 0, "dw/W1/D1": 0, string(queueKey(pending.NextUTC, "D1")): 0,
		"d/D2": 1, "dw/W1/D2": 1,
	})

	// Complete later (an hour later on the store's clock): the attempt and
	// the finished delivery get a full retention from then.
	c.t = c.t.Add(time.Hour)
	lo = ttl()
	pending.State, pending.Attempts = rswebhooks.DeliverySucceeded, 1
	mustNil(t, db.Complete(ctx, pending, &rswebhooks.Attempt{N: 1}))
	// The finishing attempt is kept in the record (schema 3), so it has
	// the record's TTL and no key of its own.
	step("after complete", lo, map[string]uint64{
		"d/D1": 1, "dw/W1/D1": 1,
	})
	if _, ok := expiry(t, db, queueKey(t0, "D1")); ok {
		t.Error("queue key left after completion")
	}
	if _, ok := expiry(t, db, attemptKey("D1", 1)); ok {
		t.Error("the finishing attempt got its own key")
	}

	// Redeliver makes it pending again: no expiry while pending; the
	// attempt moves to its own key with a full retention.
	_, err := db.Redeliver(ctx, "D1", c.t)
	mustNil(t, err)
	step("after redeliver", lo, map[string]uint64{"d/D1": 0, "dw/W1/D1": 0, string(queueKey(c.t, "D1")): 0, string(attemptKey("D1", 1)): 1})
}

func TestReopenPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, _ := openTest(t, dir)
	mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", t0)))
	mustNil(t, db.AppendEvent(ctx, event("E1")))
	mustNil(t, db.PutDelivery(ctx, delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0)))
	mustNil(t, db.Close())

	db2, _ := openTest(t, dir)
	if _, err := db2.GetWebhook(ctx, "W1"); err != nil {
		t.Fatalf("webhook lost: %v", err)
	}
	if un, _ := db2.UnfannedEvents(ctx, 0); len(un) != 1 {
		t.Fatalf("unfanned events after reopen = %d", len(un))
	}
	if due, _ := db2.Due(ctx, t0, 0); len(due) != 1 {
		t.Fatalf("due after reopen = %d", len(due))
	}
}

func TestSchemaGuard(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir)
	v, err := getMetaRaw(db, metaSchema)
	mustNil(t, err)
	if string(v) != strconv.Itoa(SchemaVersion) {
		t.Fatalf("m/schema = %q, want %d", v, SchemaVersion)
	}
	newer := []byte(strconv.Itoa(SchemaVersion + 1))
	mustNil(t, db.bdb.Load().Update(func(txn *badger.Txn) error { return txn.Set(metaKey(metaSchema), newer) }))
	mustNil(t, db.Close())

	_, err = Open(Options{Dir: dir})
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open newer schema = %v, want ErrSchemaTooNew naming %s", err, dir)
	}
	// The refused open released the directory.
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(DefaultMemTableSize))
	mustNil(t, err)
	mustNil(t, bdb.Close())
}

func getMetaRaw(db *DB, k string) ([]byte, error) {
	var v []byte
	err := db.bdb.Load().View(func(txn *badger.Txn) error {
		var err error
		v, err = getRaw(txn, metaKey(k))
		return err
	})
	return v, err
}

func TestMemTableSizeGuard(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, _ := openTest(t, dir, func(o *Options) { o.MemTableSize = 16 << 20 })
	mustNil(t, db.AppendEvent(ctx, event("E1")))
	mustNil(t, db.Close())
	f, err := readFormat(dir)
	mustNil(t, err)
	if f.MemTableSize != 16<<20 {
		t.Fatalf("recorded memtable size = %d", f.MemTableSize)
	}

	db2, _ := openTest(t, dir) // default 8 MiB: flushes with 16 MiB first
	if db2.MemTableSize() != DefaultMemTableSize {
		t.Fatalf("MemTableSize() = %d", db2.MemTableSize())
	}
	if _, err := db2.GetEvent(ctx, "E1"); err != nil {
		t.Fatalf("event lost across memtable change: %v", err)
	}
	f, _ = readFormat(dir)
	if f.MemTableSize != DefaultMemTableSize {
		t.Fatalf("recorded memtable size after lowering = %d", f.MemTableSize)
	}
}

func TestLockRetry(t *testing.T) {
	dir := t.TempDir()
	first, _ := openTest(t, dir)

	// No waiting: fails at once with ErrLocked naming the directory.
	_, err := Open(Options{Dir: dir, LockWait: -1})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open on a locked dir = %v, want ErrLocked naming %s", err, dir)
	}

	// The holder goes away while we retry (an overlapping restart).
	retried := 0
	second, err := Open(Options{Dir: dir, LockWait: time.Minute, onLockRetry: func(n int) {
		retried = n
		if n == 2 {
			mustNil(t, first.Close())
		}
	}})
	mustNil(t, err)
	defer second.Close()
	if retried != 2 {
		t.Fatalf("retries = %d, want 2", retried)
	}
	mustNil(t, second.Ping(context.Background()))
}

func TestRunGC(t *testing.T) {
	tick := make(chan time.Time)
	passes := make(chan error)
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.gcTick = tick
		o.afterGC = func(err error) { passes <- err }
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()
	for range 2 {
		tick <- time.Now()
		select {
		case err := <-passes:
			mustNil(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("GC pass did not finish")
		}
	}
	cancel()
	select {
	case err := <-done:
		mustNil(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
	lsm, vlog := db.Size()
	if lsm < 0 || vlog < 0 {
		t.Fatalf("Size = %d, %d", lsm, vlog)
	}
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newBadgerLogger(zerolog.New(&buf).Level(zerolog.InfoLevel), time.Minute)
	l.Infof("compaction %d\n", 1) // Info is demoted to debug: dropped at info level
	l.Debugf("noise")
	l.Warningf("careful %s", "now")
	l.Errorf("broken")
	got := buf.String()
	if strings.Contains(got, "compaction") || strings.Contains(got, "noise") {
		t.Fatalf("info/debug not demoted: %s", got)
	}
	for _, want := range []string{`"level":"warn"`, `"message":"careful now"`, `"level":"error"`, `"lib":"badger"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log output lacks %s: %s", want, got)
		}
	}
}

// Badger's retry loops (a flush into a removed directory, once a second)
// log one line, then one per period saying how many were left out.
func TestBadgerLoggerLimitsRepeats(t *testing.T) {
	var buf bytes.Buffer
	l := newBadgerLogger(zerolog.New(&buf), time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 30; i++ { // 30 s of a retry loop
		l.Errorf("error flushing memtable to disk: %v, retrying", "no such file or directory")
		now = now.Add(time.Second)
	}
	l.Warningf("another message")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("30 repeats and another message logged %d lines, want 2:\n%s", n, buf.String())
	}
	now = now.Add(31 * time.Second)
	l.Errorf("error flushing memtable to disk: %v, retrying", "no such file or directory")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"repeated":29`) {
		t.Fatalf("the reminder after the period should count 29 left out:\n%s", buf.String())
	}
}

func TestQueueKeyRoundTrip(t *testing.T) {
	cases := []time.Time{{}, time.Unix(-5, 0), t0, t0.Add(time.Nanosecond)}
	for _, tc := range cases {
		due, id, err := parseQueueKey(queueKey(tc, "01ABC"))
		mustNil(t, err)
		if id != "01ABC" || due != dueNanos(tc) {
			t.Errorf("round trip %v = %d %q", tc, due, id)
		}
	}
	if bytes.Compare(queueKey(t0, "Z"), queueKey(t0.Add(time.Nanosecond), "A")) >= 0 {
		t.Error("queue keys do not sort by due time first")
	}
	if _, _, err := parseQueueKey([]byte("q/short")); err == nil {
		t.Error("malformed key accepted")
	}
}

func TestQueueCursor(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	d1 := delivery("D1", "W1", "E1", rswebhooks.DeliveryPending, t0)
	mustNil(t, db.PutDelivery(ctx, d1))
	mustNil(t, db.PutDelivery(ctx, delivery("D2", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(time.Second))))
	d1.State = rswebhooks.DeliverySucceeded
	mustNil(t, db.Complete(ctx, d1, nil))
	due, err := db.Due(ctx, t0.Add(time.Hour), 0)
	mustNil(t, err)
	if g := ids(due, dID); len(g) != 1 || g[0] != "D2" {
		t.Fatalf("Due = %v", g)
	}
	if low := db.queue.bound(); low != dueNanos(t0.Add(time.Second)) {
		t.Fatalf("cursor = %d, want the first live key's due %d", low, dueNanos(t0.Add(time.Second)))
	}
	// An earlier key lowers it again.
	mustNil(t, db.PutDelivery(ctx, delivery("D0", "W1", "E1", rswebhooks.DeliveryPending, t0.Add(-time.Hour))))
	due, _ = db.Due(ctx, t0.Add(time.Hour), 0)
	if g := ids(due, dID); len(g) != 2 || g[0] != "D0" {
		t.Fatalf("Due after earlier insert = %v", g)
	}
}

// TestQueueCursorConcurrent inserts ever earlier deliveries while scans run:
// a scan must never move the cursor past a key it could not see.
func TestQueueCursorConcurrent(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	const n = 300
	stop := make(chan struct{})
	scanned := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				scanned <- nil
				return
			default:
			}
			if _, err := db.Due(ctx, t0.Add(time.Hour), 5); err != nil {
				scanned <- err
				return
			}
		}
	}()
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			for i := range n {
				d := delivery(fmt.Sprintf("D%d-%04d", w, i), "W1", "E1", rswebhooks.DeliveryPending, t0.Add(-time.Duration(i)*time.Second))
				if err := db.PutDelivery(ctx, d); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	mustNil(t, <-errs)
	mustNil(t, <-errs)
	close(stop)
	mustNil(t, <-scanned)
	due, err := db.Due(ctx, t0.Add(time.Hour), 0)
	mustNil(t, err)
	if len(due) != 2*n {
		t.Fatalf("Due found %d of %d pending deliveries", len(due), 2*n)
	}
}
