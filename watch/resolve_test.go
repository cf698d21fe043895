package watch

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

// lateClient answers the next hide history reads with an empty history, as
// a report server does while the agent has not yet run a queued execution.
type lateClient struct {
	ReportServer
	hide  atomic.Int32
	reads atomic.Int32
}

func (l *lateClient) TaskExecutions(ctx context.Context, v, id, etag string) ([]reportserver.Execution, reportserver.Stamp, error) {
	xs, st, err := l.ReportServer.TaskExecutions(ctx, v, id, etag)
	return l.filter(xs, st, err)
}

func (l *lateClient) AlertExecutions(ctx context.Context, v, id, etag string) ([]reportserver.Execution, reportserver.Stamp, error) {
	xs, st, err := l.ReportServer.AlertExecutions(ctx, v, id, etag)
	return l.filter(xs, st, err)
}

func (l *lateClient) filter(xs []reportserver.Execution, st reportserver.Stamp, err error) ([]reportserver.Execution, reportserver.Stamp, error) {
	l.reads.Add(1)
	if err == nil && l.hide.Add(-1) >= 0 {
		return nil, st, nil
	}
	return xs, st, err
}

// waitEvents waits (bounded) until cond holds for the stored events.
func (e *env) waitEvents(what string, cond func([]*rswebhooks.Event) bool) []*rswebhooks.Event {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		es := e.events()
		if cond(es) {
			return es
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; events: %+v", what, es)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// An execute call is notified by the running watcher as soon as the run's
// record appears (here after three empty reads), not on the next poll (an
// hour away), and carries the record.
func TestRunningWatcherNotifiesExecuteCallWithItsRun(t *testing.T) {
	late := &lateClient{}
	e := newEnv(t, func(o *Options) {
		late.ReportServer = o.Client
		o.Client = late
		o.Interval = time.Hour
		o.ResolveStep = 5 * time.Millisecond
	})
	ps := e.proxied()
	task, alert := e.task("t"), e.alert()
	e.poll()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Run polls once at start; the calls come after it.
	okPolls := func() float64 { return testutil.ToFloat64(e.w.m.Polls.WithLabelValues(ResultOK)) }
	for deadline := time.Now().Add(20 * time.Second); okPolls() < 2; <-time.After(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the running watcher's first poll did not complete")
		}
	}
	late.hide.Store(3)
	before := late.reads.Load()
	e.execute(ps, "/api/reportserver/v3/scheduled-tasks/"+task+"/execute")
	e.execute(ps, "/api/reportserver/v2/executions/dataalerts/"+strings.ToUpper(alert))
	es := e.waitEvents("both execute events", func(es []*rswebhooks.Event) bool { return len(es) == 2 })
	runs := map[string]string{}
	for _, id := range []string{task, alert} {
		xs, err := e.sim.Executions(id)
		if err != nil || len(xs) != 1 {
			t.Fatalf("simulator executions of %s = %v, %v", id, xs, err)
		}
		runs[id] = xs[0].Id
	}
	for _, ev := range es {
		if ev.Source != rswebhooks.SourceProxy || ev.Method != http.MethodPost || len(ev.Missing) != 0 {
			t.Errorf("event %+v: want the call's, complete", *ev)
		}
		if want := runs[strings.ToLower(ev.ResourceID)]; ev.ExecutionID != want || ev.ExecutionDateUTC == nil {
			t.Errorf("event of %s: ExecutionId %q, want %q (with its date)", ev.ResourceID, ev.ExecutionID, want)
		}
	}
	if n := late.reads.Load() - before; n < 4 {
		t.Errorf("%d history reads after the calls; want the empty answers retried", n)
	}
	// Later polls notify nothing more.
	e.clk.Add(time.Minute)
	e.poll()
	if n := len(e.events()); n != 2 {
		t.Fatalf("%d events after a poll, want still 2", n)
	}
}

// A call whose run never shows up is notified once RecordWait has passed,
// saying what it lacks; the record appearing later is not notified again.
func TestExecuteCallWithoutRecordLeavesAfterRecordWait(t *testing.T) {
	late := &lateClient{}
	e := newEnv(t, func(o *Options) {
		late.ReportServer = o.Client
		o.Client = late
		o.RecordWait = 45 * time.Second
	})
	ps := e.proxied()
	alert := e.alert()
	e.poll()
	late.hide.Store(1000)
	e.execute(ps, "/api/reportserver/v3/data-alerts/"+alert+"/execute")
	e.clk.Add(44 * time.Second)
	e.poll()
	if n := len(e.events()); n != 0 {
		t.Fatalf("%d events before RecordWait, want 0", n)
	}
	e.clk.Add(2 * time.Second)
	e.poll()
	es := e.events()
	if len(es) != 1 || es[0].ExecutionID != "" || es[0].Note == "" ||
		strings.Join(es[0].Missing, ",") != "ExecutionId,ExecutionDateUtc,DocumentIds,AlertTriggered" {
		t.Fatalf("events = %+v, want the call's naming what it lacks", es)
	}
	late.hide.Store(0)
	e.poll()
	if n := len(e.events()); n != 1 {
		t.Fatalf("%d events once the record showed up, want still 1", n)
	}
}

// A process restarted while an execute event is held resumes reading that
// history by itself (no new call wakes it), well before the next poll.
func TestRestartedWatcherResumesHeldCall(t *testing.T) {
	late := &lateClient{}
	mod := func(o *Options) {
		late.ReportServer = o.Client
		o.Client = late
		o.Interval = time.Hour
		o.ResolveStep = 5 * time.Millisecond
	}
	e := newEnv(t, mod)
	ps := e.proxied()
	task := e.task("t")
	e.poll()
	late.hide.Store(1000)
	e.execute(ps, "/api/reportserver/v3/scheduled-tasks/"+task+"/execute")
	e.newWatcher(mod) // restart: the claim is read back from the store
	if !e.corr.holding() {
		t.Fatal("the restarted correlator holds nothing")
	}
	late.hide.Store(2) // the first poll and one read still miss the record
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	es := e.waitEvents("the held call's event", func(es []*rswebhooks.Event) bool { return len(es) == 1 })
	if es[0].ExecutionID == "" || es[0].Method != http.MethodPost {
		t.Fatalf("event %+v, want the call's with its run", *es[0])
	}
}
