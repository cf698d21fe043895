package reconcile

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// nodeStore is what a node of a cluster gives its reconciler and gate.
type nodeStore interface {
	Store
	Shared
}

// engines open the store of two nodes: on PostgreSQL each node has its own
// connection pool on one database; Badger cannot be shared between
// processes, so there both nodes use one store (the gates still share only
// what they write to it).
var engines = []struct {
	name string
	open func(t *testing.T) (a, b nodeStore)
}{
	{"badger", func(t *testing.T) (nodeStore, nodeStore) {
		db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db, db
	}},
	{"postgres", func(t *testing.T) (nodeStore, nodeStore) {
		u := pgtest.NewDatabase(t)
		open := func() nodeStore {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db, err := pgstore.Open(ctx, pgstore.Options{URL: u, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}
		return open(), open()
	}},
}

func eachEngine(t *testing.T, fn func(t *testing.T, c *cluster)) {
	for _, en := range engines {
		t.Run(en.name, func(t *testing.T) {
			a, b := en.open(t)
			fn(t, newCluster(t, a, b))
		})
	}
}

// hookedShared calls after (when set) once a write to a key with prefix
// has returned.
type hookedShared struct {
	Shared
	mu     sync.Mutex
	prefix string
	after  func()
}

func (h *hookedShared) hook(prefix string, after func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prefix, h.after = prefix, after
}

func (h *hookedShared) fire(key string) {
	h.mu.Lock()
	f := h.after
	if f == nil || !strings.HasPrefix(key, h.prefix) {
		h.mu.Unlock()
		return
	}
	h.after = nil // once
	h.mu.Unlock()
	f()
}

func (h *hookedShared) PutMetaUntil(ctx context.Context, key string, v []byte, exp time.Time) error {
	err := h.Shared.PutMetaUntil(ctx, key, v, exp)
	if err == nil {
		h.fire(key)
	}
	return err
}

func (h *hookedShared) PutMetaIfAbsent(ctx context.Context, key string, v []byte) ([]byte, bool, error) {
	got, created, err := h.Shared.PutMetaIfAbsent(ctx, key, v)
	if err == nil {
		h.fire(key)
	}
	return got, created, err
}

// hookedNext calls before (when set, once) before passing an append on.
type hookedNext struct {
	EventStore
	mu     sync.Mutex
	before func()
}

func (h *hookedNext) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	h.mu.Lock()
	f := h.before
	h.before = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.EventStore.AppendEvent(ctx, e)
}

// cluster is two nodes on one store: node A runs the reconciler, node B a
// proxy whose events pass B's gate.
type cluster struct {
	t            *testing.T
	sim          *simulator.Server
	a, b         nodeStore
	sharedA      *hookedShared
	sharedB      *hookedShared
	nextB        *hookedNext
	gateA, gateB *Gate
	r            *Reconciler
	seen         map[string]bool
}

func newCluster(t *testing.T, a, b nodeStore) *cluster {
	c := &cluster{t: t, a: a, b: b, seen: map[string]bool{}}
	c.sim = simulator.New(simulator.Options{})
	srv := httptest.NewServer(c.sim)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	client, err := reportserver.New(reportserver.Options{BaseURL: u, User: "admin", Password: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	c.sharedA, c.sharedB = &hookedShared{Shared: a}, &hookedShared{Shared: b}
	c.nextB = &hookedNext{EventStore: b}
	if c.gateA, err = NewSharedGate(a, c.sharedA, 0, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if c.gateB, err = NewSharedGate(c.nextB, c.sharedB, 0, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	c.r, err = New(Options{Client: client, Store: a, Gate: c.gateA, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	c.run() // baseline
	return c
}

func (c *cluster) run() {
	c.t.Helper()
	if err := c.r.RunOnce(context.Background()); err != nil {
		c.t.Fatalf("RunOnce on node A: %v", err)
	}
}

// proxyB stores through node B's gate the event its proxy would store for
// a call it saw just now.
func (c *cluster) proxyB(filter, typ, id string) {
	c.t.Helper()
	err := c.gateB.AppendEvent(context.Background(), &rswebhooks.Event{
		ID: rswebhooks.NewID(time.Now()), Filter: filter, Type: typ, ResourceID: id,
		Time: time.Now().UTC(), Method: "PUT", Path: "/x", Source: rswebhooks.SourceProxy,
	})
	if err != nil {
		c.t.Errorf("append through node B's gate: %v", err)
	}
}

// fresh returns the events stored since the last call, as node B reads
// them.
func (c *cluster) fresh() []*rswebhooks.Event {
	c.t.Helper()
	es, err := c.b.ListEvents(context.Background(), "", 0)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []*rswebhooks.Event
	for _, x := range es {
		if !c.seen[x.ID] {
			c.seen[x.ID] = true
			out = append(out, x)
		}
	}
	return out
}

func (c *cluster) report() string {
	c.t.Helper()
	cat, err := c.sim.CreateCategory("cat " + rswebhooks.NewID(time.Now()))
	if err != nil {
		c.t.Fatal(err)
	}
	rep, err := c.sim.CreateReport(cat, "rep "+rswebhooks.NewID(time.Now()), "admin")
	if err != nil {
		c.t.Fatal(err)
	}
	c.run()
	c.fresh()
	return rep
}

// one asserts that the change produced exactly one event, from source.
func (c *cluster) one(source, id string) {
	c.t.Helper()
	c.run() // a later run adds nothing either
	es := c.fresh()
	if len(es) != 1 || es[0].Source != source || es[0].ResourceID != id || es[0].Type != rswebhooks.EventUpdated {
		var got []string
		for _, e := range es {
			got = append(got, e.Source+" "+e.Type+" "+e.ResourceID)
		}
		c.t.Fatalf("events %v, want one %s Updated %s", got, source, id)
	}
}

// The reconciler on node A emitted a change; node B's proxy copy of it,
// arriving late, is dropped, once: a second proxy event of that type, and
// one of another type, pass.
func TestSharedGateDropsTheLateCopyOnAnotherNode(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *cluster) {
		rep := c.report()
		if err := c.sim.RenameResource("reports", rep, "renamed"); err != nil {
			t.Fatal(err)
		}
		c.run()
		c.proxyB("reports", rswebhooks.EventUpdated, rep)
		c.one(rswebhooks.SourceReconcile, rep)

		c.proxyB("reports", rswebhooks.EventUpdated, rep)
		c.proxyB("reports", rswebhooks.EventDeleted, rep)
		if es := c.fresh(); len(es) != 2 || es[0].Source != rswebhooks.SourceProxy || es[1].Source != rswebhooks.SourceProxy {
			t.Fatalf("after the emission was used: %d events (%+v), want both proxy events", len(es), es)
		}
	})
}

// Node B's gate found no emission, and before its append reached the
// store the reconciler read, emitted and looked again: it finds B's
// announced event and yields, so the proxy's event is the one.
func TestSharedGateReconcilerYieldsToAnEventInFlight(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *cluster) {
		rep := c.report()
		if err := c.sim.RenameResource("reports", rep, "renamed"); err != nil {
			t.Fatal(err)
		}
		ran := false
		c.nextB.before = func() { c.run(); ran = true }
		c.proxyB("reports", rswebhooks.EventUpdated, rep)
		if !ran {
			t.Fatal("the run did not happen between B's check and its append")
		}
		c.one(rswebhooks.SourceProxy, rep)
	})
}

// The reconciler recorded its emission; node B's event then sees it and is
// dropped (B settles first); the reconciler, seeing B's event announced,
// asks the store and keeps its own.
func TestSharedGateProxyCopyYieldsWhenItSettlesFirst(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *cluster) {
		rep := c.report()
		if err := c.sim.RenameResource("reports", rep, "renamed"); err != nil {
			t.Fatal(err)
		}
		ran := false
		c.sharedA.hook(metaEmitted, func() { c.proxyB("reports", rswebhooks.EventUpdated, rep); ran = true })
		c.run()
		if !ran {
			t.Fatal("B's event did not arrive between the emission and the second look")
		}
		c.one(rswebhooks.SourceReconcile, rep)
	})
}

// Both sides see each other and the reconciler settles first: it yields,
// and node B's event, finding the decision, is stored.
func TestSharedGateBothSeeEachOtherReconcilerSettlesFirst(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *cluster) {
		rep := c.report()
		if err := c.sim.RenameResource("reports", rep, "renamed"); err != nil {
			t.Fatal(err)
		}
		announced, settled, bDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
		// B announces its event, then waits for A to settle before it
		// reads the emission (which A has not withdrawn yet); A waits for
		// B to finish before it withdraws.
		c.sharedB.hook(metaProxied, func() { close(announced); within(t, settled, "A to settle") })
		c.sharedA.hook(metaDecided, func() { close(settled); within(t, bDone, "B to finish") })
		go func() {
			defer close(bDone)
			c.proxyB("reports", rswebhooks.EventUpdated, rep)
		}()
		within(t, announced, "B to announce its event")
		c.run()
		within(t, bDone, "B to finish")
		c.one(rswebhooks.SourceProxy, rep)
	})
}

