package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/store"
)

// reconcileRuns reads rswebhooks_reconcile_runs_total{result="ok"} from a
// child daemon's /metrics.
func reconcileRuns(t *testing.T, p *daemonProc) float64 {
	t.Helper()
	st, body := doJSON(t, http.DefaultClient, "GET", p.adminURL+"/metrics", "", "")
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `rswebhooks_reconcile_runs_total{result="ok"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestReconcilerThroughTheBinary: the real binary with --reconcile-interval
// against the simulator. The first start replays nothing; a data connection
// created in the server's storage (no API call) becomes one Created event;
// a category created through the manager's /Category/Create becomes one
// event from the proxy and none from the reconciler; after SIGKILL and a
// restart nothing is repeated.
func TestReconcilerThroughTheBinary(t *testing.T) {
	sim := simulator.New(simulator.Options{SeedSamples: true})
	up := httptest.NewServer(sim)
	defer up.Close()
	tok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"--upstream", up.URL, "--data-dir", dir, "--watch-interval", "0",
		"--service-user", "admin", "--service-password", "admin", "--reconcile-interval", "1s"}
	p := startDaemon(t, args...)
	waitFor(t, "two reconcile runs", 60*time.Second, func() bool { return reconcileRuns(t, p) >= 2 })

	st, body := doJSON(t, http.DefaultClient, "POST", up.URL+"/_sim/storage/connections", "", `{"Name":"restored from backup"}`)
	if st != 200 {
		t.Fatalf("storage create: %d %s", st, body)
	}
	var conn struct{ ID string }
	if err := json.Unmarshal(body, &conn); err != nil || conn.ID == "" {
		t.Fatalf("storage answer %s", body)
	}
	st, body = doJSON(t, http.DefaultClient, "POST", p.proxyURL+"/Category/Create", tok, `{"Name":"Grid","CanModify":true,"CanDelete":true,"ReportsCount":0}`)
	if st != 200 {
		t.Fatalf("Category/Create: %d %s", st, body)
	}
	waitFor(t, "the reconciled connection in the log", 60*time.Second, func() bool {
		return strings.Contains(p.logText(), conn.ID)
	})
	base := reconcileRuns(t, p)
	waitFor(t, "two more reconcile runs", 60*time.Second, func() bool { return reconcileRuns(t, p) >= base+2 })

	// SIGKILL wherever the cycle is, restart, let it run twice more.
	p.kill()
	p2 := startDaemon(t, args...)
	waitFor(t, "two reconcile runs after the restart", 60*time.Second, func() bool { return reconcileRuns(t, p2) >= 2 })
	p2.stop()

	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.ListEvents(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want 2 (the grid category from the proxy, the connection from the reconciler): %+v", len(events), events)
	}
	for _, e := range events {
		switch {
		case e.Filter == rswebhooks.FilterConnections && e.Type == rswebhooks.EventCreated && e.ResourceID == conn.ID && e.Source == rswebhooks.SourceReconcile:
		case e.Filter == rswebhooks.FilterCategories && e.Type == rswebhooks.EventCreated && e.ResourceName == "Grid" && e.Source == rswebhooks.SourceProxy:
		default:
			t.Errorf("unexpected event %+v", e)
		}
	}
}
