package watch

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

func TestScheduledExecutionsYieldOneEventEach(t *testing.T) {
	for _, version := range []string{"", "v2", "v3"} {
		t.Run("version="+version, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.APIVersion = version })
			task, alert := e.task("t"), e.alert()
			e.poll() // first start: nothing to replay
			if n := len(e.events()); n != 0 {
				t.Fatalf("first poll stored %d events", n)
			}
			e.clk.Add(time.Minute)
			x1 := e.run(task)
			x2 := e.runAlert(alert, true)
			x3 := e.runAlert(alert, false)
			e.poll()
			e.poll() // nothing new
			es := e.events()
			if len(es) != 3 {
				t.Fatalf("got %d events, want 3: %+v", len(es), es)
			}
			byExec := map[string]*rswebhooks.Event{}
			for _, ev := range es {
				byExec[ev.ExecutionID] = ev
			}
			te := byExec[x1.Id]
			if te == nil || te.Filter != rswebhooks.FilterTasks || te.ResourceID != task || te.Type != rswebhooks.EventExecuted ||
				te.ResourceName == "" || te.AlertTriggered != nil || len(te.DocumentIDs) != 1 ||
				te.ExecutionDateUTC == nil || !te.ExecutionDateUTC.Equal(x1.ExecutionDateUtc) {
				t.Errorf("task event = %+v", te)
			}
			if want := map[string]string{"": "v3", "v2": "v2", "v3": "v3"}[version]; te != nil && te.APIVersion != want {
				t.Errorf("ApiVersion = %q, want %q", te.APIVersion, want)
			}
			ae := byExec[x2.Id]
			if ae == nil || ae.Filter != rswebhooks.FilterAlerts || ae.AlertTriggered == nil || !*ae.AlertTriggered || len(ae.DocumentIDs) != 1 {
				t.Errorf("triggered alert event = %+v", ae)
			}
			ne := byExec[x3.Id]
			if ne == nil || ne.AlertTriggered == nil || *ne.AlertTriggered || len(ne.DocumentIDs) != 0 {
				t.Errorf("untriggered alert event = %+v", ne)
			}
			if e.wakes != 1 {
				t.Errorf("OnEvent called %d times, want 1", e.wakes)
			}
			if got := testutil.ToFloat64(e.w.m.Polls.WithLabelValues(ResultOK)); got != 3 {
				t.Errorf("polls ok = %v, want 3", got)
			}
			if got := testutil.ToFloat64(e.w.m.Polls.WithLabelValues(ResultError)); got != 0 {
				t.Errorf("polls error = %v, want 0", got)
			}
		})
	}
}

func TestFirstStartDoesNotReplayHistory(t *testing.T) {
	e := newEnv(t, nil)
	task, alert := e.task("t"), e.alert()
	for i := 0; i < 3; i++ {
		e.run(task)
		e.runAlert(alert, i%2 == 0)
		e.clk.Add(time.Minute)
	}
	e.poll()
	if n := len(e.events()); n != 0 {
		t.Fatalf("first start replayed %d executions", n)
	}
	if _, err := e.db.GetMeta(context.Background(), metaInitialized); err != nil {
		t.Fatalf("first start not recorded: %v", err)
	}
	// A restart must not count as a first start again.
	e.newWatcher(nil)
	x := e.run(task)
	e.poll()
	es := e.events()
	if len(es) != 1 || es[0].ExecutionID != x.Id || es[0].Source != rswebhooks.SourceWatch {
		t.Fatalf("after restart got %+v, want only execution %s (source watch)", es, x.Id)
	}
}

func TestItemCreatedLaterNotifiesOnlyAfterBaseline(t *testing.T) {
	e := newEnv(t, nil)
	e.poll() // baseline: nothing exists yet
	e.clk.Add(10 * time.Minute)
	task := e.task("late")
	x := e.run(task)
	e.poll()
	if es := e.events(); len(es) != 1 || es[0].ExecutionID != x.Id {
		t.Fatalf("events = %+v, want the one execution of the new task", es)
	}
}

