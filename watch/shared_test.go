package watch

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The tests in this file run several "nodes" (each a Watcher with its
// Correlator) on one shared store, as the nodes of a cluster do: against
// Badger (one store handle shared by the nodes of one process) and against
// PostgreSQL (one connection pool per node on one database).

// cnode is one node: its store handle, its correlator and its watcher.
type cnode struct {
	st   Store
	corr *Correlator
	w    *Watcher
}

type sharedEnv struct {
	t     *testing.T
	clk   *testutil.Clock
	sim   *simulator.Server
	srv   *httptest.Server
	late  *lateClient
	nodes []*cnode
}

// engines opens n handles on one empty store of each engine.
var engines = []struct {
	name string
	open func(t *testing.T, n int) []Store
}{
	{"badger", func(t *testing.T, n int) []Store {
		db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		out := make([]Store, n)
		for i := range out {
			out[i] = db
		}
		return out
	}},
	{"postgres", func(t *testing.T, n int) []Store {
		u := pgtest.NewDatabase(t)
		out := make([]Store, n)
		for i := range out {
			db, err := pgstore.Open(context.Background(), pgstore.Options{URL: u, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			out[i] = db
		}
		return out
	}},
}

// eachEngine runs fn against every engine.
func eachEngine(t *testing.T, fn func(t *testing.T, open func(t *testing.T, n int) []Store)) {
	for _, en := range engines {
		t.Run(en.name, func(t *testing.T) { fn(t, en.open) })
	}
}

func newSharedEnv(t *testing.T, stores []Store, mod func(*Options)) *sharedEnv {
	t.Helper()
	e := &sharedEnv{t: t, clk: testutil.NewClock(time.Now().UTC().Truncate(time.Second))}
	e.sim = simulator.New(simulator.Options{Now: e.clk.Now})
	e.srv = httptest.NewServer(dateHeader(e.sim))
	t.Cleanup(e.srv.Close)
	u, _ := url.Parse(e.srv.URL)
	c, err := reportserver.New(reportserver.Options{BaseURL: u, User: "admin", Password: "admin", Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.late = &lateClient{ReportServer: c}
	for _, st := range stores {
		opts := Options{Client: e.late, Store: st, Now: e.clk.Now, Registerer: prometheus.NewRegistry(), APIVersion: "v3"}
		if mod != nil {
			mod(&opts)
		}
		w, corr, err := NewCorrelated(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		e.nodes = append(e.nodes, &cnode{st: st, corr: corr, w: w})
	}
	return e
}

// call is an execute call of task through node i's proxy: the report
// server runs (or queues) the task, then the call's event is appended
// through that node's correlator, as the detector does.
func (e *sharedEnv) call(i int, task string) *rswebhooks.Event {
	e.t.Helper()
	tok, err := e.sim.IssueToken("admin")
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/reportserver/v3/scheduled-tasks/"+task+"/execute", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		e.t.Fatalf("execute %s: %d", task, res.StatusCode)
	}
	return e.appendCall(i, task)
}

// appendCall appends an execute call's event of task through node i's
// correlator (the call itself is the test's business).
func (e *sharedEnv) appendCall(i int, task string) *rswebhooks.Event {
	e.t.Helper()
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(e.clk.Now()), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventExecuted,
		ResourceID: task, Time: e.clk.Now(), Method: http.MethodPost, Path: "/api/reportserver/v3/scheduled-tasks/" + task + "/execute",
		UserID: "u-admin", UserName: "admin", APIVersion: "v3", Source: rswebhooks.SourceProxy}
	if err := e.nodes[i].corr.AppendEvent(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *sharedEnv) poll(i int) {
	e.t.Helper()
	if err := e.nodes[i].w.PollOnce(context.Background()); err != nil {
		e.t.Fatalf("node %d PollOnce: %v", i, err)
	}
}

func (e *sharedEnv) resolve(i int) bool {
	e.t.Helper()
	held, err := e.nodes[i].w.resolveOnce(context.Background())
	if err != nil {
		e.t.Fatalf("node %d resolve: %v", i, err)
	}
	return held
}

func (e *sharedEnv) events() []*rswebhooks.Event {
	e.t.Helper()
	es, err := e.nodes[len(e.nodes)-1].st.(interface {
		UnfannedEvents(ctx context.Context, limit int) ([]*rswebhooks.Event, error)
	}).UnfannedEvents(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// oneRunEvent checks that the only event is the call's carrying run x,
// under the run's deterministic id.
func (e *sharedEnv) oneRunEvent(task string, x simulator.Execution) {
	e.t.Helper()
	es := e.events()
	if len(es) != 1 {
		e.t.Fatalf("%d events, want exactly 1: %+v", len(es), es)
	}
	ev := es[0]
	if ev.Source != rswebhooks.SourceProxy || ev.UserName != "admin" || ev.Method != http.MethodPost || len(ev.Missing) != 0 {
		e.t.Fatalf("event %+v: want the call's (caller kept, nothing missing)", *ev)
	}
	if want := EventID(rswebhooks.FilterTasks, task, x.Id, x.ExecutionDateUtc.UTC()); ev.ID != want || ev.ExecutionID != x.Id ||
		ev.ExecutionDateUTC == nil || !slices.Equal(ev.DocumentIDs, x.DocumentIds) || len(ev.Documents) != len(x.DocumentIds) {
		e.t.Fatalf("event %+v: want run %s under id %s with its documents", *ev, x.Id, want)
	}
}

// noClaims checks that no claim is left in the store.
func (e *sharedEnv) noClaims() {
	e.t.Helper()
	if cls, err := e.nodes[0].corr.claims(context.Background()); err != nil || len(cls) != 0 {
		e.t.Fatalf("claims left: %d (%v)", len(cls), err)
	}
}

// A call held by node 0, which never reads its history (it died): node 1's
// resolver lets it take its run once the report server records it.
func TestSharedClaimResolvedByAnotherNode(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		e := newSharedEnv(t, open(t, 2), nil)
		task, _ := e.sim.SeedTasks(1, "")
		e.poll(1) // first start: baseline
		e.sim.HoldRuns()
		e.call(0, task[0])
		if !e.resolve(1) {
			t.Fatal("node 1 does not see node 0's call held")
		}
		if n := len(e.events()); n != 0 {
			t.Fatalf("%d events before the run exists, want 0", n)
		}
		e.clk.Add(2 * time.Second)
		runs := e.sim.ReleaseRuns()
		if e.resolve(1) {
			t.Fatal("node 1 still holds the call after its run appeared")
		}
		e.oneRunEvent(task[0], runs[0])
		e.noClaims()
		// The leader's next polls add nothing.
		e.poll(1)
		e.poll(1)
		e.oneRunEvent(task[0], runs[0])
	})
}

// The watching node's poll finds the run before the calling node's
// resolver: it lets the claim take it, so the one event is the call's,
// with the caller; the calling node then finds nothing to do.
func TestSharedClaimLeaderPollFirst(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		e := newSharedEnv(t, open(t, 2), nil)
		task, _ := e.sim.SeedTasks(1, "")
		e.poll(1)
		e.clk.Add(time.Second)
		e.call(0, task[0]) // the simulator records the run before answering
		xs, _ := e.sim.Executions(task[0])
		e.poll(1)
		e.oneRunEvent(task[0], xs[0])
		if e.resolve(0) {
			t.Fatal("node 0 still holds its call")
		}
		e.poll(1)
		e.oneRunEvent(task[0], xs[0])
		e.noClaims()
	})
}

// Several nodes resolving the same calls at once, and the leader polling
// meanwhile: each run is notified once, each with its caller.
func TestSharedClaimConcurrentNodes(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		e := newSharedEnv(t, open(t, 3), nil)
		tasks, _ := e.sim.SeedTasks(4, "")
		e.poll(0)
		e.sim.HoldRuns()
		for i, task := range tasks {
			e.call(i%3, task)
		}
		e.clk.Add(time.Second)
		e.sim.ReleaseRuns()
		var wg sync.WaitGroup
		errs := make(chan error, 12)
		for round := range 4 {
			for i := range e.nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					if i == 0 && round%2 == 0 {
						err = e.nodes[i].w.PollOnce(context.Background())
					} else {
						_, err = e.nodes[i].w.resolveOnce(context.Background())
					}
					if err != nil {
						errs <- err
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		es := e.events()
		if len(es) != len(tasks) {
			t.Fatalf("%d events for %d manual runs, want one each: %+v", len(es), len(tasks), es)
		}
		for _, ev := range es {
			if ev.ExecutionID == "" || ev.UserName != "admin" || ev.Source != rswebhooks.SourceProxy {
				t.Fatalf("event %+v: want the call's with its run", *ev)
			}
		}
		e.noClaims()
	})
}

// A call whose run never appears leaves once, without it, however many
// nodes find it overdue at once; the run showing up later is taken by the
// claim and not notified.
func TestSharedClaimOverdueLeavesOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		e := newSharedEnv(t, open(t, 3), func(o *Options) { o.RecordWait = 30 * time.Second })
		task, _ := e.sim.SeedTasks(1, "")
		e.poll(0)
		e.sim.HoldRuns()
		call := e.call(1, task[0])
		e.clk.Add(31 * time.Second)
		var wg sync.WaitGroup
		for i := range e.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.nodes[i].w.resolveOnce(context.Background()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		es := e.events()
		if len(es) != 1 || es[0].ID != call.ID || es[0].ExecutionID != "" || es[0].Note == "" ||
			!slices.Equal(es[0].Missing, []string{"ExecutionId", "ExecutionDateUtc", "DocumentIds"}) || es[0].UserName != "admin" {
			t.Fatalf("events %+v: want the call's once, naming what it lacks", es)
		}
		e.sim.ReleaseRuns()
		e.poll(0)
		e.poll(2)
		if n := len(e.events()); n != 1 {
			t.Fatalf("%d events once the late run appeared, want still 1", n)
		}
		e.noClaims()
	})
}

// dyingStore stops appending at the first event carrying a run: the node
// died after deciding which run a call takes, before appending its event.
type dyingStore struct {
	Store
	dead atomic.Bool
}

var errDied = errors.New("node died")

func (f *dyingStore) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e.ExecutionID != "" {
		f.dead.Store(true)
	}
	if f.dead.Load() {
		return errDied
	}
	return f.Store.AppendEvent(ctx, e)
}

