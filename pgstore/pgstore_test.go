package pgstore_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// connect opens a connection of the test's own to url, closed when the
// test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func query[T any](t *testing.T, url, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url) // one per call, closed at once: callers poll with it
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// Nodes starting together on an empty database migrate it once.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const nodes = 4
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := pgstore.Open(context.Background(), pgstore.Options{URL: url})
			if err == nil {
				err = db.Ping(context.Background())
				db.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a node failed to open: %v", err)
		}
	}
	if n := query[int](t, url, "SELECT count(*) FROM rswebhooks_schema"); n != pgstore.SchemaVersion() {
		t.Fatalf("%d schema versions recorded, want %d (each migration once)", n, pgstore.SchemaVersion())
	}
}

// A database migrated by a newer release is refused, untouched.
func TestRefusesNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url, storetest.Config{})
	db.Close()
	newer := pgstore.SchemaVersion() + 1
	query[int](t, url, "INSERT INTO rswebhooks_schema (version) VALUES ($1) RETURNING version", newer)
	_, err := pgstore.Open(context.Background(), pgstore.Options{URL: url})
	if !errors.Is(err, pgstore.ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "version") {
		t.Fatalf("error does not name the versions: %v", err)
	}
}

// Two nodes on one database: a due delivery written by one wakes the
// other's dispatcher within milliseconds, and a webhook write moves the
// other's WebhooksVersion.
func TestNotificationsCrossNodes(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := open(t, url, storetest.Config{})
	b := open(t, url, storetest.Config{})
	ctx := context.Background()
	drain := func() {
		for {
			select {
			case <-b.DueSignal():
			default:
				return
			}
		}
	}
	drain()
	now := time.Now().UTC()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", Time: now}
	if err := a.AppendEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := a.FanOut(ctx, ev.ID, []*rswebhooks.Delivery{{
		ID: rswebhooks.DeliveryID(ev, "W1"), WebhookID: "W1", EventID: ev.ID, Event: *ev,
		State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now,
	}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.DueSignal():
		t.Logf("other node woken %s after the fan-out began", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("the other node was not woken within 5s")
	}

	before := b.WebhooksVersion()
	w := &rswebhooks.Webhook{ID: "W1", URI: "http://127.0.0.1/", User: rswebhooks.User{ID: "alice"}, CreatedUTC: now}
	if err := a.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.WebhooksVersion() == before {
		if time.Now().After(deadline) {
			t.Fatal("the other node's WebhooksVersion did not move within 5s of a webhook write")
		}
		<-time.After(10 * time.Millisecond)
	}
}

// Expired rows are not only hidden but deleted by the upkeep.
func TestDeleteExpired(t *testing.T) {
	url := pgtest.NewDatabase(t)
	now := time.Now().UTC()
	var mu sync.Mutex
	clock := now
	db := open(t, url, storetest.Config{Retention: time.Hour, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	ctx := context.Background()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", Time: now}
	if err := db.AppendEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	d := &rswebhooks.Delivery{ID: "D1", WebhookID: "W1", EventID: ev.ID, State: rswebhooks.DeliverySucceeded, CreatedUTC: now}
	if err := db.FanOut(ctx, ev.ID, []*rswebhooks.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if err := db.Complete(ctx, d, &rswebhooks.Attempt{N: 1, StartedUTC: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkExecutionsSeen(ctx, []string{"x1"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMetaUntil(ctx, "token/x", []byte("v"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		return query[int](t, url, `SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM deliveries)
			+ (SELECT count(*) FROM attempts) + (SELECT count(*) FROM executions) + (SELECT count(*) FROM meta WHERE key <> 'ping')
			+ (SELECT count(*) FROM snapshots)`)
	}
	if n := count(); n != 6 {
		t.Fatalf("%d rows before expiry, want 6 (with the event's snapshot)", n)
	}
	mu.Lock()
	clock = now.Add(2 * time.Hour)
	mu.Unlock()
	if err := db.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d rows left after their expiry, want 0", n)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://rs:s3cret@db:5432/rsw?sslmode=require", "postgres://rs:xxxxx@db:5432/rsw?sslmode=require"},
		{"postgres://db/rsw?user=rs&password=s3cret", "postgres://db/rsw?password=xxxxx&user=rs"},
		{"host=db user=rs password=s3cret dbname=rsw", "host=db user=rs password=xxxxx dbname=rsw"},
		{"host=db password='s3 cret' dbname=rsw", "host=db password=xxxxx dbname=rsw"},
		{"postgres://rs@db/rsw", "postgres://rs@db/rsw"},
	} {
		if got := pgstore.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A failing connection never shows the password.
func TestOpenErrorHidesPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a dead port
	for _, url := range []string{
		"postgres://rs:Pa55-w0rd-x@" + addr + "/rsw?connect_timeout=2",
		"host=127.0.0.1 port=" + addr[strings.LastIndexByte(addr, ':')+1:] + " user=rs password=Pa55-w0rd-x connect_timeout=2",
		"postgres://rs:Pa55-w0rd-x@" + addr + "/rsw?sslmode=bogus",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := pgstore.Open(ctx, pgstore.Options{URL: url})
		cancel()
		if err == nil {
			t.Fatalf("Open(%s) succeeded", pgstore.RedactURL(url))
		}
		if strings.Contains(err.Error(), "Pa55-w0rd-x") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	if err := pgstore.CheckURL("postgres://rs:s3cret@db:5432/rsw?sslmode=verify-full"); err != nil {
		t.Fatalf("a good URL: %v", err)
	}
	err := pgstore.CheckURL("postgres://rs:s3cret@db/rsw?sslmode=sometimes")
	if err == nil || !strings.Contains(err.Error(), "sslmode") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("CheckURL(bad sslmode) = %v, want an error naming sslmode without the password", err)
	}
}
