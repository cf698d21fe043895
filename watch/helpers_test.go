package watch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

// env is a simulator on loopback, a real store, a client and a watcher.
type env struct {
	t      testing.TB
	clk    *testutil.Clock
	sim    *simulator.Server
	srv    *httptest.Server
	client *reportserver.Client
	db     *store.DB
	dir    string
	corr   *Correlator
	w      *Watcher
	reg    *prometheus.Registry
	wakes  int
	wakeMu sync.Mutex
}

// dateHeader makes the simulator's HTTP Date header follow its own
// (skewed, injected) clock, as a real server's does; net/http would
// otherwise stamp the test process's wall clock.
func dateHeader(sim *simulator.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", sim.Now().Format(http.TimeFormat))
		sim.ServeHTTP(w, r)
	})
}

func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, clk: testutil.NewClock(time.Now().UTC().Truncate(time.Second)), dir: t.TempDir()}
	e.sim = simulator.New(simulator.Options{Now: e.clk.Now, DisableGzip: false})
	e.srv = httptest.NewServer(dateHeader(e.sim))
	t.Cleanup(e.srv.Close)
	u, _ := url.Parse(e.srv.URL)
	c, err := reportserver.New(reportserver.Options{BaseURL: u, User: "admin", Password: "admin", Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	e.openStore()
	e.newWatcher(mod)
	return e
}

func (e *env) openStore() {
	e.t.Helper()
	db, err := store.Open(store.Options{Dir: e.dir, Logger: zerolog.Nop(), Now: e.clk.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.t.Cleanup(func() { _ = db.Close() })
}

// newWatcher builds a new Correlator and Watcher on the env's store with
// NewCorrelated, as the daemon (and a restarted process) does.
func (e *env) newWatcher(mod func(*Options)) {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	opts := Options{Client: e.client, Store: e.db, Now: e.clk.Now, Registerer: e.reg,
		OnEvent: func() { e.wakeMu.Lock(); e.wakes++; e.wakeMu.Unlock() }}
	if mod != nil {
		mod(&opts)
	}
	w, corr, err := NewCorrelated(context.Background(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if w.o.Correlator != corr {
		e.t.Fatal("NewCorrelated: the watcher does not use the returned Correlator")
	}
	e.w, e.corr = w, corr
}

func (e *env) poll() {
	e.t.Helper()
	if err := e.w.PollOnce(context.Background()); err != nil {
		e.t.Fatalf("PollOnce: %v", err)
	}
}

// events returns every stored event not yet fanned out, oldest first.
func (e *env) events() []*rswebhooks.Event {
	e.t.Helper()
	es, err := e.db.UnfannedEvents(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func (e *env) task(name string) string {
	e.t.Helper()
	ids, err := e.sim.SeedTasks(1, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return ids[0]
}

func (e *env) alert() string {
	e.t.Helper()
	ids, err := e.sim.SeedAlerts(1, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return ids[0]
}

func (e *env) run(id string) simulator.Execution {
	e.t.Helper()
	x, err := e.sim.RunTask(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

func (e *env) runAlert(id string, triggered bool) simulator.Execution {
	e.t.Helper()
	x, err := e.sim.RunAlert(id, triggered)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// countExec returns how many events are Executed events of resource id
// (ids compared case-insensitively, as the report server does; an id of
// digits only is its own upper case, so it must not be counted twice).
func countExec(es []*rswebhooks.Event, id string) int {
	n := 0
	for _, e := range es {
		if e.Type == rswebhooks.EventExecuted && strings.EqualFold(e.ResourceID, id) {
			n++
		}
	}
	return n
}

// storeFn wraps a Store and lets a test replace single methods.
type storeFn struct {
	Store
	mark func(ctx context.Context, ids []string) error
}

func (s storeFn) MarkExecutionsSeen(ctx context.Context, ids []string) error {
	if s.mark != nil {
		return s.mark(ctx, ids)
	}
	return s.Store.MarkExecutionsSeen(ctx, ids)
}

// limitClient holds every history read until block is closed and records
// the peak number in flight.
type limitClient struct {
	ReportServer
	block   chan struct{}
	started chan struct{}
	mu      sync.Mutex
	n, peak int
	once    sync.Once
}

func (l *limitClient) init() { l.once.Do(func() { l.started = make(chan struct{}, 1000) }) }

func (l *limitClient) inflight() int {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *limitClient) enter() {
	l.init()
	l.mu.Lock()
	l.n++
	l.peak = max(l.peak, l.n)
	l.mu.Unlock()
	l.started <- struct{}{}
	<-l.block
	l.mu.Lock()
	l.n--
	l.mu.Unlock()
}

func (l *limitClient) TaskExecutions(ctx context.Context, v, id, etag string) ([]reportserver.Execution, reportserver.Stamp, error) {
	l.enter()
	return l.ReportServer.TaskExecutions(ctx, v, id, etag)
}

func (l *limitClient) AlertExecutions(ctx context.Context, v, id, etag string) ([]reportserver.Execution, reportserver.Stamp, error) {
	l.enter()
	return l.ReportServer.AlertExecutions(ctx, v, id, etag)
}

// holding reports whether an execute call's event waits for its run.
func (c *Correlator) holding() bool {
	cls, err := c.claims(context.Background())
	if err != nil {
		panic(err)
	}
	for _, cl := range cls {
		if cl.held() {
			return true
		}
	}
	return false
}

// pending returns the number of claims no run was taken for (held, or
// left without their run and still absorbing a late record).
func (c *Correlator) pending() int {
	cls, err := c.claims(context.Background())
	if err != nil {
		panic(err)
	}
	n := 0
	for _, cl := range cls {
		if cl.open() {
			n++
		}
	}
	return n
}