// A node that decided which run a call takes and died before appending the
// event leaves the decision in the store; another node carries it out.
func TestSharedClaimDecisionFinishedByAnotherNode(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		sts := open(t, 2)
		dying := &dyingStore{Store: sts[0]}
		e := newSharedEnv(t, []Store{dying, sts[1]}, nil)
		task, _ := e.sim.SeedTasks(1, "")
		e.poll(1)
		e.clk.Add(time.Second)
		e.call(0, task[0])
		xs, _ := e.sim.Executions(task[0])
		if _, err := e.nodes[0].w.resolveOnce(context.Background()); !errors.Is(err, errDied) {
			t.Fatalf("node 0 resolve = %v, want its death", err)
		}
		cls, err := e.nodes[1].corr.claims(context.Background())
		if err != nil || len(cls) != 1 || cls[0].Exec == "" || cls[0].Event == nil {
			t.Fatalf("claims %+v (%v): want the decision stored", cls, err)
		}
		if n := len(e.events()); n != 0 {
			t.Fatalf("%d events, want 0 before anyone carries the decision out", n)
		}
		e.poll(1) // the leader: the run is the claim's, and the decision is carried out
		e.oneRunEvent(task[0], xs[0])
		e.noClaims()
	})
}

// The watcher notified a run on its own before the call's claim was
// stored (the race): the call is then dropped, so there is one event.
func TestSharedClaimAfterWatcherEmission(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		e := newSharedEnv(t, open(t, 2), nil)
		task, _ := e.sim.SeedTasks(1, "")
		e.poll(1)
		x, _ := e.sim.RunTask(task[0]) // the call's run, recorded before the claim
		e.poll(1)
		// The claim arrives after the emission: dropped at once...
		e.appendCall(0, task[0])
		if es := e.events(); len(es) != 1 || es[0].ExecutionID != x.Id || es[0].Source != rswebhooks.SourceWatch {
			t.Fatalf("events %+v: want the watcher's only", es)
		}
		e.noClaims()
		// ...or, when it was stored before the emission was readable, by
		// the resolver that finds its run already notified.
		e.clk.Add(time.Minute)
		y, _ := e.sim.RunTask(task[0])
		e.poll(1)
		raw, err := e.nodes[0].st.GetMeta(context.Background(), emittedPrefix+execKey(rswebhooks.FilterTasks, task[0], y.Id))
		if err != nil {
			t.Fatal(err)
		}
		late := &claim{Res: resKey(rswebhooks.FilterTasks, task[0]), At: e.clk.Now(), id: rswebhooks.NewID(e.clk.Now()),
			Event: &rswebhooks.Event{ID: "x", Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventExecuted, ResourceID: task[0], Time: e.clk.Now()}}
		late.Event.ID = late.id
		if err := e.nodes[0].corr.put(context.Background(), late); err != nil {
			t.Fatal(err)
		}
		e.resolve(0)
		if n := len(e.events()); n != 2 {
			t.Fatalf("%d events, want the watcher's two", n)
		}
		e.noClaims()
		if _, err := e.nodes[0].st.GetMeta(context.Background(), emittedPrefix+execKey(rswebhooks.FilterTasks, task[0], y.Id)); !errors.Is(err, rswebhooks.ErrNotFound) {
			t.Fatalf("emission %s not used up: %v", raw, err)
		}
	})
}