func TestRestartBetweenPollsNeitherRepeatsNorDrops(t *testing.T) {
	e := newEnv(t, nil)
	task := e.task("t")
	e.poll()
	x1 := e.run(task)
	e.poll()
	x2 := e.run(task) // runs while the process is down
	e.newWatcher(nil)
	e.poll()
	e.poll()
	es := e.events()
	if len(es) != 2 || es[0].ExecutionID == es[1].ExecutionID {
		t.Fatalf("events = %+v, want %s and %s once each", es, x1.Id, x2.Id)
	}
	for _, ev := range es {
		if ev.ExecutionID != x1.Id && ev.ExecutionID != x2.Id {
			t.Errorf("unexpected event %+v", ev)
		}
	}
}

// A crash after the events were appended but before the seen marks were
// written must not duplicate them on the next poll.
func TestCrashBetweenAppendAndMarkDoesNotDuplicate(t *testing.T) {
	e := newEnv(t, nil)
	task := e.task("t")
	e.poll()
	x := e.run(task)
	failing := storeFn{Store: e.db, mark: func(context.Context, []string) error { return errors.New("disk on fire") }}
	e.newWatcher(func(o *Options) { o.Store = failing })
	if err := e.w.PollOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("PollOnce = %v, want the mark error", err)
	}
	if es := e.events(); len(es) != 1 {
		t.Fatalf("after failed mark: %d events, want 1", len(es))
	}
	e.newWatcher(nil) // restart with a healthy store
	e.poll()
	e.poll()
	if es := e.events(); len(es) != 1 || es[0].ExecutionID != x.Id {
		t.Fatalf("events = %+v, want exactly one for %s", es, x.Id)
	}
	if es := e.events(); es[0].ID != EventID(rswebhooks.FilterTasks, task, x.Id, x.ExecutionDateUtc) {
		t.Errorf("event id %s is not the deterministic one", es[0].ID)
	}
}

func TestDeletedHistoryAndTasksProduceNothing(t *testing.T) {
	e := newEnv(t, nil)
	t1, t2, a1 := e.task("t1"), e.task("t2"), e.alert()
	e.run(t1)
	e.runAlert(a1, true)
	e.poll()
	// History deleted after it was seen: no phantom events.
	if err := e.sim.DeleteExecutionHistory(t1); err != nil {
		t.Fatal(err)
	}
	// A run deleted before the watcher saw it never existed for it.
	e.run(t2)
	if err := e.sim.DeleteExecutionHistory(t2); err != nil {
		t.Fatal(err)
	}
	e.poll()
	// Deleted alert (through the API, as a user would).
	tok, err := e.sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/api/reportserver/v2/dataalerts/"+a1, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete alert: %d", res.StatusCode)
	}
	e.poll()
	if es := e.events(); len(es) != 0 {
		t.Fatalf("events = %+v, want none", es)
	}
	x := e.run(t1) // the watcher still works after all that
	e.poll()
	if es := e.events(); len(es) != 1 || es[0].ExecutionID != x.Id {
		t.Fatalf("events = %+v", es)
	}
}

// notFoundClient makes every history read answer 404, as when tasks are
// deleted between the list and the read.
type notFoundClient struct{ ReportServer }

func (notFoundClient) TaskExecutions(context.Context, string, string, string) ([]reportserver.Execution, reportserver.Stamp, error) {
	return nil, reportserver.Stamp{}, reportserver.ErrNotFound
}

func (notFoundClient) AlertExecutions(context.Context, string, string, string) ([]reportserver.Execution, reportserver.Stamp, error) {
	return nil, reportserver.Stamp{}, reportserver.ErrNotFound
}

