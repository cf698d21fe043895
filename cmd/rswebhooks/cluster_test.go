package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// The cluster suite: three real `rswebhooks serve` processes share one
// PostgreSQL, in front of one report server (the simulator), delivering to
// one receiver that verifies every signature.

const clusterOperator = "cluster-operator-token-0123456789"

// clusterReceiver verifies each notification's signature and records it
// by delivery id (webhook-id) and by what it notifies.
type clusterReceiver struct {
	*httptest.Server
	secret string

	mu         sync.Mutex
	byDelivery map[string]int    // delivery id → times received
	byName     map[string]string // ResourceName → delivery id (categories)
	byExec     map[string]map[string]bool
	// tasks holds every task notification received, in arrival order.
	tasks  []rswebhooks.Event
	badSig int
	// slow, while set, holds each answer this long (a slow receiver, so
	// attempts are in flight when a node is killed).
	slow atomic.Int64
}

func newClusterReceiver(t *testing.T, secret string) *clusterReceiver {
	r := &clusterReceiver{secret: secret, byDelivery: map[string]int{}, byName: map[string]string{}, byExec: map[string]map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *clusterReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if d := time.Duration(r.slow.Load()); d > 0 {
		<-time.After(d)
	}
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write(body)
	want := "sha256=" + strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Header.Get("ms-signature") != want {
		r.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var n struct {
		Notifications []rswebhooks.Event
	}
	if err := json.Unmarshal(body, &n); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	r.byDelivery[id]++
	for _, e := range n.Notifications {
		switch e.Filter {
		case rswebhooks.FilterCategories:
			r.byName[e.ResourceName] = id
		case rswebhooks.FilterTasks:
			r.tasks = append(r.tasks, e)
			if r.byExec[e.ExecutionID] == nil {
				r.byExec[e.ExecutionID] = map[string]bool{}
			}
			r.byExec[e.ExecutionID][id] = true
		}
	}
}

// counts: distinct deliveries, receipts, and receipts beyond the first.
func (r *clusterReceiver) counts() (distinct, total, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.byDelivery {
		distinct++
		total += n
	}
	return distinct, total, total - distinct
}

func (r *clusterReceiver) missing(names []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, n := range names {
		if _, ok := r.byName[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// executionReceipts: how many times the run's notification arrived.
func (r *clusterReceiver) executionReceipts(execID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id := range r.byExec[execID] {
		n += r.byDelivery[id]
	}
	return n
}

// taskEvents returns the task notifications received so far.
func (r *clusterReceiver) taskEvents() []rswebhooks.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rswebhooks.Event(nil), r.tasks...)
}

type cluster struct {
	t     *testing.T
	pg    *pgtest.Cluster
	dbURL string
	sim   *simulator.Server
	up    *httptest.Server
	rcv   *clusterReceiver
	nodes [3]*daemonProc
	args  [3][]string
	c     *http.Client
	token string
	// acked lists the categories whose creation a node acknowledged (2xx).
	mu    sync.Mutex
	acked []string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	pg := pgtest.Start(t)
	cl := &cluster{t: t, pg: pg, dbURL: pg.NewDatabase(t), sim: simulator.New(simulator.Options{}),
		c: &http.Client{Timeout: 30 * time.Second}}
	cl.up = httptest.NewServer(cl.sim)
	t.Cleanup(cl.up.Close)
	cl.rcv = newClusterReceiver(t, "cluster-receiver-secret-0123456789abcdef")
	for i := range cl.nodes {
		cl.args[i] = []string{"--upstream", cl.up.URL, "--postgres-url", cl.dbURL, "--node-name", fmt.Sprintf("node-%d", i+1),
			"--data-dir", filepath.Join(t.TempDir(), "data"), "--admin-token", clusterOperator,
			"--service-user", "admin", "--service-password", "admin", "--watch-interval", "1s", "--reconcile-interval", "0",
			"--retry-delays", "200ms,400ms,800ms,1600ms,3200ms", "--attempt-timeout", "2s",
			"--allow-target", "127.0.0.0/8", "--log-level", "info"}
		cl.nodes[i] = startDaemon(t, cl.args[i]...)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, n := range cl.nodes {
			for _, l := range strings.Split(n.logText(), "\n") {
				if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
					t.Logf("node-%d: %s", i+1, l)
				}
			}
		}
	})
	return cl
}

func (cl *cluster) restart(i int) {
	cl.t.Helper()
	cl.nodes[i] = startDaemon(cl.t, cl.args[i]...)
}

func (cl *cluster) alive(i int) bool {
	select {
	case <-cl.nodes[i].done:
		return false
	default:
		return true
	}
}

// login gets an administrator's token through node 1's proxy.
func (cl *cluster) login() {
	cl.t.Helper()
	cl.token = cl.loginVia(0)
}

// loginVia gets an administrator's token through node i's proxy, which so
// learns who holds it (and names the caller of that token's calls).
func (cl *cluster) loginVia(i int) string {
	cl.t.Helper()
	cred, _ := cl.sim.User("admin")
	res, err := cl.c.PostForm(cl.nodes[i].proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {cred.Password}})
	if err != nil {
		cl.t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || v.AccessToken == "" {
		cl.t.Fatalf("login: %d %v", res.StatusCode, err)
	}
	return v.AccessToken
}

// create creates a category through node i's proxy; true when acknowledged.
func (cl *cluster) create(i int, name string) bool {
	req, _ := http.NewRequest("POST", cl.nodes[i].proxyURL+"/api/reportserver/v2/categories", strings.NewReader(`{"Name":"`+name+`"}`))
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := cl.c.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return false
	}
	cl.mu.Lock()
	cl.acked = append(cl.acked, name)
	cl.mu.Unlock()
	return true
}

