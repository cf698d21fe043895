package reconcile

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

func TestFirstRunRecordsBaselineSilently(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	e.must(e.sim.CreateTask(rep, "nightly", ""))
	e.must(e.sim.CreateAlert(rep, "stock", ""))
	e.must(e.sim.CreateDataConnection("warehouse"))
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("first run stored %d events: %+v", len(es), es)
	}
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("second run without changes stored %d events", len(es))
	}
	if got := testutil.ToFloat64(e.r.m.Runs.WithLabelValues(ResultOK)); got != 2 {
		t.Errorf("runs_total{ok} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.r.m.LastSuccess); got <= 0 {
		t.Errorf("last success = %v", got)
	}
}

func TestStorageChangesBecomeOneEventEach(t *testing.T) {
	e := newEnv(t, "admin")
	cat := e.category()
	rep := e.must(e.sim.CreateReport(cat, "Sales", "alice"))
	conn := e.must(e.sim.CreateDataConnection("warehouse"))
	e.run()
	e.fresh()

	newCat := e.must(e.sim.CreateCategory("Finance"))
	newRep := e.must(e.sim.CreateReport(newCat, "Budget", "bob"))
	task := e.must(e.sim.CreateTask(newRep, "monthly", "bob"))
	if err := e.sim.RenameResource("reports", rep, "Sales 2"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.RenameResource("categories", cat, "Sales cat"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.DeleteResource("connections", conn); err != nil {
		t.Fatal(err)
	}
	e.run()
	es := e.fresh()
	want := map[string]int{
		"categories Created " + newCat: 1, "reports Created " + newRep: 1, "tasks Created " + task: 1,
		"reports Updated " + rep: 1, "categories Updated " + cat: 1, "connections Deleted " + conn: 1,
	}
	if got := summary(es); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	bob, _ := e.sim.User("bob")
	for _, x := range es {
		if x.Source != rswebhooks.SourceReconcile || x.Method != "" || x.APIVersion == "" {
			t.Errorf("event %+v: want Source reconcile, no method, an API version", x)
		}
		switch {
		case x.ResourceID == newRep && (x.UserID != bob.ID || x.UserName != "bob" || x.ResourceName != "Budget"):
			t.Errorf("created report names creator %q/%q and %q", x.UserID, x.UserName, x.ResourceName)
		case x.ResourceID == task && x.UserID != bob.ID:
			t.Errorf("created task names creator %q, want %q", x.UserID, bob.ID)
		case x.ResourceID == conn && x.ResourceName != "warehouse":
			t.Errorf("deleted connection named %q", x.ResourceName)
		case x.ResourceID == rep && x.UserID != "":
			t.Errorf("an Updated names no actor, got %q", x.UserID)
		}
	}
	if got := testutil.ToFloat64(e.r.m.Changes.WithLabelValues("reports", "Created")); got != 1 {
		t.Errorf("changes_total{reports,Created} = %v", got)
	}
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("a run without changes stored %+v", es)
	}
}

func TestProxyClaimAbsorbsTheSameChange(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	e.run()

	// The proxy saw this rename (the event the detector would store).
	if err := e.sim.RenameResource("reports", rep, "renamed through the API"); err != nil {
		t.Fatal(err)
	}
	if err := e.proxyEvent("reports", rswebhooks.EventUpdated, rep, "renamed through the API"); err != nil {
		t.Fatal(err)
	}
	// Created without an id in the answer: claimed by name.
	cat := e.must(e.sim.CreateCategory("by name"))
	if err := e.proxyEvent("categories", rswebhooks.EventCreated, "", "By Name"); err != nil {
		t.Fatal(err)
	}
	e.fresh()
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("changes the proxy saw were notified again: %+v", es)
	}
	// A later change the proxy did not see is still notified.
	if err := e.sim.RenameResource("reports", rep, "renamed in storage"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.RenameResource("categories", cat, "renamed cat"); err != nil {
		t.Fatal(err)
	}
	e.run()
	want := map[string]int{"reports Updated " + rep: 1, "categories Updated " + cat: 1}
	if got := summary(e.fresh()); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestProxyEventAfterTheReadIsDropped(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	e.run()
	// The server wrote, the reconciler read and emitted, and only then the
	// proxy's append arrives (the read landed in the middle).
	if err := e.sim.RenameResource("reports", rep, "x"); err != nil {
		t.Fatal(err)
	}
	e.run()
	if err := e.proxyEvent("reports", rswebhooks.EventUpdated, rep, "x"); err != nil {
		t.Fatal(err)
	}
	es := e.fresh()
	if len(es) != 1 || es[0].Source != rswebhooks.SourceReconcile {
		t.Fatalf("want one reconciled event, got %+v", es)
	}
	// Another type for the same resource, or another resource, passes.
	if err := e.proxyEvent("reports", rswebhooks.EventDeleted, rep, "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.proxyEvent("reports", rswebhooks.EventUpdated, "other", "y"); err != nil {
		t.Fatal(err)
	}
	if es := e.fresh(); len(es) != 2 {
		t.Fatalf("want the two unrelated proxy events, got %+v", es)
	}
}

func TestReportDeletionCascades(t *testing.T) {
	e := newEnv(t, "admin")
	rep, other := e.report(), e.report()
	onlyTask := e.must(e.sim.CreateTask(rep, "only this report", ""))
	alert := e.must(e.sim.CreateAlert(rep, "alert", ""))
	untouched := e.must(e.sim.CreateTask(other, "other report", ""))
	e.run()
	e.fresh()
	_ = alert
	// The proxy saw the report's deletion; the cascade it did not see.
	if err := e.sim.DeleteResource("reports", rep); err != nil {
		t.Fatal(err)
	}
	if err := e.proxyEvent("reports", rswebhooks.EventDeleted, rep, ""); err != nil {
		t.Fatal(err)
	}
	e.fresh()
	e.run()
	want := map[string]int{"tasks Deleted " + onlyTask: 1, "alerts Deleted " + alert: 1}
	if got := summary(e.fresh()); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v (untouched task %s)", got, want, untouched)
	}
}

func TestRestartRepeatsNothing(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	e.run()
	if err := e.sim.RenameResource("reports", rep, "r2"); err != nil {
		t.Fatal(err)
	}
	e.run()
	if es := e.fresh(); len(es) != 1 {
		t.Fatalf("want 1 event, got %+v", es)
	}
	e.restart()
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("after restart: %+v", es)
	}
}

