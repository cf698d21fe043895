package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// The fault suite: one test per row of docs/reliability.md, each against
// the real binary (a child process with its own Badger store), the
// simulator as the report server and real loopback receivers. Every test
// asserts that unaffected webhooks keep receiving and affected ones catch
// up (or are skipped with their reason) as the table says.

const faultOperator = "fault-operator-token-0123456789"

// faultEnv is one daemon in front of a simulator, with a receiver.
type faultEnv struct {
	t    *testing.T
	sim  *simulator.Server
	up   *httptest.Server
	d    *daemonProc
	dir  string
	args []string
	rcv  *faultReceiver
	c    *http.Client
}

// faultReceiver records each notification by the path it was sent to.
type faultReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	byKey map[string]map[string]int // path → delivery id → times received
}

func newFaultReceiver(t *testing.T) *faultReceiver {
	r := &faultReceiver{byKey: map[string]map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		m := r.byKey[req.URL.Path]
		if m == nil {
			m = map[string]int{}
			r.byKey[req.URL.Path] = m
		}
		m[req.Header.Get("webhook-id")]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// got returns the distinct deliveries a path received, and the total.
func (r *faultReceiver) got(path string) (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.byKey[path] {
		distinct++
		total += n
	}
	return distinct, total
}

func newFaultEnv(t *testing.T, extra ...string) *faultEnv {
	t.Helper()
	e := &faultEnv{t: t, sim: simulator.New(simulator.Options{}), dir: t.TempDir(), c: &http.Client{Timeout: 30 * time.Second}}
	e.up = httptest.NewServer(e.sim)
	t.Cleanup(e.up.Close)
	e.rcv = newFaultReceiver(t)
	e.args = append([]string{"--upstream", e.up.URL, "--data-dir", e.dir, "--admin-token", faultOperator,
		"--service-user", "admin", "--service-password", "admin", "--watch-interval", "0",
		"--retry-delays", "200ms,400ms,800ms,1600ms,3200ms", "--attempt-timeout", "5s",
		"--allow-target", "127.0.0.0/8", "--access-cache-ttl", accessTTL.String(), "--log-level", "info"}, extra...)
	e.d = startDaemon(t, e.args...)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(e.d.logText(), "\n") {
				if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
					t.Log(l)
				}
			}
		}
	})
	return e
}

func (e *faultEnv) restart() {
	e.t.Helper()
	e.d = startDaemon(e.t, e.args...)
}

// token logs in through the proxy (so the daemon learns the token).
func (e *faultEnv) token(user string) string {
	e.t.Helper()
	c, err := e.sim.User(user)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.c.PostForm(e.d.proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {c.Password}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || v.AccessToken == "" {
		e.t.Fatalf("login %s: %d %v", user, res.StatusCode, err)
	}
	return v.AccessToken
}

// register creates a webhook for the categories filter sending to path.
func (e *faultEnv) register(tok, path string) rswebhooks.Webhook {
	e.t.Helper()
	body := fmt.Sprintf(`{"WebHookUri":%q,"Filters":["categories"]}`, e.rcv.URL+path+"?noecho=1")
	st, b := doJSON(e.t, e.c, "POST", e.d.adminURL+"/api/webhooks/registrations", tok, body)
	if st != http.StatusCreated {
		e.t.Fatalf("register %s: %d %s", path, st, b)
	}
	var w rswebhooks.Webhook
	if err := json.Unmarshal(b, &w); err != nil {
		e.t.Fatal(err)
	}
	return w
}

// change creates a category through the proxy as the administrator: one
// event every webhook above matches.
func (e *faultEnv) change(name string) {
	e.t.Helper()
	tok := e.token("admin")
	st, b := doJSON(e.t, e.c, "POST", e.d.proxyURL+"/api/reportserver/v2/categories", tok, `{"Name":"`+name+`"}`)
	if st/100 != 2 {
		e.t.Fatalf("create category: %d %s", st, b)
	}
}

// accessTTL is the daemon's --access-cache-ttl in these tests.
const accessTTL = 300 * time.Millisecond

// cacheExpires lets the daemon's access cache forget what it learned before
// a change at the report server: the behaviour under test is that a change
// counts once the cache's TTL has passed.
func (e *faultEnv) cacheExpires() { <-time.After(accessTTL + 50*time.Millisecond) }

func (e *faultEnv) webhook(id string) rswebhooks.Webhook {
	e.t.Helper()
	st, b := doJSON(e.t, e.c, "GET", e.d.adminURL+"/api/webhooks/registrations/"+id, faultOperator, "")
	if st != 200 {
		e.t.Fatalf("GET webhook: %d %s", st, b)
	}
	var w rswebhooks.Webhook
	_ = json.Unmarshal(b, &w)
	return w
}

func (e *faultEnv) deliveries(webhookID string) []rswebhooks.Delivery {
	e.t.Helper()
	st, b := doJSON(e.t, e.c, "GET", e.d.adminURL+"/api/webhooks/registrations/"+webhookID+"/deliveries?limit=500", faultOperator, "")
	if st != 200 {
		e.t.Fatalf("GET deliveries: %d %s", st, b)
	}
	var ds []rswebhooks.Delivery
	_ = json.Unmarshal(b, &ds)
	return ds
}

func (e *faultEnv) waitGot(path string, n int, within time.Duration) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("%d notifications at %s", n, path), within, func() bool {
		d, _ := e.rcv.got(path)
		return d >= n
	})
}

