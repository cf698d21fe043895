package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// okRuns reads a node's successful reconcile runs without failing the
// test (it runs on the upstream's handler goroutine); -1 on any error.
func okRuns(adminURL string) float64 {
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `rswebhooks_reconcile_runs_total{result="ok"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestClusterChangeNotifiedOnceWhenTheReconcilerReadsInTheMiddle: two nodes
// on one PostgreSQL, one of them reconciling. A rename goes through the
// other node's proxy, and the report server holds its answer back until the
// reconciler has run twice: the reconciler's read lands between the write
// and that node's append. The change is stored, and notified, once.
func TestClusterChangeNotifiedOnceWhenTheReconcilerReadsInTheMiddle(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	sim := simulator.New(simulator.Options{})
	cat, err := sim.CreateCategory("Sales")
	if err != nil {
		t.Fatal(err)
	}
	var hold atomic.Pointer[func()]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := hold.Load()
		if req.Method != http.MethodPut || h == nil {
			sim.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req) // the write
		(*h)()                  // the reconciler runs
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer up.Close()
	var received atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { received.Add(1) }))
	defer rcv.Close()

	const operator = "operator-token-for-the-cluster-gate"
	var nodes []*running
	for _, name := range []string{"node-a", "node-b"} {
		nodes = append(nodes, start(t, Options{Upstream: up.URL, AdminToken: operator, ServiceUser: "admin", ServicePassword: "admin",
			PostgresURL: dbURL, NodeName: name, WatchInterval: 0, ReconcileInterval: time.Second,
			AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Logger:       zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}))
	}
	// The node that reconciles is the one whose runs count (baseline first).
	leader, other := -1, -1
	waitFor(t, "a node reconciling", func() bool {
		for i, n := range nodes {
			if okRuns(n.adminURL) > 0 {
				leader, other = i, 1-i
				return true
			}
		}
		return false
	})
	// hold runs in the upstream's handler: it waits (bounded) for two more
	// runs, the first of which may have read before the write.
	var held atomic.Bool
	wait := func() {
		target := okRuns(nodes[leader].adminURL) + 2
		deadline := time.Now().Add(30 * time.Second)
		for okRuns(nodes[leader].adminURL) < target {
			if time.Now().After(deadline) {
				return
			}
			<-time.After(50 * time.Millisecond)
		}
		held.Store(true)
	}

	st, b := call(t, "POST", nodes[other].adminURL+"/api/webhooks/registrations", operator,
		fmt.Sprintf(`{"WebHookUri":%q,"Filters":["categories"]}`, rcv.URL+"/?noecho=1"))
	if st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, b)
	}
	tok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	hold.Store(&wait)
	st, b = call(t, "PUT", nodes[other].proxyURL+"/api/reportserver/v2/categories", tok,
		`{"Id":"`+cat+`","Name":"Sales renamed"}`)
	hold.Store(nil)
	if st != http.StatusOK {
		t.Fatalf("rename through node %d: %d %s", other+1, st, b)
	}
	if !held.Load() {
		t.Fatal("the reconciler did not run twice while the answer was held")
	}
	reconciled(t, nodes[leader].adminURL, 2) // anything else would be stored by now

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT convert_from(body, 'UTF8')::jsonb->>'Source' FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		sources = append(sources, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sources) != 1 || sources[0] != "reconcile" {
		t.Fatalf("events stored for one rename: %v, want one from the reconciler", sources)
	}
	waitFor(t, "the notification", func() bool { return received.Load() >= 1 })
	if n := received.Load(); n != 1 {
		t.Fatalf("the receiver got %d notifications for one rename, want 1", n)
	}
}