func (cl *cluster) ackedNames() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]string(nil), cl.acked...)
}

// load creates n categories round-robin over the nodes alive; the node a
// request fails on is skipped as a load balancer would (the create is not
// acknowledged, so not expected). at(k) runs before create k.
func (cl *cluster) load(prefix string, n int, at func(k int)) {
	cl.t.Helper()
	next := 0
	for k := range n {
		if at != nil {
			at(k)
		}
		for tries := 0; tries < 3; tries++ {
			i := next % 3
			next++
			if cl.alive(i) && cl.create(i, fmt.Sprintf("%s-%03d", prefix, k)) {
				break
			}
		}
	}
}

func (cl *cluster) metric(i int, name string) float64 {
	cl.t.Helper()
	_, body := doJSON(cl.t, cl.c, "GET", cl.nodes[i].adminURL+"/metrics", "", "")
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

// leader returns the node that polls executions, waiting until exactly
// one alive node says it is.
func (cl *cluster) leader() int {
	cl.t.Helper()
	who := -1
	waitFor(cl.t, "exactly one watcher leader", 30*time.Second, func() bool {
		who = -1
		n := 0
		for i := range cl.nodes {
			if cl.alive(i) && cl.metric(i, "rswebhooks_watcher_leader") == 1 {
				who, n = i, n+1
			}
		}
		return n == 1
	})
	return who
}

// runOnce runs the task at the report server and checks the run is
// notified exactly once: it arrives, and the leader then polls twice more
// without a second copy.
func (cl *cluster) runOnce(task string, leader int) {
	cl.t.Helper()
	x, err := cl.sim.RunTask(task)
	if err != nil {
		cl.t.Fatal(err)
	}
	waitFor(cl.t, "the scheduled run's notification", 60*time.Second, func() bool { return cl.rcv.executionReceipts(x.Id) > 0 })
	polls := cl.metric(leader, `rswebhooks_watcher_polls_total{result="ok"}`)
	waitFor(cl.t, "two more polls", 30*time.Second, func() bool {
		return cl.metric(leader, `rswebhooks_watcher_polls_total{result="ok"}`) >= polls+2
	})
	if n := cl.rcv.executionReceipts(x.Id); n != 1 {
		cl.t.Fatalf("run %s notified %d times, want exactly once", x.Id, n)
	}
}

func (cl *cluster) register(nodeIdx int, filter string) rswebhooks.Webhook {
	cl.t.Helper()
	body := fmt.Sprintf(`{"WebHookUri":%q,"Secret":%q,"Filters":[%q]}`, cl.rcv.URL+"/"+filter+"?noecho=1", cl.rcv.secret, filter)
	st, b := doJSON(cl.t, cl.c, "POST", cl.nodes[nodeIdx].adminURL+"/api/webhooks/registrations", clusterOperator, body)
	if st != http.StatusCreated {
		cl.t.Fatalf("register on node %d: %d %s", nodeIdx+1, st, b)
	}
	var w rswebhooks.Webhook
	_ = json.Unmarshal(b, &w)
	return w
}

// TestClusterOfThree: a webhook registered on node 1 is listed and
// delivered by nodes 2 and 3; creates spread round-robin; node 2 is
// SIGKILLed mid-load and every acknowledged event is still delivered, with
// duplicates at most the attempts it had in flight; a scheduled run is
// notified exactly once by three watchers, also after the leader is
// killed; PostgreSQL restarted mid-load loses nothing acknowledged.
func TestClusterOfThree(t *testing.T) {
	cl := newCluster(t)
	cat, _ := cl.sim.CreateCategory("Ops")
	rep, _ := cl.sim.CreateReport(cat, "Nightly", "")
	task, _ := cl.sim.CreateTask(rep, "Nightly run", "")
	cl.login()

	// Registered on node 1, listed by 2 and 3.
	cats := cl.register(0, rswebhooks.FilterCategories)
	cl.register(0, rswebhooks.FilterTasks)
	for i := 1; i < 3; i++ {
		st, b := doJSON(t, cl.c, "GET", cl.nodes[i].adminURL+"/api/webhooks/registrations/"+cats.ID, clusterOperator, "")
		if st != http.StatusOK || !strings.Contains(string(b), cats.ID) {
			t.Fatalf("node %d does not list the webhook registered on node 1: %d %s", i+1, st, b)
		}
	}

	// Delivered by nodes 2 and 3 as well: a change through each.
	for i := range 3 {
		if !cl.create(i, fmt.Sprintf("via-node-%d", i+1)) {
			t.Fatalf("create through node %d not acknowledged", i+1)
		}
	}
	waitFor(t, "one notification per node's change", 30*time.Second, func() bool { return len(cl.rcv.missing(cl.ackedNames())) == 0 })

	// A scheduled run, three watchers: notified once.
	leader := cl.leader()
	t.Logf("execution watcher leader: node-%d", leader+1)
	cl.runOnce(task, leader)

	// Load round-robin; SIGKILL node 2 mid-load.
	conn, err := pgx.Connect(t.Context(), cl.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var inFlight int
	killed, victim := false, -1
	// killIfLeased kills a node that has attempts in flight (leased) and
	// counts them: its unexpired leases, frozen by the kill. Node 2 when it
	// holds a lease; otherwise the node holding the webhook's slots (one
	// node at a time takes a webhook's slots, the others leave them to it
	// while it uses them, so node 2 may never hold one).
	killIfLeased := func() bool {
		for _, i := range []int{1, 0, 2} {
			holder := fmt.Sprintf("node-%d/%%", i+1)
			var n int
			_ = conn.QueryRow(t.Context(), `SELECT count(*) FROM leases WHERE holder LIKE $1 AND until > now()`, holder).Scan(&n)
			if n == 0 {
				continue
			}
			cl.nodes[i].kill()
			if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM leases WHERE holder LIKE $1 AND until > now()`, holder).Scan(&inFlight); err != nil {
				t.Fatal(err)
			}
			killed, victim = true, i
			return true
		}
		return false
	}
	cl.rcv.slow.Store(int64(300 * time.Millisecond))
	// From the middle of the load on, a node dies as soon as it is seen
	// holding a lease. The load keeps coming meanwhile.
	cl.load("load", 150, func(k int) {
		if k >= 75 && !killed {
			killIfLeased()
		}
	})
	if !killed {
		waitFor(t, "a node holding a lease while the backlog is delivered", 30*time.Second, killIfLeased)
	}
	cl.rcv.slow.Store(0)
	waitFor(t, "every acknowledged create delivered after the node's death", 90*time.Second, func() bool {
		return len(cl.rcv.missing(cl.ackedNames())) == 0
	})
	distinct, total, dups := cl.rcv.counts()
	t.Logf("after SIGKILL of node-%d: %d acknowledged creates, %d deliveries, %d receipts, %d duplicates, %d attempts in flight at the kill",
		victim+1, len(cl.ackedNames()), distinct, total, dups, inFlight)
	if inFlight == 0 {
		t.Fatalf("node-%d had no attempt in flight at the kill", victim+1)
	}
	if dups > inFlight {
		t.Fatalf("%d duplicate receipts, more than the %d attempts node-%d had in flight", dups, inFlight, victim+1)
	}

	// The killed node back; the leader killed: another takes over, a run
	// is notified once.
	cl.restart(victim)
	cl.nodes[leader].kill()
	t.Logf("killed the watcher leader node-%d", leader+1)
	next := cl.leader()
	t.Logf("new leader: node-%d", next+1)
	cl.runOnce(task, next)
	cl.restart(leader)

	// PostgreSQL stops mid-load and comes back: nothing acknowledged lost.
	before := len(cl.ackedNames())
	cl.load("outage", 90, func(k int) {
		switch k {
		case 30:
			if err := cl.pg.Stop(); err != nil {
				t.Fatal(err)
			}
		case 60:
			// /readyz names the outage on a node that took events.
			for i := range cl.nodes {
				_, b := doJSON(t, cl.c, "GET", cl.nodes[i].adminURL+"/readyz", "", "")
				if !strings.Contains(string(b), "database outage since") {
					t.Errorf("node-%d /readyz during the outage does not name it: %s", i+1, b)
				}
			}
			if n := cl.metric(0, "rswebhooks_spool_events"); n < 1 {
				t.Errorf("node-1 rswebhooks_spool_events %v during the outage", n)
			}
			if err := cl.pg.Restart(); err != nil {
				t.Fatal(err)
			}
		}
	})
	acked := cl.ackedNames()
	t.Logf("PostgreSQL restart: %d creates acknowledged in that phase", len(acked)-before)
	if len(acked)-before < 80 {
		t.Fatalf("only %d of 90 creates acknowledged around the database restart: the proxy must keep serving", len(acked)-before)
	}
	waitFor(t, "every create acknowledged during the outage delivered", 120*time.Second, func() bool {
		return len(cl.rcv.missing(acked)) == 0
	})
	for i := range cl.nodes {
		waitFor(t, "spools empty", 30*time.Second, func() bool { return cl.metric(i, "rswebhooks_spool_events") == 0 })
	}
	distinct, total, dups = cl.rcv.counts()
	t.Logf("at the end: %d deliveries, %d receipts, %d duplicates; %d bad signatures", distinct, total, dups, cl.rcv.badSig)
	if cl.rcv.badSig != 0 {
		t.Fatalf("%d notifications failed signature verification", cl.rcv.badSig)
	}
}

// execute runs task through node i's proxy (v3 execute call) as an
// administrator who signed in through the next node, as behind a load
// balancer (node i names the caller from the token the other node learned
// and kept in the shared store); the call must be acknowledged.
func (cl *cluster) execute(i int, task string) {
	cl.t.Helper()
	tok := cl.loginVia((i + 1) % len(cl.nodes))
	st, b := doJSON(cl.t, cl.c, "POST", cl.nodes[i].proxyURL+"/api/reportserver/v3/scheduled-tasks/"+task+"/execute", tok, "")
	if st/100 != 2 {
		cl.t.Fatalf("execute through node-%d: %d %s", i+1, st, b)
	}
}

// manualRunOnce checks that run x of an execute call is notified exactly
// once, as the call's event carrying the run: it arrives with the caller
// (UserName, Method, Source proxy) and the run (ExecutionId, date,
// DocumentIds, Documents); the leader then polls twice more and nothing
// else about the task arrives (neither a second copy of the run nor the
// call's event without it).
func (cl *cluster) manualRunOnce(x simulator.Execution, leader int, before int) {
	cl.t.Helper()
	waitFor(cl.t, "the manual run's notification", 60*time.Second, func() bool { return cl.rcv.executionReceipts(x.Id) > 0 })
	polls := cl.metric(leader, `rswebhooks_watcher_polls_total{result="ok"}`)
	waitFor(cl.t, "two more polls", 30*time.Second, func() bool {
		return cl.metric(leader, `rswebhooks_watcher_polls_total{result="ok"}`) >= polls+2
	})
	if n := cl.rcv.executionReceipts(x.Id); n != 1 {
		cl.t.Fatalf("manual run %s notified %d times, want exactly once", x.Id, n)
	}
	got := cl.rcv.taskEvents()[before:]
	if len(got) != 1 {
		cl.t.Fatalf("%d task notifications for one manual run, want 1: %+v", len(got), got)
	}
	e := got[0]
	if e.Type != rswebhooks.EventExecuted || e.ExecutionID != x.Id || e.ExecutionDateUTC == nil || len(e.Missing) != 0 {
		cl.t.Fatalf("notification %+v: want Executed with ExecutionId %s, its date, nothing missing", e, x.Id)
	}
	if e.Source != rswebhooks.SourceProxy || e.Method != http.MethodPost || e.UserName != "admin" {
		cl.t.Fatalf("notification %+v: want the caller's (Source proxy, POST, UserName admin)", e)
	}
	if len(x.DocumentIds) == 0 || !slices.Equal(e.DocumentIDs, x.DocumentIds) || len(e.Documents) != len(x.DocumentIds) {
		cl.t.Fatalf("notification DocumentIds %v, Documents %+v; want the run's %v, each described", e.DocumentIDs, e.Documents, x.DocumentIds)
	}
}

// TestClusterManualRuns: a manual run is notified once, with its caller and
// its run, in a cluster as on one node: the execute call through a node
// that does not poll; and a call whose node is SIGKILLed right after the
// 2xx, before the report server has recorded the run (another node
// finishes it; the node, restarted, adds nothing).
func TestClusterManualRuns(t *testing.T) {
	cl := newCluster(t)
	cat, _ := cl.sim.CreateCategory("Ops")
	rep, _ := cl.sim.CreateReport(cat, "Nightly", "")
	task, _ := cl.sim.CreateTask(rep, "Nightly run", "")
	cl.login()
	cl.register(0, rswebhooks.FilterTasks)
	leader := cl.leader()
	t.Logf("execution watcher leader: node-%d", leader+1)

	// Through a node that does not poll.
	via := (leader + 1) % 3
	before := len(cl.rcv.taskEvents())
	cl.execute(via, task)
	xs, err := cl.sim.Executions(task)
	if err != nil || len(xs) != 1 {
		t.Fatalf("executions after the call: %v, %v", xs, err)
	}
	cl.manualRunOnce(xs[0], leader, before)

	// The call's node dies right after the 2xx, while the report server
	// still queues the run: the claim it stored is finished elsewhere.
	victim := (leader + 2) % 3
	cl.sim.HoldRuns()
	before = len(cl.rcv.taskEvents())
	cl.execute(victim, task)
	cl.nodes[victim].kill()
	t.Logf("killed node-%d right after its execute call's 2xx", victim+1)
	runs := cl.sim.ReleaseRuns()
	if len(runs) != 1 {
		t.Fatalf("%d queued runs, want 1", len(runs))
	}
	cl.manualRunOnce(runs[0], leader, before)

	// The killed node back: it finds nothing left to notify.
	// (Its resolver looks at the store at once when it starts.)
	cl.restart(victim)
	cl.manualRunOnce(runs[0], leader, before)
	if cl.rcv.badSig != 0 {
		t.Fatalf("%d notifications failed signature verification", cl.rcv.badSig)
	}
}