// Owner deleted at the report server: the operator's webhook keeps
// receiving; the owner's deliveries are skipped (owner_missing) and the
// webhook shows OwnerMissing; when the user comes back (same name, same
// id) the webhook resumes by itself.
func TestFaultOwnerDeleted(t *testing.T) {
	e := newFaultEnv(t)
	alice := e.register(e.token("alice"), "/alice")
	e.register(faultOperator, "/operator")
	e.change("before")
	e.waitGot("/alice", 1, 20*time.Second)
	e.waitGot("/operator", 1, 20*time.Second)

	if err := e.sim.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	e.cacheExpires()
	e.change("while-gone")
	e.waitGot("/operator", 2, 20*time.Second)
	waitFor(t, "alice's delivery skipped as owner_missing", 20*time.Second, func() bool {
		for _, d := range e.deliveries(alice.ID) {
			if d.State == rswebhooks.DeliverySkipped && d.Reason == "owner_missing" {
				return true
			}
		}
		return false
	})
	if !e.webhook(alice.ID).OwnerMissing {
		t.Fatal("webhook of a deleted owner does not show OwnerMissing")
	}
	if n, _ := e.rcv.got("/alice"); n != 1 {
		t.Fatalf("a deleted owner's webhook received %d notifications, want still 1", n)
	}
	if !strings.Contains(e.d.logText(), "notifications skipped (owner_missing)") {
		t.Fatal("no warning logged for the missing owner")
	}

	// The user is re-created: same id (derived from the name), resumes.
	if _, err := e.sim.AddUser("alice", "alice", false); err != nil {
		t.Fatal(err)
	}
	e.cacheExpires()
	e.change("back")
	e.waitGot("/alice", 2, 20*time.Second)
	e.waitGot("/operator", 3, 20*time.Second)
	waitFor(t, "OwnerMissing cleared", 10*time.Second, func() bool { return !e.webhook(alice.ID).OwnerMissing })
}

// Owner disabled: the same as deleted, and re-enabling resumes.
func TestFaultOwnerDisabled(t *testing.T) {
	e := newFaultEnv(t)
	alice := e.register(e.token("alice"), "/alice")
	e.register(faultOperator, "/operator")
	if err := e.sim.DisableUser("alice"); err != nil {
		t.Fatal(err)
	}
	e.change("while-disabled")
	e.waitGot("/operator", 1, 20*time.Second)
	waitFor(t, "OwnerMissing set", 20*time.Second, func() bool { return e.webhook(alice.ID).OwnerMissing })
	if n, _ := e.rcv.got("/alice"); n != 0 {
		t.Fatalf("a disabled owner's webhook received %d notifications", n)
	}
	if err := e.sim.EnableUser("alice"); err != nil {
		t.Fatal(err)
	}
	e.cacheExpires()
	e.change("enabled")
	e.waitGot("/alice", 1, 20*time.Second)
	e.waitGot("/operator", 2, 20*time.Second)
}

// Permission reads fail with 500 for a while (30 s in the table's scenario,
// 3 s here; the retry schedule spans 6.2 s): the operator's webhook, which
// needs no check, is delivered at once; alice's waits and catches up.
func TestFaultPermissionReads500(t *testing.T) {
	e := newFaultEnv(t)
	e.register(e.token("alice"), "/alice")
	e.register(faultOperator, "/operator")
	e.sim.FailPermissionReads(500, 3*time.Second)
	start := time.Now()
	e.change("during")
	e.waitGot("/operator", 1, 20*time.Second)
	operatorAfter := time.Since(start)
	if n, _ := e.rcv.got("/alice"); n != 0 && time.Since(start) < 3*time.Second {
		t.Fatalf("alice received while her permissions could not be read")
	}
	e.waitGot("/alice", 1, 30*time.Second)
	t.Logf("measured: operator's notification after %s, alice's after %s", operatorAfter, time.Since(start))
	if !strings.Contains(e.d.logText(), "access check failed") {
		t.Fatal("no access check failure logged")
	}
}