func TestDeletedBetweenListAndReadIsNotAnError(t *testing.T) {
	e := newEnv(t, nil)
	e.task("t")
	e.alert()
	e.poll()
	e.newWatcher(func(o *Options) { o.Client = notFoundClient{e.client} })
	e.poll()
	if es := e.events(); len(es) != 0 {
		t.Fatalf("events = %+v", es)
	}
}

func TestClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{-10 * time.Minute, 10 * time.Minute, -3 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			e := newEnv(t, nil)
			e.sim.SetClockSkew(skew)
			old := e.task("old")
			e.run(old)
			e.poll()
			// Seconds after the baseline, a new task runs. Compared with the
			// local clock, a server running behind would date this run
			// before the baseline and it would be missed.
			e.clk.Add(2 * time.Second)
			late := e.task("late")
			x := e.run(late)
			e.run(old)
			e.poll()
			e.poll()
			es := e.events()
			if countExec(es, late) != 1 || countExec(es, old) != 1 || len(es) != 2 {
				t.Fatalf("events = %+v, want one per task", es)
			}
			if !es[0].ExecutionDateUTC.Equal(x.ExecutionDateUtc) && !es[1].ExecutionDateUTC.Equal(x.ExecutionDateUtc) {
				t.Errorf("ExecutionDateUtc is not the server's date %s", x.ExecutionDateUtc)
			}
			off := e.w.offset - skew
			if off < 0 || off > time.Second {
				t.Errorf("estimated offset %s, want %s + [0, 1s]", e.w.offset, skew)
			}
		})
	}
}

func TestPollErrorsAreCountedAndReported(t *testing.T) {
	e := newEnv(t, nil)
	e.task("t")
	e.poll()
	e.sim.FailWith(http.StatusInternalServerError)
	if err := e.w.PollOnce(context.Background()); err == nil {
		t.Fatal("PollOnce against a failing server returned nil")
	}
	if got := testutil.ToFloat64(e.w.m.Polls.WithLabelValues(ResultError)); got != 1 {
		t.Errorf("polls error = %v, want 1", got)
	}
	e.clk.Add(time.Minute)
	_ = e.w.PollOnce(context.Background())
	if lag := testutil.ToFloat64(e.w.m.Lag); lag < 60 {
		t.Errorf("lag = %v s after a minute of failures, want >= 60", lag)
	}
	e.sim.FailWith(0)
	e.poll()
	if lag := testutil.ToFloat64(e.w.m.Lag); lag != 0 {
		t.Errorf("lag = %v after a successful poll on a frozen clock, want 0", lag)
	}
}

// A failing report server is backed off, not hammered: Run's delays double
// up to MaxBackoff, and the simulator sees one request per poll.
func TestRunBacksOffFailingServer(t *testing.T) {
	var delays []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const polls = 8
	e := newEnv(t, func(o *Options) {
		o.Interval = 30 * time.Second
		o.Jitter = -1
		o.sleep = func(ctx context.Context, d time.Duration) error {
			delays = append(delays, d)
			if len(delays) == polls {
				cancel()
				return ctx.Err()
			}
			return nil
		}
	})
	e.task("t")
	e.sim.FailWith(http.StatusServiceUnavailable)
	e.sim.ResetCounters()
	if err := e.w.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := []time.Duration{60, 120, 240, 300, 300, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if len(delays) != len(want) {
		t.Fatalf("delays = %v", delays)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("delay %d = %s, want %s (all %v)", i, delays[i], want[i], delays)
		}
	}
	// Each failed poll stops at its first failing request (the token).
	total := 0
	for _, n := range e.sim.Requests() {
		total += n
	}
	if total > polls {
		t.Errorf("failing server got %d requests in %d polls: %v", total, polls, e.sim.Requests())
	}
	if got := testutil.ToFloat64(e.w.m.Polls.WithLabelValues(ResultError)); got != polls {
		t.Errorf("polls error = %v, want %d", got, polls)
	}
}

