package pgleader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type campaign struct {
	lead    context.Context
	release func()
	err     error
	at      time.Time
}

func campaignAsync(ctx context.Context, l *Lock) <-chan campaign {
	ch := make(chan campaign, 1)
	go func() {
		lead, release, err := l.Campaign(ctx)
		ch <- campaign{lead, release, err, time.Now()}
	}()
	return ch
}

func newLock(t *testing.T, url, node string, interval time.Duration) *Lock {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Config: cfg, Name: "rswebhooks/test-watcher", Node: node, Interval: interval, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// holders lists the application names of the sessions holding the lock.
func holders(t *testing.T, admin *pgx.Conn, key int64) []string {
	t.Helper()
	rows, err := admin.Query(context.Background(), `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objid = ($1::bigint & 4294967295)::oid AND l.classid = (($1::bigint >> 32) & 4294967295)::oid`, key)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func wait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: not within %s", what, d)
	}
	var zero T
	return zero
}

// TestOneLeaderAndTakeoverWhenTheLeaderDies: of two nodes one leads; when
// the leader's session ends (its process died: the server terminates the
// backend) the leader sees its lead context end and the other node leads
// within two intervals; a release hands over as well.
func TestOneLeaderAndTakeoverWhenTheLeaderDies(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := t.Context()
	const interval = time.Second
	n1, n2 := newLock(t, url, "n1", interval), newLock(t, url, "n2", interval)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	c1 := wait(t, campaignAsync(ctx, n1), 10*time.Second, "n1 leads")
	if c1.err != nil {
		t.Fatal(c1.err)
	}
	second := campaignAsync(ctx, n2)
	// n2 keeps trying while n1 holds the lock: once it is connected, let
	// it try a few more times.
	for tries := 0; tries < 4; {
		var connected int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rswebhooks leader n2'").Scan(&connected); err != nil {
			t.Fatal(err)
		}
		if connected == 1 {
			tries++
		}
		select {
		case c := <-second:
			t.Fatalf("n2 leads while n1 does (err %v)", c.err)
		case <-time.After(interval / 2):
		}
	}
	if h := holders(t, admin, n1.key); len(h) != 1 || h[0] != "rswebhooks leader n1" {
		t.Fatalf("lock holders %q, want n1 only", h)
	}

	// n1's process dies: its session ends.
	killed := time.Now()
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rswebhooks leader n1'"); err != nil {
		t.Fatal(err)
	}
	c2 := wait(t, second, 2*interval+3*time.Second, "n2 takes over")
	if c2.err != nil {
		t.Fatal(c2.err)
	}
	t.Logf("takeover %s after the leader's session ended (interval %s)", c2.at.Sub(killed).Round(time.Millisecond), interval)
	wait(t, c1.lead.Done(), 2*interval, "n1 notices it lost the lock")
	c1.release()
	if h := holders(t, admin, n1.key); len(h) != 1 || h[0] != "rswebhooks leader n2" {
		t.Fatalf("lock holders %q, want n2 only", h)
	}

	// n1 campaigns again; n2 hands over by releasing.
	again := campaignAsync(ctx, n1)
	released := time.Now()
	c2.release()
	if c2.lead.Err() == nil {
		t.Fatal("n2's lead context still open after release")
	}
	c3 := wait(t, again, interval+3*time.Second, "n1 leads after n2 released")
	if c3.err != nil {
		t.Fatal(c3.err)
	}
	t.Logf("handover %s after release", c3.at.Sub(released).Round(time.Millisecond))
	c3.release()
}

// TestCampaignWaitsForTheDatabase: a node campaigning while PostgreSQL is
// unreachable keeps trying and returns only when ctx is done.
func TestCampaignWaitsForTheDatabase(t *testing.T) {
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Config: cfg, Name: "x", Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, _, err = l.Campaign(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign: %v, want the context's deadline", err)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	cfg, _ := pgx.ParseConfig("postgres://127.0.0.1/x")
	for _, o := range []Options{{Name: "x"}, {Config: cfg}, {Config: cfg, Name: "x", Interval: time.Millisecond}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
	// Key is called twice on the same name: both calls must agree.
	first, second := Key("rswebhooks/watcher"), Key("rswebhooks/watcher")
	if first != second || Key("a") == Key("b") {
		t.Fatal("Key is not a stable hash of the name")
	}
}
