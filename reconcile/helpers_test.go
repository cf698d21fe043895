package reconcile

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

// env is a simulator on loopback, a real store, a client, a gate and a
// reconciler.
type env struct {
	t      testing.TB
	sim    *simulator.Server
	srv    *httptest.Server
	client *reportserver.Client
	db     *store.DB
	dir    string
	gate   *Gate
	r      *Reconciler
	reg    *prometheus.Registry
	seen   map[string]bool
	seq    int
}

func newEnv(t testing.TB, user string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), seen: map[string]bool{}}
	e.sim = simulator.New(simulator.Options{})
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	u, _ := url.Parse(e.srv.URL)
	c, err := reportserver.New(reportserver.Options{BaseURL: u, User: user, Password: user})
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	db, err := store.Open(store.Options{Dir: e.dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	t.Cleanup(func() { _ = db.Close() })
	e.restart()
	return e
}

// restart builds a new gate and reconciler on the same store, as a
// restarted process would.
func (e *env) restart() {
	e.t.Helper()
	g, err := NewGate(e.db, 0, zerolog.Nop())
	if err != nil {
		e.t.Fatal(err)
	}
	e.gate = g
	e.reg = prometheus.NewRegistry()
	r, err := New(Options{Client: e.client, Store: e.db, Gate: g, Registerer: e.reg})
	if err != nil {
		e.t.Fatal(err)
	}
	e.r = r
}

func (e *env) run() {
	e.t.Helper()
	if err := e.r.RunOnce(context.Background()); err != nil {
		e.t.Fatalf("RunOnce: %v", err)
	}
}

// fresh returns the stored events not returned before, oldest first.
func (e *env) fresh() []*rswebhooks.Event {
	e.t.Helper()
	es, err := e.db.ListEvents(context.Background(), "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*rswebhooks.Event
	for _, x := range es {
		if !e.seen[x.ID] {
			e.seen[x.ID] = true
			out = append(out, x)
		}
	}
	return out
}

func (e *env) must(id string, err error) string {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) name(kind string) string {
	e.seq++
	return fmt.Sprintf("%s %d", kind, e.seq)
}

func (e *env) category() string { return e.must(e.sim.CreateCategory(e.name("cat"))) }
func (e *env) report() string {
	return e.must(e.sim.CreateReport(e.category(), e.name("rep"), "admin"))
}

// proxyEvent stores, through the gate, the event the proxy would store for
// a call it saw just now.
func (e *env) proxyEvent(filter, typ, id, name string) error {
	return e.gate.AppendEvent(context.Background(), &rswebhooks.Event{
		ID: rswebhooks.NewID(timeNow()), Filter: filter, Type: typ, ResourceID: id, ResourceName: name,
		Time: timeNow().UTC(), Method: "POST", Path: "/x", Source: rswebhooks.SourceProxy,
	})
}

var timeNow = time.Now

// summary renders events as "filter type id" lines for comparison.
func summary(es []*rswebhooks.Event) map[string]int {
	out := map[string]int{}
	for _, x := range es {
		out[x.Filter+" "+x.Type+" "+x.ResourceID]++
	}
	return out
}

// nopClient is a report server that is never called.
type nopClient struct{ ReportServer }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