// The report server stops answering (connections dropped) for a while
// (30 s in the table's scenario, 3 s here): the proxy answers 502 for
// upstream calls and its admin API keeps working; the operator's
// notification is sent at once; alice's access check fails, is retried and
// her notification arrives after the outage.
func TestFaultReportServerDown(t *testing.T) {
	e := newFaultEnv(t)
	e.register(e.token("alice"), "/alice")
	e.register(faultOperator, "/operator")
	tok := e.token("admin")
	e.cacheExpires()
	// The access check starts while the server still answers, then it goes down.
	e.sim.HangPermissionReads(300 * time.Millisecond)
	st, b := doJSON(t, e.c, "POST", e.d.proxyURL+"/api/reportserver/v2/categories", tok, `{"Name":"x"}`)
	if st/100 != 2 {
		t.Fatalf("create: %d %s", st, b)
	}
	start := time.Now()
	e.sim.StopAnswering(3 * time.Second)
	e.waitGot("/operator", 1, 20*time.Second)
	operatorAfter := time.Since(start)
	if st, _ := doJSON(t, e.c, "GET", e.d.proxyURL+"/api/reportserver/v2/categories", tok, ""); st != http.StatusBadGateway {
		t.Errorf("proxy during the outage answered %d, want 502", st)
	}
	if st, _ := doJSON(t, e.c, "GET", e.d.adminURL+"/api/webhooks/registrations", faultOperator, ""); st != 200 {
		t.Errorf("admin API during the outage answered %d", st)
	}
	if n, _ := e.rcv.got("/alice"); n != 0 {
		t.Fatal("alice notified while her access could not be checked")
	}
	e.waitGot("/alice", 1, 30*time.Second)
	if time.Since(start) < 3*time.Second {
		t.Fatalf("alice notified %s after the outage began, before it ended", time.Since(start))
	}
	t.Logf("measured: operator's notification after %s, alice's after %s", operatorAfter, time.Since(start))
}

// Service-account password changed: access checks fail (the daemon cannot
// log in) and are retried; the operator's webhook keeps receiving; once
// the password is back, alice's catch up.
func TestFaultServiceAccountPasswordChanged(t *testing.T) {
	e := newFaultEnv(t)
	e.register(e.token("alice"), "/alice")
	e.register(faultOperator, "/operator")
	if _, err := e.sim.AddUser("editor", "editor", true); err != nil {
		t.Fatal(err)
	}
	tok := e.token("editor")
	if err := e.sim.SetPassword("admin", "changed"); err != nil { // the service account's
		t.Fatal(err)
	}
	e.cacheExpires()
	st, b := doJSON(t, e.c, "POST", e.d.proxyURL+"/api/reportserver/v2/categories", tok, `{"Name":"x"}`)
	if st/100 != 2 {
		t.Fatalf("create: %d %s", st, b)
	}
	e.waitGot("/operator", 1, 20*time.Second)
	waitFor(t, "an access check failure logged", 20*time.Second, func() bool {
		return strings.Contains(e.d.logText(), "access check failed")
	})
	// The cause is named: in the log (once per change), in a metric, and as
	// a /readyz warning that leaves the daemon ready.
	waitFor(t, "the refused login named in the log", 20*time.Second, func() bool {
		return strings.Contains(e.d.logText(), "refuses the service account's name or password")
	})
	if m := metrics(t, e); strings.Contains(m, `rswebhooks_service_account_logins_total{result="refused"} 0`) ||
		!strings.Contains(m, `rswebhooks_service_account_logins_total{result="refused"}`) {
		t.Errorf("refused logins not counted:\n%s", grepLines(m, "service_account_logins"))
	}
	if st, b := doJSON(t, e.c, "GET", e.d.adminURL+"/readyz", "", ""); st != 200 || !strings.Contains(string(b), "service_account") {
		t.Errorf("/readyz = %d %s, want ready with a service_account warning", st, b)
	}
	if err := e.sim.SetPassword("admin", "admin"); err != nil {
		t.Fatal(err)
	}
	e.waitGot("/alice", 1, 30*time.Second)
}

