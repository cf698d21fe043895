package watch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/proxy"
)

// proxied puts the real proxy with the real detector in front of the
// simulator; the detector's store is the env's Correlator, as cmd wires it.
func (e *env) proxied() *httptest.Server {
	e.t.Helper()
	det, err := detect.New(detect.Options{Store: correlatorRef{e}, Now: e.clk.Now, Logger: zerolog.Nop()})
	if err != nil {
		e.t.Fatal(err)
	}
	u, _ := url.Parse(e.srv.URL)
	p, err := proxy.New(proxy.Options{Upstream: u, Tap: det})
	if err != nil {
		e.t.Fatal(err)
	}
	ps := httptest.NewServer(p)
	e.t.Cleanup(ps.Close)
	return ps
}

// correlatorRef follows env restarts (newWatcher makes a new Correlator).
type correlatorRef struct{ e *env }

func (c correlatorRef) AppendEvent(ctx context.Context, ev *rswebhooks.Event) error {
	return c.e.corr.AppendEvent(ctx, ev)
}

func (e *env) execute(ps *httptest.Server, path string) {
	e.t.Helper()
	tok, err := e.sim.IssueToken("admin")
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, ps.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := ps.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		e.t.Fatalf("POST %s: %d", path, res.StatusCode)
	}
}

func TestExecuteCallThroughProxyYieldsOneEvent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		skew  time.Duration
		path  func(task, alert string) (string, string)
		upper bool
	}{
		{"v1", 0, func(tk, al string) (string, string) {
			return "/api/reportserver/executions/scheduledtasks/" + tk, "/api/reportserver/v1/executions/dataalerts/" + al
		}, false},
		{"v2", 0, func(tk, al string) (string, string) {
			return "/api/reportserver/v2/executions/scheduledtasks/" + tk, "/api/reportserver/v2/executions/dataalerts/" + al
		}, false},
		{"v3", 0, func(tk, al string) (string, string) {
			return "/api/reportserver/v3/scheduled-tasks/" + tk + "/execute", "/api/reportserver/v3/data-alerts/" + al + "/execute"
		}, false},
		{"v2 upper-case ids, server 10 min behind", -10 * time.Minute, func(tk, al string) (string, string) {
			return "/api/reportserver/v2/executions/scheduledtasks/" + strings.ToUpper(tk), "/api/reportserver/v2/executions/dataalerts/" + strings.ToUpper(al)
		}, true},
		{"v3, server 10 min ahead", 10 * time.Minute, func(tk, al string) (string, string) {
			return "/api/reportserver/v3/scheduled-tasks/" + tk + "/execute", "/api/reportserver/v3/data-alerts/" + al + "/execute"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.sim.SetClockSkew(tc.skew)
			ps := e.proxied()
			task, alert := e.task("t"), e.alert()
			e.poll()
			e.clk.Add(time.Minute)
			tp, ap := tc.path(task, alert)
			e.execute(ps, tp)
			e.execute(ps, ap)
			if n := len(e.events()); n != 0 || !e.corr.holding() {
				t.Fatalf("proxy stored %d events, want 0 (held for the run's record)", n)
			}
			e.clk.Add(5 * time.Second)
			e.poll()
			e.poll()
			es := e.events()
			if len(es) != 2 {
				t.Fatalf("after polls: %d events, want 2 (one per execute call): %+v", len(es), es)
			}
			for _, ev := range es {
				if ev.Source != rswebhooks.SourceProxy || ev.Method != http.MethodPost || ev.ExecutionID == "" ||
					ev.ExecutionDateUTC == nil || len(ev.Missing) != 0 {
					t.Errorf("event = %+v, want the call's (POST, proxy) carrying its run", *ev)
				}
				if ev.Filter == rswebhooks.FilterAlerts && (ev.AlertTriggered == nil || !*ev.AlertTriggered) {
					t.Errorf("alert event AlertTriggered = %v, want true (run from the API)", ev.AlertTriggered)
				}
				if ev.Filter == rswebhooks.FilterTasks && len(ev.DocumentIDs) == 0 {
					t.Errorf("task event has no DocumentIds: %+v", *ev)
				}
			}
			if e.corr.holding() {
				t.Error("an execute event is still held")
			}
			if e.corr.pending() != 0 {
				t.Errorf("%d claims left unmatched", e.corr.pending())
			}
			// Later scheduled runs still notify.
			e.clk.Add(time.Minute)
			e.run(task)
			e.runAlert(alert, false)
			e.poll()
			es = e.events()
			if countExec(es, task) != 2 || countExec(es, alert) != 2 {
				t.Fatalf("events = %+v, want two per resource", es)
			}
		})
	}
}

// A restart between the execute call and the watcher's next poll keeps the
// claim (it is persisted in store meta).
func TestExecuteClaimSurvivesRestart(t *testing.T) {
	e := newEnv(t, nil)
	ps := e.proxied()
	task := e.task("t")
	e.poll()
	e.execute(ps, "/api/reportserver/v2/executions/scheduledtasks/"+task)
	e.newWatcher(nil)
	e.poll()
	es := e.events()
	if n := countExec(es, task); n != 1 || es[0].ExecutionID == "" || es[0].Method != http.MethodPost {
		t.Fatalf("%d events after restart, want 1, the call's with its run: %+v", n, es)
	}
}