// The single state key of earlier releases is converted at start: its held
// call leaves with its run, and the key is gone.
func TestLegacyCorrelatorStateConverted(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(*testing.T, int) []Store) {
		sts := open(t, 1)
		pre := newSharedEnv(t, sts, nil) // the watcher's baseline, as the old release left it
		task, _ := pre.sim.SeedTasks(1, "")
		pre.poll(0)
		at := pre.clk.Now()
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventExecuted,
			ResourceID: task[0], Time: at, Method: http.MethodPost, UserName: "admin", Source: rswebhooks.SourceProxy}
		old, _ := json.Marshal(map[string]any{"OffsetNs": 0, "Claims": []map[string]any{{"R": resKey(rswebhooks.FilterTasks, task[0]), "T": at, "E": ev}}})
		if err := sts[0].PutMeta(context.Background(), legacyState, old); err != nil {
			t.Fatal(err)
		}
		x, _ := pre.sim.RunTask(task[0])
		e := &sharedEnv{t: t, clk: pre.clk, sim: pre.sim, late: pre.late}
		w, corr, err := NewCorrelated(context.Background(), Options{Client: pre.late, Store: sts[0], Now: pre.clk.Now, APIVersion: "v3"})
		if err != nil {
			t.Fatal(err)
		}
		e.nodes = []*cnode{{st: sts[0], corr: corr, w: w}}
		if _, err := sts[0].GetMeta(context.Background(), legacyState); !errors.Is(err, rswebhooks.ErrNotFound) {
			t.Fatalf("legacy key still there: %v", err)
		}
		e.poll(0)
		e.oneRunEvent(task[0], x)
	})
}
