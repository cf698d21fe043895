package reportserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func simClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	c, err := New(Options{BaseURL: u, User: "admin", Password: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExecutionReadsV2AndV3(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	c := simClient(t, sim)
	ctx := context.Background()
	tasks, err := sim.SeedTasks(2, "")
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := sim.SeedAlerts(1, "")
	if err != nil {
		t.Fatal(err)
	}
	x, err := sim.RunAlert(alerts[0], true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.RunTask(tasks[1]); err != nil {
		t.Fatal(err)
	}
	v, err := c.ProbeExecutionsAPI(ctx)
	if err != nil || v != APIv3 {
		t.Fatalf("probe = %q, %v; want v3", v, err)
	}
	for _, version := range []string{APIv2, APIv3} {
		ts, st, err := c.ScheduledTasks(ctx, version)
		if err != nil || len(ts) != 2 || ts[0].ID != tasks[0] || ts[0].Name == "" {
			t.Fatalf("%s tasks = %+v, %v", version, ts, err)
		}
		if st.Date.IsZero() || time.Since(st.Date) > time.Minute {
			t.Errorf("%s: Date stamp %v not read", version, st.Date)
		}
		as, _, err := c.DataAlerts(ctx, version)
		if err != nil || len(as) != 1 || as[0].ID != alerts[0] {
			t.Fatalf("%s alerts = %+v, %v", version, as, err)
		}
		es, _, err := c.AlertExecutions(ctx, version, alerts[0], "")
		if err != nil || len(es) != 1 || es[0].ID != x.Id || !es[0].AlertTriggered ||
			len(es[0].DocumentIDs) != 1 || !es[0].ExecutionDateUTC.Equal(x.ExecutionDateUtc) {
			t.Fatalf("%s alert executions = %+v, %v (want %+v)", version, es, err, x)
		}
		es, _, err = c.TaskExecutions(ctx, version, tasks[0], "")
		if err != nil || len(es) != 0 {
			t.Fatalf("%s task executions = %+v, %v", version, es, err)
		}
		if _, _, err := c.TaskExecutions(ctx, version, "nope", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s unknown task: %v, want ErrNotFound", version, err)
		}
	}
	if _, _, err := c.ScheduledTasks(ctx, "v1"); err == nil {
		t.Error("version v1 accepted")
	}
}

// A server without v3 (RS for .NET Framework) answers 404 there.
func TestProbeFallsBackToV2(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	c := simClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) > 20 && r.URL.Path[:21] == "/api/reportserver/v3/" {
			http.NotFound(w, r)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	v, err := c.ProbeExecutionsAPI(context.Background())
	if err != nil || v != APIv2 {
		t.Fatalf("probe = %q, %v; want v2", v, err)
	}
	sim.FailWith(http.StatusInternalServerError)
	if _, err := c.ProbeExecutionsAPI(context.Background()); err == nil {
		t.Error("probe of a failing server succeeded")
	}
}

// Conditional reads and .NET date shapes, against a hand-written server.
func TestExecutionsETagAndDates(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	var gotINM string
	c := simClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Token" {
			sim.ServeHTTP(w, r)
			return
		}
		gotINM = r.Header.Get("If-None-Match")
		if gotINM == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("\xef\xbb\xbf" + `[{"id":"a1","DocumentIds":[],"AlertTriggered":false,"ExecutionDateUtc":"2026-08-12T14:15:59.9960979"}]`))
	}))
	es, st, err := c.TaskExecutions(context.Background(), APIv2, "t1", "")
	if err != nil || len(es) != 1 || es[0].ID != "a1" || st.ETag != `"v1"` {
		t.Fatalf("read = %+v %+v %v", es, st, err)
	}
	if want := time.Date(2026, 8, 12, 14, 15, 59, 996097900, time.UTC); !es[0].ExecutionDateUTC.Equal(want) {
		t.Errorf("date = %v, want %v (no zone means UTC)", es[0].ExecutionDateUTC, want)
	}
	es, st, err = c.TaskExecutions(context.Background(), APIv2, "t1", st.ETag)
	if err != nil || es != nil || !st.NotModified || gotINM != `"v1"` {
		t.Fatalf("conditional read = %+v %+v %v (If-None-Match %q)", es, st, err, gotINM)
	}
}
