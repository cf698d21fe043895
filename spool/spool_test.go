package spool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

// database is a real Badger store behind a switch that makes it
// unreachable (every call fails as a dead connection would) and records
// the order in which events reached it.
type database struct {
	db *store.DB

	mu       sync.Mutex
	down     bool
	hang     bool // calls block until their context ends
	loseNext bool // store the next event but answer with an error
	order    []string
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (d *database) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	d.mu.Lock()
	down, hang, lose := d.down, d.hang, d.loseNext
	d.loseNext = false
	d.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if down {
		return errUnreachable
	}
	if err := d.db.AppendEvent(ctx, e); err != nil {
		return err
	}
	d.mu.Lock()
	d.order = append(d.order, e.ID)
	d.mu.Unlock()
	if lose {
		return errors.New("read tcp: connection reset by peer")
	}
	return nil
}

func (d *database) set(f func(d *database)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *database) arrived() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.order...)
}

func newDatabase(t *testing.T) *database {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &database{db: db}
}

type running struct {
	s    *Spool
	m    *Metrics
	stop func()
}

func openSpool(t *testing.T, dir string, next Appender, o Options) *running {
	t.Helper()
	o.Dir, o.Next = dir, next
	if o.RetryInterval == 0 {
		o.RetryInterval = 20 * time.Millisecond
	}
	o.MaxRetry = 50 * time.Millisecond
	o.Metrics = NewMetrics(prometheus.NewRegistry())
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	var once sync.Once
	r := &running{s: s, m: o.Metrics, stop: func() {
		once.Do(func() {
			cancel()
			<-done
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}

func event(i int) *rswebhooks.Event {
	now := time.Now().UTC()
	return &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventCreated,
		ResourceID: fmt.Sprintf("r%d", i), Time: now, Source: rswebhooks.SourceProxy}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// TestOutageSpoolsAndForwardsInOrderExactlyOnce: while the database is
// down every acknowledged event goes to the spool, /readyz's check names
// the outage, and the metrics show depth and age; when it is back the
// events reach it once each, in the order they were acknowledged, and new
// events go to it directly again.
func TestOutageSpoolsAndForwardsInOrderExactlyOnce(t *testing.T) {
	d := newDatabase(t)
	r := openSpool(t, t.TempDir(), d, Options{})
	ctx := t.Context()

	before := event(0)
	if err := r.s.AppendEvent(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Check(ctx); err != nil {
		t.Fatalf("check with the database up: %v", err)
	}
	d.set(func(d *database) { d.down = true })
	var want []string
	for i := 1; i <= 200; i++ {
		e := event(i)
		if err := r.s.AppendEvent(ctx, e); err != nil {
			t.Fatalf("append %d during the outage: %v", i, err)
		}
		want = append(want, e.ID)
	}
	err := r.s.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "database outage since") || !strings.Contains(err.Error(), "200 acknowledged events spooled") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("check during the outage: %v", err)
	}
	if n := testutil.ToFloat64(r.m.Outage); n != 1 {
		t.Fatalf("outage gauge %v, want 1", n)
	}
	if n, oldest := r.s.Stats(); n != 200 || oldest.IsZero() {
		t.Fatalf("stats: %d events, oldest %v", n, oldest)
	}
	if got := d.arrived(); len(got) != 1 {
		t.Fatalf("the database got %d events while down", len(got))
	}

	d.set(func(d *database) { d.down = false })
	eventually(t, "spool drained", func() bool { n, _ := r.s.Stats(); return n == 0 && r.s.Check(ctx) == nil })
	after := event(201)
	if err := r.s.AppendEvent(ctx, after); err != nil {
		t.Fatal(err)
	}
	got := d.arrived()
	wantAll := append(append([]string{before.ID}, want...), after.ID)
	if strings.Join(got, ",") != strings.Join(wantAll, ",") {
		t.Fatalf("arrival order differs:\n got %d %v\nwant %d %v", len(got), got, len(wantAll), wantAll)
	}
	stored, err := d.db.ListEvents(ctx, "", 0)
	if err != nil || len(stored) != 202 {
		t.Fatalf("stored %d events (%v), want 202", len(stored), err)
	}
	if v := testutil.ToFloat64(r.m.Forwarded.WithLabelValues(ResultOK)); v != 200 {
		t.Fatalf("forwarded ok %v, want 200", v)
	}
	if v := testutil.ToFloat64(r.m.Outage); v != 0 {
		t.Fatalf("outage gauge %v after recovery", v)
	}
}

// TestAnEventStoredButUnansweredIsForwardedOnce: the database stores an
// event but the answer is lost; the event is spooled and, forwarded, found
// already there (same id): stored once, counted a duplicate.
func TestAnEventStoredButUnansweredIsForwardedOnce(t *testing.T) {
	d := newDatabase(t)
	r := openSpool(t, t.TempDir(), d, Options{})
	e := event(1)
	d.set(func(d *database) { d.loseNext = true })
	if err := r.s.AppendEvent(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	eventually(t, "spool drained", func() bool { n, _ := r.s.Stats(); return n == 0 })
	if v := testutil.ToFloat64(r.m.Forwarded.WithLabelValues(ResultDuplicate)); v != 1 {
		t.Fatalf("duplicates %v, want 1", v)
	}
	stored, _ := d.db.ListEvents(t.Context(), "", 0)
	if len(stored) != 1 || stored[0].ID != e.ID {
		t.Fatalf("stored %v, want the one event once", stored)
	}
}

// TestAHungDatabaseCostsOneDirectTimeout: a database that does not answer
// at all delays an append by DirectTimeout, then the event is spooled and
// later ones go straight to the spool.
func TestAHungDatabaseCostsOneDirectTimeout(t *testing.T) {
	d := newDatabase(t)
	r := openSpool(t, t.TempDir(), d, Options{DirectTimeout: 100 * time.Millisecond, RetryInterval: time.Hour})
	d.set(func(d *database) { d.hang = true })
	ctx := t.Context()
	if err := r.s.AppendEvent(ctx, event(1)); err != nil {
		t.Fatal(err)
	}
	// The next appends do not wait for the database at all: they finish
	// even with a context that is already done.
	done, cancel := context.WithCancel(ctx)
	cancel()
	for i := 2; i <= 10; i++ {
		if err := r.s.AppendEvent(done, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := r.s.Stats(); n != 10 {
		t.Fatalf("spooled %d, want 10", n)
	}
}

// TestSpooledEventsSurviveARestartAndGoFirst: events spooled before the
// process stopped are forwarded after the next start, before events
// acknowledged after it.
func TestSpooledEventsSurviveARestartAndGoFirst(t *testing.T) {
	d := newDatabase(t)
	dir := t.TempDir()
	r := openSpool(t, dir, d, Options{})
	d.set(func(d *database) { d.down = true })
	var want []string
	for i := range 5 {
		e := event(i)
		if err := r.s.AppendEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}
	r.stop()

	// Restart while the database is still down: new events queue behind.
	r = openSpool(t, dir, d, Options{})
	if err := r.s.Check(t.Context()); err == nil {
		t.Fatal("check after a restart with spooled events: nil")
	}
	if v := testutil.ToFloat64(r.m.Outage); v != 1 {
		t.Fatalf("outage gauge %v after a restart with spooled events", v)
	}
	late := event(9)
	if err := r.s.AppendEvent(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	want = append(want, late.ID)
	d.set(func(d *database) { d.down = false })
	eventually(t, "spool drained", func() bool { n, _ := r.s.Stats(); return n == 0 })
	if got := d.arrived(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("arrival order %v, want %v", got, want)
	}
}

// TestRefusedEventsAreNotSpooled: an error the database gives for the
// event itself goes back to the caller (it counts the event lost); a
// conflict is returned as is.
func TestRefusedEventsAreNotSpooled(t *testing.T) {
	d := newDatabase(t)
	bad := errors.New("value too long for type character varying(64)")
	next := appenderFunc(func(ctx context.Context, e *rswebhooks.Event) error {
		if e.ResourceID == "bad" {
			return bad
		}
		return d.AppendEvent(ctx, e)
	})
	r := openSpool(t, t.TempDir(), next, Options{Refused: func(err error) bool { return errors.Is(err, bad) }})
	e := event(1)
	e.ResourceID = "bad"
	if err := r.s.AppendEvent(t.Context(), e); !errors.Is(err, bad) {
		t.Fatalf("refused event: %v", err)
	}
	ok := event(2)
	if err := r.s.AppendEvent(t.Context(), ok); err != nil {
		t.Fatal(err)
	}
	if err := r.s.AppendEvent(t.Context(), ok); !errors.Is(err, rswebhooks.ErrConflict) {
		t.Fatalf("second append of one id: %v, want ErrConflict", err)
	}
	if n, _ := r.s.Stats(); n != 0 || r.s.Check(t.Context()) != nil {
		t.Fatalf("spooled %d events for refusals", n)
	}
}

type appenderFunc func(ctx context.Context, e *rswebhooks.Event) error

func (f appenderFunc) AppendEvent(ctx context.Context, e *rswebhooks.Event) error { return f(ctx, e) }
