package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPostgresStore: with PostgresURL the daemon keeps its webhooks in
// PostgreSQL, delivers through it (a run the watcher finds reaches the
// receiver), says so on /readyz and never logs the URL's password.
func TestPostgresStore(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	const password = "Secret-Pg-Pa55word"
	u.User = url.UserPassword(u.User.Username(), password) // the test cluster trusts loopback: ignored
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	cat, _ := sim.CreateCategory("Ops")
	rep, _ := sim.CreateReport(cat, "Nightly", "")
	task, _ := sim.CreateTask(rep, "Nightly run", "")
	logs := &testutil.SyncBuffer{}
	const operator = "operator-token-for-postgres"
	r := start(t, Options{Upstream: up.URL, AdminToken: operator, ServiceUser: "admin", ServicePassword: "admin",
		PostgresURL: u.String(), Logger: zerolog.New(logs).Level(zerolog.DebugLevel),
		WatchInterval: time.Second, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})

	status, body := get(t, r.adminURL+"/readyz")
	var ready struct {
		Status       string
		StoreBackend string `json:"store_backend"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || status != http.StatusOK || ready.StoreBackend != "postgres" {
		t.Fatalf("readyz: %d %s, want ready with store_backend postgres", status, body)
	}

	exec, got := runTaskNotified(t, r, sim, operator, task)
	if len(got) != 1 || got[0]["EventType"] != "Executed" || got[0]["ExecutionId"] != exec.Id {
		t.Fatalf("notifications %v, want one Executed for execution %s", got, exec.Id)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM webhooks").Scan(&n); err != nil || n != 1 {
		t.Fatalf("webhooks in PostgreSQL: %d (%v), want 1", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var state string
		err := conn.QueryRow(ctx, "SELECT state FROM deliveries").Scan(&state)
		if err == nil && state == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery in PostgreSQL: %q (%v), want succeeded", state, err)
		}
		<-time.After(20 * time.Millisecond)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.Contains(logs.String(), password) {
		t.Fatal("the logs show the PostgreSQL password")
	}
	if !strings.Contains(logs.String(), "xxxxx") {
		t.Fatalf("the logs do not name the (redacted) PostgreSQL URL:\n%s", logs.String())
	}
}
