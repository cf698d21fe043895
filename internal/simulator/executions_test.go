package simulator_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestExecutions(t *testing.T) {
	now := time.Date(2026, 8, 12, 14, 15, 59, 996097900, time.UTC)
	berlin := time.FixedZone("CEST", 2*3600)
	e := newEnv(t, simulator.Options{Now: func() time.Time { return now }, Location: berlin})
	admin := e.token("admin")
	_, rep := e.fixture()
	task, _ := e.sim.CreateTask(rep, "t", "")
	alert, _ := e.sim.CreateAlert(rep, "a", "")

	list := func(path string) []simulator.Execution {
		t.Helper()
		var out []simulator.Execution
		r := e.do(admin, "GET", path, nil)
		want(t, r, 200)
		r.decode(t, &out)
		return out
	}
	taskPaths := []string{
		"/api/reportserver/executions/scheduledtasks/" + task,
		"/api/reportserver/v1/executions/scheduledtasks/" + task,
		"/api/reportserver/v2/executions/scheduledtasks/" + task,
		"/api/reportserver/v3/scheduled-tasks/" + task + "/executions",
	}
	alertPaths := []string{
		"/api/reportserver/executions/dataalerts/" + alert,
		"/api/reportserver/v2/executions/dataalerts/" + alert,
		"/api/reportserver/v3/data-alerts/" + alert + "/executions",
	}

	t.Run("empty history", func(t *testing.T) {
		for _, p := range append(taskPaths, alertPaths...) {
			if got := list(p); len(got) != 0 {
				t.Fatalf("%s: %v", p, got)
			}
		}
	})

	var scheduled simulator.Execution
	t.Run("RunTask appears in every generation without an API call", func(t *testing.T) {
		e.sim.ResetCounters()
		var err error
		scheduled, err = e.sim.RunTask(task)
		if err != nil {
			t.Fatal(err)
		}
		if n := e.sim.Count("", "/"); n != 0 {
			t.Fatalf("RunTask made %d requests", n)
		}
		if len(scheduled.Id) != 11 || len(scheduled.DocumentIds) != 1 || scheduled.AlertTriggered {
			t.Fatalf("%+v", scheduled)
		}
		if !scheduled.ExecutionDateUtc.Equal(now) || scheduled.ExecutionDate != "2026-08-12T16:15:59.9960979+02:00" {
			t.Fatalf("dates %v / %s", scheduled.ExecutionDateUtc, scheduled.ExecutionDate)
		}
		for _, p := range taskPaths {
			got := list(p)
			if len(got) != 1 || got[0].Id != scheduled.Id || got[0].DocumentIds[0] != scheduled.DocumentIds[0] {
				t.Fatalf("%s: %+v", p, got)
			}
		}
	})
	t.Run("wire format of an execution", func(t *testing.T) {
		r := e.do(admin, "GET", taskPaths[2], nil)
		if !strings.Contains(string(r.body), `"ExecutionDateUtc":"2026-08-12T14:15:59.9960979Z"`) ||
			!strings.Contains(string(r.body), `"AlertTriggered":false`) {
			t.Fatalf("body %s", r.body)
		}
	})
	t.Run("execution document v3 and documents route", func(t *testing.T) {
		var d simulator.ExecutionDocument
		r := e.do(admin, "GET", "/api/reportserver/v3/scheduled-tasks/"+task+"/executions/"+scheduled.Id+"/documents/"+scheduled.DocumentIds[0], nil)
		want(t, r, 200)
		r.decode(t, &d)
		if d.TaskId != task || d.ReportId != rep || d.MimeType != "application/pdf" || len(d.Data) == 0 || d.Error != nil {
			t.Fatalf("%+v", d)
		}
		want(t, e.do(admin, "GET", "/api/reportserver/v2/documents/"+d.Id, nil), 200)
		want(t, e.do(admin, "GET", "/api/reportserver/v3/scheduled-tasks/"+task+"/executions/nope/documents/"+d.Id, nil), 404)
	})
	t.Run("RunAlert triggered and not", func(t *testing.T) {
		quiet, err := e.sim.RunAlert(alert, false)
		if err != nil {
			t.Fatal(err)
		}
		fired, err := e.sim.RunAlert(alert, true)
		if err != nil {
			t.Fatal(err)
		}
		if quiet.AlertTriggered || len(quiet.DocumentIds) != 0 || !fired.AlertTriggered || len(fired.DocumentIds) != 1 {
			t.Fatalf("quiet %+v fired %+v", quiet, fired)
		}
		for _, p := range alertPaths {
			if got := list(p); len(got) != 2 || got[0].Id != quiet.Id || got[1].Id != fired.Id {
				t.Fatalf("%s: %+v", p, got)
			}
		}
	})
	t.Run("hooks refuse unknown and wrong-kind ids", func(t *testing.T) {
		if _, err := e.sim.RunTask(alert); !errors.Is(err, simulator.ErrNotFound) {
			t.Fatalf("RunTask(alert) = %v", err)
		}
		if _, err := e.sim.RunAlert("nope", true); !errors.Is(err, simulator.ErrNotFound) {
			t.Fatalf("RunAlert(nope) = %v", err)
		}
	})
	t.Run("run now through the API records synchronously", func(t *testing.T) {
		for _, p := range []string{
			"/api/reportserver/executions/scheduledtasks/" + task,
			"/api/reportserver/v2/executions/scheduledtasks/" + task,
			"/api/reportserver/v3/scheduled-tasks/" + task + "/execute",
		} {
			before := len(list(taskPaths[0]))
			want(t, e.do(admin, "POST", p, nil), 204)
			if after := len(list(taskPaths[0])); after != before+1 {
				t.Fatalf("%s: %d -> %d executions", p, before, after)
			}
		}
		for _, p := range []string{
			"/api/reportserver/v2/executions/dataalerts/" + alert,
			"/api/reportserver/v3/data-alerts/" + alert + "/execute",
		} {
			want(t, e.do(admin, "POST", p, nil), 204)
		}
		got := list(alertPaths[0])
		if len(got) != 4 || !got[3].AlertTriggered {
			t.Fatalf("alert history %+v", got)
		}
		want(t, e.do(admin, "POST", "/api/reportserver/v2/executions/scheduledtasks/nope", nil), 404)
		want(t, e.do(admin, "POST", "/api/reportserver/v2/executions/scheduledtasks/"+alert, nil), 404)
	})
	t.Run("delete one execution", func(t *testing.T) {
		for _, p := range []string{
			"/api/reportserver/v2/executions/scheduledtasks/" + task + "/",
			"/api/reportserver/v3/scheduled-tasks/" + task + "/executions/",
		} {
			first := list(taskPaths[0])[0]
			want(t, e.do(admin, "DELETE", p+first.Id, nil), 204)
			want(t, e.do(admin, "DELETE", p+first.Id, nil), 404)
			want(t, e.do(admin, "GET", "/api/reportserver/v2/documents/"+first.DocumentIds[0], nil), 404)
		}
		if n := len(list(taskPaths[0])); n != 2 {
			t.Fatalf("%d left", n)
		}
	})
	t.Run("delete all executions", func(t *testing.T) {
		want(t, e.do(admin, "DELETE", "/api/reportserver/v2/executions/scheduledtasks/"+task, nil), 204)
		want(t, e.do(admin, "DELETE", "/api/reportserver/v3/data-alerts/"+alert+"/executions", nil), 204)
		if len(list(taskPaths[0])) != 0 || len(list(alertPaths[0])) != 0 {
			t.Fatal("history survived")
		}
	})
	t.Run("DeleteExecutionHistory and Executions hooks", func(t *testing.T) {
		if _, err := e.sim.RunTask(task); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.sim.Executions(task); len(got) != 1 {
			t.Fatalf("Executions = %v", got)
		}
		if err := e.sim.DeleteExecutionHistory(task); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.sim.Executions(task); len(got) != 0 {
			t.Fatalf("Executions after delete = %v", got)
		}
		if err := e.sim.DeleteExecutionHistory("nope"); !errors.Is(err, simulator.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("deleting a task drops its history", func(t *testing.T) {
		if _, err := e.sim.RunTask(task); err != nil {
			t.Fatal(err)
		}
		want(t, e.do(admin, "DELETE", "/api/reportserver/v2/scheduledtasks/"+task, nil), 204)
		want(t, e.do(admin, "GET", taskPaths[2], nil), 404)
		if _, err := e.sim.Executions(task); !errors.Is(err, simulator.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestClockSkew(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, simulator.Options{Now: func() time.Time { return now }})
	_, rep := e.fixture()
	task, _ := e.sim.CreateTask(rep, "t", "")
	e.sim.SetClockSkew(-90 * time.Second)
	ex, err := e.sim.RunTask(task)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-90 * time.Second); !ex.ExecutionDateUtc.Equal(want) || !e.sim.Now().Equal(want) {
		t.Fatalf("ExecutionDateUtc %v, Now %v, want %v", ex.ExecutionDateUtc, e.sim.Now(), want)
	}
}

// TestSeedAndConcurrency seeds the watcher benchmark's volume and hammers
// the server from several goroutines (run with -race).
func TestSeedAndConcurrency(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	tasks, err := e.sim.SeedTasks(1000, "")
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := e.sim.SeedAlerts(1000, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1000 || len(alerts) != 1000 || len(e.sim.TaskIDs(false)) != 1000 || len(e.sim.TaskIDs(true)) != 1000 {
		t.Fatalf("seeded %d tasks, %d alerts", len(tasks), len(alerts))
	}
	admin := e.token("admin")
	var list []simulator.ScheduledTask
	e.do(admin, "GET", "/api/reportserver/v2/scheduledtasks", nil).decode(t, &list)
	if len(list) != 1000 || list[0].Id != tasks[0] || list[999].Id != tasks[999] {
		t.Fatalf("list has %d tasks, not in creation order", len(list))
	}
	var mine []simulator.DataAlert
	e.do(e.token("alice"), "GET", "/api/reportserver/v2/dataalerts", nil).decode(t, &mine)
	if len(mine) != 1000 {
		t.Fatalf("alice sees %d of her alerts", len(mine))
	}

	e.sim.ResetCounters()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < 200; i += 8 {
				if _, err := e.sim.RunTask(tasks[i]); err != nil {
					t.Error(err)
				}
				r := e.do(admin, "GET", "/api/reportserver/v2/executions/scheduledtasks/"+tasks[i], nil)
				if r.status != 200 {
					t.Errorf("status %d", r.status)
				}
			}
		}()
	}
	wg.Wait()
	if n := e.sim.Count("GET", "/api/reportserver/v2/executions/scheduledtasks/"); n != 200 {
		t.Fatalf("Count = %d, want 200", n)
	}
	if n := e.sim.Requests()["GET /api/reportserver/v2/executions/scheduledtasks/{scheduledTaskId}"]; n != 200 {
		t.Fatalf("Requests() = %v", e.sim.Requests())
	}
}

// HoldRuns queues the runs of execute calls, as a busy agent does: the call
// answers 204 and no record exists until ReleaseRuns records them, dated
// then; later calls run at once again.
func TestHoldRunsQueuesExecuteCalls(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 8, 12, 14, 0, 0, 0, time.UTC)
	e := newEnv(t, simulator.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	admin := e.token("admin")
	_, rep := e.fixture()
	task, _ := e.sim.CreateTask(rep, "t", "")
	gone, _ := e.sim.CreateTask(rep, "deleted meanwhile", "")
	e.sim.HoldRuns()
	want(t, e.do(admin, "POST", "/api/reportserver/v3/scheduled-tasks/"+task+"/execute", nil), 204)
	want(t, e.do(admin, "POST", "/api/reportserver/v2/executions/scheduledtasks/"+gone, nil), 204)
	if xs, _ := e.sim.Executions(task); len(xs) != 0 {
		t.Fatalf("a queued run has a record: %+v", xs)
	}
	want(t, e.do(admin, "DELETE", "/api/reportserver/v2/scheduledtasks/"+gone, nil), 204)
	mu.Lock()
	now = now.Add(90 * time.Second)
	mu.Unlock()
	runs := e.sim.ReleaseRuns()
	if len(runs) != 1 || !runs[0].ExecutionDateUtc.Equal(now) || len(runs[0].DocumentIds) != 1 {
		t.Fatalf("released %+v, want the one run of the task still there, dated at release, with its document", runs)
	}
	if xs, _ := e.sim.Executions(task); len(xs) != 1 || xs[0].Id != runs[0].Id {
		t.Fatalf("history %+v, want the released run", xs)
	}
	want(t, e.do(admin, "POST", "/api/reportserver/v3/scheduled-tasks/"+task+"/execute", nil), 204)
	if xs, _ := e.sim.Executions(task); len(xs) != 2 {
		t.Fatalf("after release a call still queued: %d records", len(xs))
	}
}
