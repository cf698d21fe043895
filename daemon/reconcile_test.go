package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// inbox is a receiver that keeps every notification it gets.
type inbox struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func newInbox(t *testing.T) *inbox {
	in := &inbox{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Notifications []map[string]any }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		in.mu.Lock()
		in.got = append(in.got, body.Notifications...)
		in.mu.Unlock()
	}))
	t.Cleanup(in.srv.Close)
	return in
}

// about returns the notifications about one resource.
func (in *inbox) about(id string) []map[string]any {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []map[string]any
	for _, n := range in.got {
		if n["ResourceId"] == id {
			out = append(out, n)
		}
	}
	return out
}

// all returns every notification received so far.
func (in *inbox) all() []map[string]any {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got)
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.got)
}

// metricValue reads one sample from /metrics (0 when absent).
func metricValue(t *testing.T, adminURL, series string) float64 {
	t.Helper()
	_, body := get(t, adminURL+"/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// reconciled waits until n more reconcile runs completed successfully.
func reconciled(t *testing.T, adminURL string, n int) {
	t.Helper()
	const ok = `rswebhooks_reconcile_runs_total{result="ok"}`
	target := metricValue(t, adminURL, ok) + float64(n)
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, adminURL, ok) < target {
		if time.Now().After(deadline) {
			t.Fatalf("%d more successful reconcile runs did not happen within 60s", n)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// call makes a request with a bearer token and returns status and body.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// oneEach checks that id got exactly one notification, of that type and
// source.
func oneEach(t *testing.T, in *inbox, id, action, event, source string) {
	t.Helper()
	ns := in.about(id)
	if len(ns) != 1 || ns[0]["Action"] != action || ns[0]["EventType"] != event || ns[0]["Source"] != source {
		t.Errorf("notifications about %s: %v, want one %s %s from %s", id, ns, action, event, source)
	}
}

// TestReconcilerEndToEnd: the daemon with the reconciler against the
// simulator. The first start replays nothing; a category created through
// the manager's /Category/Create, changes made in the server's storage, a
// change through the REST API and a report deletion with its tasks and
// alerts each give exactly one notification per change; a restart repeats
// nothing.
func TestReconcilerEndToEnd(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	in := newInbox(t)
	cat, _ := sim.CreateCategory("Ops")
	doomed, _ := sim.CreateReport(cat, "Doomed", "")
	kept, _ := sim.CreateReport(cat, "Kept", "")
	onlyTask, _ := sim.CreateTask(doomed, "only on the doomed report", "")
	keptTask, _ := sim.CreateTask(kept, "on the kept report", "")
	tok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	// A data alert on both reports: deleting one modifies it.
	st, b := call(t, "POST", up.URL+"/api/reportserver/v2/dataalerts", tok, fmt.Sprintf(
		`{"Name":"on both","Enabled":true,"Reports":[{"ReportId":%q},{"ReportId":%q}],"Rules":[{"Index":0,"DataItemName":"t","Clauses":[]}]}`, doomed, kept))
	if st != 200 {
		t.Fatalf("create alert: %d %s", st, b)
	}
	var alert struct{ ID string }
	if err := json.Unmarshal(b, &alert); err != nil || alert.ID == "" {
		t.Fatalf("alert answer %s", b)
	}
	const operator = "operator-token-for-the-reconciler"
	dir := t.TempDir()
	opts := Options{Upstream: up.URL, DataDir: dir, AdminToken: operator, ServiceUser: "admin", ServicePassword: "admin",
		ReconcileInterval: time.Second, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	r := start(t, opts)
	if st, b := call(t, "POST", r.adminURL+"/api/webhooks/registrations", operator,
		fmt.Sprintf(`{"WebHookUri":%q}`, in.srv.URL+"/?noecho=1")); st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, b)
	}

	// First start: the baseline, then a run with nothing new.
	reconciled(t, r.adminURL, 2)
	if n := in.count(); n != 0 {
		t.Fatalf("first start notified %d existing resources", n)
	}

	// The manager's category grid, through the proxy: the rule sees it.
	st, b = call(t, "POST", r.proxyURL+"/Category/Create", tok, `{"Name":"From the grid","CanModify":true,"CanDelete":true,"ReportsCount":0}`)
	if st != 200 {
		t.Fatalf("Category/Create: %d %s", st, b)
	}
	var grid struct{ Data []struct{ ID string } }
	if err := json.Unmarshal(b, &grid); err != nil || len(grid.Data) != 1 {
		t.Fatalf("grid answer %s", b)
	}
	gridCat := grid.Data[0].ID

	// Changes in the server's storage (no API call at all).
	st, b = call(t, "POST", up.URL+"/_sim/storage/connections", "", `{"Name":"warehouse"}`)
	if st != 200 {
		t.Fatalf("storage create: %d %s", st, b)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(b, &created)
	conn := created.ID
	if st, b := call(t, "PUT", up.URL+"/_sim/storage/reports/"+kept, "", `{"Name":"Kept, renamed"}`); st != 204 {
		t.Fatalf("storage rename: %d %s", st, b)
	}

	// A change through the REST API: the proxy notifies, the reconciler
	// agrees.
	if st, b := call(t, "PUT", r.proxyURL+"/api/reportserver/v2/categories", tok, fmt.Sprintf(`{"Id":%q,"Name":"Ops renamed"}`, cat)); st != 200 {
		t.Fatalf("rename category: %d %s", st, b)
	}
	// A report deleted through the API with a task on it: the task's
	// deletion is a cascade no call names.
	if st, b := call(t, "DELETE", r.proxyURL+"/api/reportserver/v2/reports/"+doomed, tok, ""); st != 204 {
		t.Fatalf("delete report: %d %s", st, b)
	}

	reconciled(t, r.adminURL, 2)
	waitFor(t, "every notification", func() bool {
		return len(in.about(gridCat)) > 0 && len(in.about(conn)) > 0 && len(in.about(kept)) > 0 &&
			len(in.about(cat)) > 0 && len(in.about(doomed)) > 0 && len(in.about(onlyTask)) > 0 &&
			len(in.about(alert.ID)) > 0
	})
	oneEach(t, in, gridCat, "categories", "Created", "proxy")
	oneEach(t, in, conn, "connections", "Created", "reconcile")
	oneEach(t, in, kept, "reports", "Updated", "reconcile")
	oneEach(t, in, cat, "categories", "Updated", "proxy")
	oneEach(t, in, doomed, "reports", "Deleted", "proxy")
	// The delete call names only the id; the name is the one last read.
	if ns := in.about(doomed); len(ns) == 1 && ns[0]["ResourceName"] != "Doomed" {
		t.Errorf("Deleted notification ResourceName = %v, want %q (from the reconciler's last read)", ns[0]["ResourceName"], "Doomed")
	}
	oneEach(t, in, onlyTask, "tasks", "Deleted", "reconcile")
	oneEach(t, in, alert.ID, "alerts", "Updated", "reconcile")
	if ns := in.about(keptTask); len(ns) != 0 {
		t.Errorf("the task on the kept report was notified: %v", ns)
	}
	if v := metricValue(t, r.adminURL, `rswebhooks_reconcile_changes_total{event="Deleted",type="tasks"}`); v != 1 {
		t.Errorf("reconcile_changes_total{tasks,Deleted} = %v", v)
	}
	total := in.count()

	// Restart between runs: nothing is repeated.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	r = start(t, opts)
	reconciled(t, r.adminURL, 2)
	if n := in.count(); n != total {
		t.Fatalf("after restart %d notifications, want %d", n, total)
	}
}

// waitFor polls cond (in-process state fed by a real receiver) until it
// holds, for at most 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
}