func TestRunRecoversAndJitters(t *testing.T) {
	var delays []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, func(o *Options) {
		o.Interval = 30 * time.Second
		o.sleep = func(ctx context.Context, d time.Duration) error {
			delays = append(delays, d)
			if len(delays) == 20 {
				cancel()
				return ctx.Err()
			}
			return nil
		}
	})
	task := e.task("t")
	e.run(task)
	e.sim.FailNext(1, http.StatusBadGateway) // the first poll fails, then all is well
	if err := e.w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if d := delays[0]; d < 54*time.Second || d > 66*time.Second {
		t.Errorf("delay after a failure = %s, want 60 s ± 10%%", d)
	}
	distinct := map[time.Duration]bool{}
	for _, d := range delays[1:] {
		if d < 27*time.Second || d > 33*time.Second {
			t.Errorf("delay %s outside 30 s ± 10%%", d)
		}
		distinct[d] = true
	}
	if len(distinct) < 2 {
		t.Errorf("delays not jittered: %v", delays)
	}
	if len(e.events()) != 0 {
		t.Errorf("history was replayed")
	}
}

func TestSlowPollStretchesDelay(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Interval = 30 * time.Second; o.Jitter = -1 })
	if d := e.w.nextDelay(0, 40*time.Second); d != 80*time.Second {
		t.Errorf("after a 40 s poll: %s, want 80 s", d)
	}
	if d := e.w.nextDelay(0, time.Hour); d != 300*time.Second {
		t.Errorf("after a 1 h poll: %s, want the 300 s cap", d)
	}
	if d := e.w.nextDelay(0, time.Second); d != 30*time.Second {
		t.Errorf("after a fast poll: %s, want 30 s", d)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Concurrency = 3 })
	if _, err := e.sim.SeedTasks(20, ""); err != nil {
		t.Fatal(err)
	}
	e.poll()
	lim := &limitClient{ReportServer: e.client, block: make(chan struct{})}
	e.newWatcher(func(o *Options) { o.Client = lim; o.Concurrency = 3 })
	done := make(chan error, 1)
	go func() { done <- e.w.PollOnce(context.Background()) }()
	// Wait until three reads are in flight, then check no fourth starts.
	deadline := time.After(10 * time.Second)
	for lim.inflight() < 3 {
		select {
		case <-deadline:
			t.Fatal("reads never reached the limit")
		case <-lim.started:
		}
	}
	close(lim.block)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poll did not finish")
	}
	if lim.peak > 3 {
		t.Errorf("peak concurrent reads = %d, want <= 3", lim.peak)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Client = nil }, "Options.Client is required"},
		{func(o *Options) { o.Store = nil }, "Options.Store is required"},
		{func(o *Options) { o.APIVersion = "v9" }, "Options.APIVersion"},
		{func(o *Options) { o.Interval = -1 }, "Options.Interval must not be negative"},
		{func(o *Options) { o.Concurrency = -2 }, "Options.Concurrency"},
		{func(o *Options) { o.Jitter = 1.5 }, "Options.Jitter"},
	} {
		o := Options{Client: e.client, Store: e.db}
		tc.mod(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New = %v, want %q", err, tc.want)
		}
	}
	noAccount, err := reportserver.New(reportserver.Options{BaseURL: e.client.BaseURL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Client: noAccount, Store: e.db}); !errors.Is(err, ErrDisabled) {
		t.Errorf("New without service account = %v, want ErrDisabled", err)
	}
}

// Executions older than retention (whose seen marks may have expired) are
// never notified, so an expired mark cannot become a phantom event.
func TestExecutionsOlderThanRetentionAreIgnored(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Retention = 10 * time.Hour })
	task := e.task("t")
	e.poll()
	e.clk.Add(time.Minute)
	e.run(task)
	e.clk.Add(10 * time.Hour) // the watcher was down longer than retention
	x := e.run(task)
	e.poll()
	es := e.events()
	if len(es) != 1 || es[0].ExecutionID != x.Id {
		t.Fatalf("events = %+v, want only the recent run %s", es, x.Id)
	}
}