// failingMeta refuses PutMeta: a crash between the events and the snapshot.
type failingMeta struct{ *store.DB }

func (failingMeta) PutMeta(context.Context, string, []byte) error { return errors.New("disk gone") }

func TestCrashBetweenAppendAndSnapshotCannotDuplicate(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	e.run()
	if err := e.sim.RenameResource("reports", rep, "r2"); err != nil {
		t.Fatal(err)
	}
	crashing, err := New(Options{Client: e.client, Store: failingMeta{e.db}})
	if err != nil {
		t.Fatal(err)
	}
	if err := crashing.RunOnce(context.Background()); err == nil {
		t.Fatal("RunOnce with a failing snapshot save returned nil")
	}
	if es := e.fresh(); len(es) != 1 {
		t.Fatalf("the crashed run stored %d events, want 1", len(es))
	}
	e.restart()
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("the re-run duplicated: %+v", es)
	}
}

func TestRefusesWithoutAdministrator(t *testing.T) {
	e := newEnv(t, "alice")
	err := e.r.RunOnce(context.Background())
	if !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("RunOnce = %v, want ErrNotAdmin", err)
	}
	if got := testutil.ToFloat64(e.r.m.Runs.WithLabelValues(ResultRefused)); got != 1 {
		t.Errorf("runs_total{refused} = %v", got)
	}
	if _, err := e.db.GetMeta(context.Background(), metaSnapshot); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Errorf("a refused run saved a snapshot (err %v)", err)
	}
}

func TestUnreadableCollectionKeepsItsSnapshot(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	e.run()
	if err := e.sim.RenameResource("reports", rep, "r2"); err != nil {
		t.Fatal(err)
	}
	e.sim.FailNext(1, 503) // the admin check is cached; the first list (reports) fails
	if err := e.r.RunOnce(context.Background()); err == nil {
		t.Fatal("want an error")
	}
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("events from a failed read: %+v", es)
	}
	if got := testutil.ToFloat64(e.r.m.Runs.WithLabelValues(ResultError)); got != 1 {
		t.Errorf("runs_total{error} = %v", got)
	}
	e.run()
	if got := summary(e.fresh()); got["reports Updated "+rep] != 1 || len(got) != 1 {
		t.Fatalf("after recovery: %v", got)
	}
}