// An execute call followed by a scheduled run before the next poll: two
// records, one claim, two events in all.
func TestExecuteAndScheduledRunBetweenPolls(t *testing.T) {
	e := newEnv(t, nil)
	ps := e.proxied()
	task := e.task("t")
	e.poll()
	e.execute(ps, "/api/reportserver/v3/scheduled-tasks/"+task+"/execute")
	e.clk.Add(30 * time.Second)
	e.run(task)
	e.poll()
	e.poll()
	if n := countExec(e.events(), task); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
}

// The race where the watcher reads the record of an execute call before the
// proxy's detector stored its event: the watcher's event stands and the
// proxy's is dropped, so there is still one.
func TestWatcherFirstThenProxyEventIsDropped(t *testing.T) {
	e := newEnv(t, nil)
	task := e.task("t")
	e.poll()
	x := e.run(task) // the record of the call, read by the next poll
	e.poll()
	late := &rswebhooks.Event{ID: rswebhooks.NewID(e.clk.Now()), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventExecuted,
		ResourceID: task, Time: e.clk.Now()}
	if err := e.corr.AppendEvent(context.Background(), late); err != nil {
		t.Fatal(err)
	}
	es := e.events()
	if len(es) != 1 || es[0].ExecutionID != x.Id {
		t.Fatalf("events = %+v, want only the watcher's", es)
	}
	// Dropping consumed the emission: a second call gets its own event,
	// held for its run; none appears, so after RecordWait it leaves
	// without, saying what it lacks.
	again := &rswebhooks.Event{ID: rswebhooks.NewID(e.clk.Now()), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventExecuted,
		ResourceID: task, Time: e.clk.Now()}
	if err := e.corr.AppendEvent(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	e.poll()
	if n := len(e.events()); n != 1 {
		t.Fatalf("%d events before RecordWait, want 1", n)
	}
	e.clk.Add(2*DefaultInterval + time.Second)
	e.poll()
	es = e.events()
	i := slices.IndexFunc(es, func(ev *rswebhooks.Event) bool { return ev.ID == again.ID })
	if len(es) != 2 || i < 0 {
		t.Fatalf("events = %+v, want the watcher's and the call's", es)
	}
	if want := []string{"ExecutionId", "ExecutionDateUtc", "DocumentIds"}; !slices.Equal(es[i].Missing, want) || es[i].Note == "" {
		t.Errorf("Missing = %q, Note = %q; want %q and a reason", es[i].Missing, es[i].Note, want)
	}
}

func TestCorrelatorPassesOtherEventsThrough(t *testing.T) {
	e := newEnv(t, nil)
	ev := &rswebhooks.Event{ID: rswebhooks.NewID(e.clk.Now()), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventCreated,
		ResourceID: "r1", Time: e.clk.Now()}
	if err := e.corr.AppendEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := e.corr.AppendEvent(context.Background(), ev); err == nil {
		t.Error("duplicate id accepted; the store's ErrConflict must pass through")
	}
	if es := e.events(); len(es) != 1 || es[0].ID != ev.ID {
		t.Fatalf("events = %+v", es)
	}
	if e.corr.pending() != 0 {
		t.Error("a non-execution event became a claim")
	}
}

// A claim nothing matched expires after the window, so it cannot swallow a
// much later scheduled run.
func TestUnmatchedClaimExpires(t *testing.T) {
	e := newEnv(t, nil)
	ps := e.proxied()
	task := e.task("t")
	e.poll()
	e.execute(ps, "/api/reportserver/v2/executions/scheduledtasks/"+task)
	if err := e.sim.DeleteExecutionHistory(task); err != nil { // the record vanished
		t.Fatal(err)
	}
	e.poll()
	if e.corr.pending() != 1 {
		t.Fatalf("pending claims = %d, want 1", e.corr.pending())
	}
	e.clk.Add(DefaultWindow + DefaultSkewTolerance + time.Second)
	e.run(task)
	e.poll()
	if n := countExec(e.events(), task); n != 2 {
		t.Fatalf("%d events, want the call's and the later run's", n)
	}
}

// Without a watcher an execute call is notified at once, saying why its run
// is missing; other events pass unchanged.
func TestUnwatchedMarksExecuteCalls(t *testing.T) {
	e := newEnv(t, nil)
	u := Unwatched{Store: e.db, Reason: "no service account: the run cannot be read"}
	ex := &rswebhooks.Event{ID: rswebhooks.NewID(e.clk.Now()), Filter: rswebhooks.FilterAlerts, Type: rswebhooks.EventExecuted,
		ResourceID: "a1", Time: e.clk.Now()}
	cr := &rswebhooks.Event{ID: rswebhooks.NewID(e.clk.Now()), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventCreated,
		ResourceID: "r1", Time: e.clk.Now()}
	for _, ev := range []*rswebhooks.Event{ex, cr} {
		if err := u.AppendEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range e.events() {
		switch ev.ID {
		case ex.ID:
			if strings.Join(ev.Missing, ",") != "ExecutionId,ExecutionDateUtc,DocumentIds,AlertTriggered" || ev.Note != u.Reason {
				t.Errorf("execute event Missing %q Note %q", ev.Missing, ev.Note)
			}
		case cr.ID:
			if ev.Missing != nil || ev.Note != "" {
				t.Errorf("create event changed: %+v", *ev)
			}
		}
	}
}