// An administrator demoted at the report server stops receiving what only
// administrators see. With a service account the check is asked afresh
// after the access cache's TTL.
func TestFaultAdminDemoted(t *testing.T) {
	e := newFaultEnv(t)
	if _, err := e.sim.AddUser("ann", "ann", true); err != nil {
		t.Fatal(err)
	}
	e.register(e.token("ann"), "/ann")
	cat, err := e.sim.CreateCategory("secret")
	if err != nil {
		t.Fatal(err)
	}
	_ = cat
	e.change("before")
	e.waitGot("/ann", 1, 20*time.Second)
	if err := e.sim.DemoteUser("ann"); err != nil {
		t.Fatal(err)
	}
	e.cacheExpires()
	// Ann is in Users now: Users may read any category in the simulator's
	// seed, so take that away with the role.
	if err := e.sim.DeleteRole(simulator.RoleUsers); err != nil {
		t.Fatal(err)
	}
	e.register(faultOperator, "/operator")
	e.change("after")
	e.waitGot("/operator", 1, 20*time.Second)
	waitFor(t, "ann's undecided delivery to be dropped", 20*time.Second, func() bool {
		return strings.Contains(metrics(t, e), "rswebhooks_deliveries_denied_total 1")
	})
	if n, _ := e.rcv.got("/ann"); n != 1 {
		t.Fatalf("demoted administrator received %d notifications, want still 1", n)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func metrics(t *testing.T, e *faultEnv) string {
	_, b := doJSON(t, e.c, "GET", e.d.adminURL+"/metrics", "", "")
	return string(b)
}

// 2,000 webhooks match one event, and the daemon is killed (SIGKILL) while
// it fans out and delivers: after a restart every webhook has exactly one
// delivery of the event and every receiver got it (at least once).
func TestFaultFanOut2000AndSIGKILL(t *testing.T) {
	e := newFaultEnv(t, "--max-concurrency", "32")
	const n = 2000
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, e.register(faultOperator, fmt.Sprintf("/w%04d", i)).ID)
	}
	e.register(e.token("alice"), "/alice")
	e.change("big")
	waitFor(t, "some deliveries", 30*time.Second, func() bool {
		d, _ := e.rcv.got("/w0000")
		return d > 0 || len(e.rcv.byKeySnapshot()) > 10
	})
	e.d.kill()
	e.restart()
	waitFor(t, "every webhook notified", 120*time.Second, func() bool {
		return len(e.rcv.byKeySnapshot()) >= n+1
	})
	for _, id := range ids {
		if ds := e.deliveries(id); len(ds) != 1 {
			t.Fatalf("webhook %s has %d deliveries of the one event, want 1", id, len(ds))
		}
	}
	dups := 0
	for _, m := range e.rcv.byKeySnapshot() {
		for _, c := range m {
			dups += c - 1
		}
	}
	t.Logf("measured: %d webhooks, %d notifications repeated after SIGKILL (at-least-once)", n+1, dups)
}

func (r *faultReceiver) byKeySnapshot() map[string]map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]map[string]int, len(r.byKey))
	for k, m := range r.byKey {
		c := make(map[string]int, len(m))
		for id, v := range m {
			c[id] = v
		}
		out[k] = c
	}
	return out
}

// A role that grants a user's read access is deleted: the user's next
// notifications are dropped (a role not found grants nothing); the
// operator's keep coming.
func TestFaultRoleDeleted(t *testing.T) {
	e := newFaultEnv(t)
	e.register(e.token("alice"), "/alice") // Users role: read any category
	e.register(faultOperator, "/operator")
	e.change("before")
	e.waitGot("/alice", 1, 20*time.Second)
	if err := e.sim.DeleteRole(simulator.RoleUsers); err != nil {
		t.Fatal(err)
	}
	e.cacheExpires()
	e.change("after")
	e.waitGot("/operator", 2, 20*time.Second)
	waitFor(t, "alice's delivery to be dropped", 20*time.Second, func() bool {
		return strings.Contains(metrics(t, e), "rswebhooks_deliveries_denied_total 1")
	})
	if n, _ := e.rcv.got("/alice"); n != 1 {
		t.Fatalf("alice received %d notifications after her role was deleted, want still 1", n)
	}
}

// The report server answers permission reads slowly (5 s in the table's
// scenario, 1.5 s here): only the webhooks that need a check wait.
func TestFaultReportServerSlow(t *testing.T) {
	e := newFaultEnv(t)
	e.register(e.token("alice"), "/alice")
	e.register(faultOperator, "/operator")
	tok := e.token("admin")
	e.cacheExpires()
	e.sim.HangPermissionReads(1500 * time.Millisecond)
	start := time.Now()
	st, b := doJSON(t, e.c, "POST", e.d.proxyURL+"/api/reportserver/v2/categories", tok, `{"Name":"x"}`)
	if st/100 != 2 {
		t.Fatalf("create: %d %s", st, b)
	}
	e.waitGot("/operator", 1, 20*time.Second)
	operatorAfter := time.Since(start)
	e.waitGot("/alice", 1, 20*time.Second)
	t.Logf("measured: operator's notification after %s, alice's after %s", operatorAfter, time.Since(start))
	if operatorAfter > time.Second {
		t.Fatalf("the operator's notification waited %s for someone else's slow access check", operatorAfter)
	}
}