func TestNextDelay(t *testing.T) {
	r, err := New(Options{Client: nopClient{}, Store: failingMeta{}, Interval: time.Minute, Jitter: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fails int
		took  time.Duration
		want  time.Duration
	}{
		{0, time.Second, time.Minute},
		{1, time.Second, 2 * time.Minute},
		{3, time.Second, 8 * time.Minute},
		{10, time.Second, 10 * time.Minute},
		{0, 2 * time.Minute, 4 * time.Minute},
	} {
		if got := r.nextDelay(c.fails, c.took); got != c.want {
			t.Errorf("nextDelay(%d, %s) = %s, want %s", c.fails, c.took, got, c.want)
		}
	}
	r.o.Jitter = 0.1
	for range 100 {
		if d := r.nextDelay(0, 0); d < 54*time.Second || d > 66*time.Second {
			t.Fatalf("jittered delay %s outside ±10%%", d)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	_, err := New(Options{Client: nopClient{}, Store: failingMeta{}, APIVersion: "v9", Interval: -1, Jitter: 2})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, s := range []string{"Options.APIVersion", "Options.Interval", "Options.Jitter"} {
		if !contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

// countingMeta counts PutMeta calls per key.
type countingMeta struct {
	*store.DB
	puts map[string]int
}

func (c countingMeta) PutMeta(ctx context.Context, k string, v []byte) error {
	c.puts[k]++
	return c.DB.PutMeta(ctx, k, v)
}

func TestSnapshotItemsWrittenOnlyWhenTheyChange(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	cm := countingMeta{DB: e.db, puts: map[string]int{}}
	r, err := New(Options{Client: e.client, Store: cm, Gate: e.gate})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if err := r.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if cm.puts[metaSnapshot] != 1 || cm.puts[metaReads] != 3 {
		t.Fatalf("puts %v: want the items once (baseline), the read times every run", cm.puts)
	}
	if err := e.sim.RenameResource("reports", rep, "r2"); err != nil {
		t.Fatal(err)
	}
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if cm.puts[metaSnapshot] != 2 {
		t.Fatalf("puts %v: a change rewrites the items", cm.puts)
	}
	if es := e.fresh(); len(es) != 1 {
		t.Fatalf("events %+v", es)
	}
	// A restart reads the newer read times: nothing repeats.
	e.restart()
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("after restart: %+v", es)
	}
}

func TestMassDeletionWaitsForConfirmation(t *testing.T) {
	e := newEnv(t, "admin")
	var conns []string
	for i := range 12 {
		conns = append(conns, e.must(e.sim.CreateDataConnection(e.name("conn")+string(rune('a'+i)))))
	}
	keep := e.report()
	e.run()
	for _, c := range conns {
		if err := e.sim.DeleteResource("connections", c); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.RenameResource("reports", keep, "renamed"); err != nil {
		t.Fatal(err)
	}
	e.run()
	// The other collections go ahead; the mass deletion waits.
	if got := summary(e.fresh()); len(got) != 1 || got["reports Updated "+keep] != 1 {
		t.Fatalf("first run: %v", got)
	}
	e.run()
	got := summary(e.fresh())
	if len(got) != len(conns) {
		t.Fatalf("confirming run: %v, want %d deletions", got, len(conns))
	}
	for _, c := range conns {
		if got["connections Deleted "+c] != 1 {
			t.Errorf("no Deleted for %s", c)
		}
	}
}

// TestIgnoredCallsChangeNoFingerprint: calls the rule table ignores (lock,
// favourite, shelve, executions) change nothing the reconciler notifies.
func TestIgnoredCallsChangeNoFingerprint(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	task := e.must(e.sim.CreateTask(rep, "t", ""))
	e.run()
	tok, err := e.sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/api/reportserver/v2/reports/" + rep + "/lock", ""},
		{"PUT", "/api/reportserver/v2/reports/" + rep + "/favorite", ""},
		{"PUT", "/api/reportserver/v2/reports/" + rep + "/shelve", "<Report/>"},
		{"POST", "/api/reportserver/v2/executions/scheduledtasks/" + task, ""},
	} {
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	e.run()
	if es := e.fresh(); len(es) != 0 {
		t.Fatalf("ignored calls gave reconciled events: %+v", es)
	}
}

// Name answers from the last read (case-insensitive ids), follows renames,
// and survives a restart (read back with the snapshot).
func TestNameFromLastRead(t *testing.T) {
	e := newEnv(t, "admin")
	rep := e.report()
	if _, ok := e.r.Name("reports", rep); ok {
		t.Fatal("a name before any read")
	}
	e.run()
	first, ok := e.r.Name("reports", strings.ToUpper(rep))
	if !ok || first == "" {
		t.Fatalf("Name after a run = %q, %v", first, ok)
	}
	if err := e.sim.RenameResource("reports", rep, "renamed"); err != nil {
		t.Fatal(err)
	}
	e.run()
	if n, _ := e.r.Name("reports", rep); n != "renamed" {
		t.Errorf("Name after a rename = %q, want %q", n, "renamed")
	}
	e.restart()
	if err := e.r.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.r.Name("reports", rep); n != "renamed" {
		t.Errorf("Name after a restart = %q, want %q", n, "renamed")
	}
	if _, ok := e.r.Name("categories", rep); ok {
		t.Error("a report's id named a category")
	}
}