// within waits for ch to close, failing t after ten seconds.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Errorf("waited 10 s for %s", what)
	}
}

// Leadership moved to another node and back: the node that reconciles
// again reads the snapshot the other left instead of diffing against its
// own stale one.
func TestRunReadsTheSnapshotAgainAfterLeadershipMoved(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *cluster) {
		rep := c.report()
		// Node B reconciles for a while and notifies two changes.
		other, err := New(Options{Client: c.r.o.Client, Store: c.b, Gate: c.gateB, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"renamed while B led", "renamed again while B led"} {
			if err := c.sim.RenameResource("reports", rep, name); err != nil {
				t.Fatal(err)
			}
			if err := other.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if es := c.fresh(); len(es) != 2 {
			t.Fatalf("B's runs: %d events, want 2", len(es))
		}
		// Node A is elected again: Run, stopped after its first run. Its
		// snapshot in memory predates both changes; diffed against it, the
		// two would come back as one more Updated.
		ok := testutil.ToFloat64(c.r.m.Runs.WithLabelValues(ResultOK))
		ctx, cancel := context.WithCancel(context.Background())
		c.r.o.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
		if err := c.r.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(c.r.m.Runs.WithLabelValues(ResultOK)); got != ok+1 {
			t.Fatalf("node A's run did not succeed (ok runs %v → %v)", ok, got)
		}
		if es := c.fresh(); len(es) != 0 {
			t.Fatalf("node A notified B's changes again: %+v", es)
		}
	})
}
