package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// BenchmarkPoll measures one poll cycle against 1,000 scheduled tasks and
// 1,000 data alerts in the simulator (on loopback, gzip on, default
// concurrency 8), with each item's history holding a few executions.
// "quiet": nothing new since the last poll; "all-new": every task and alert
// ran once since the last poll (2,000 events appended and marked seen).
func BenchmarkPoll(b *testing.B) {
	for _, tc := range []struct {
		name   string
		newRun bool
	}{{"quiet", false}, {"all-new", true}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, nil)
			tasks, err := e.sim.SeedTasks(1000, "")
			if err != nil {
				b.Fatal(err)
			}
			alerts, err := e.sim.SeedAlerts(1000, "")
			if err != nil {
				b.Fatal(err)
			}
			runAll := func() {
				for _, id := range tasks {
					e.run(id)
				}
				for _, id := range alerts {
					e.runAlert(id, true)
				}
			}
			for i := 0; i < 3; i++ {
				runAll()
			}
			e.poll() // first start
			e.sim.ResetCounters()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if tc.newRun {
					b.StopTimer()
					e.clk.Add(time.Second)
					runAll()
					b.StartTimer()
				}
				e.poll()
			}
			b.StopTimer()
			total := 0
			for _, n := range e.sim.Requests() {
				total += n
			}
			b.ReportMetric(float64(total)/float64(b.N), "requests/op")
			if tc.newRun {
				if n := len(e.events()); n != 2000*b.N {
					b.Fatalf("%d events, want %d", n, 2000*b.N)
				}
			}
		})
	}
}

// BenchmarkCorrelatorAppend measures the proxy's side of the correlator on
// Badger: "execute" holds an execute call (with 50 calls already waiting),
// "other" passes a Created event through (the cost every other event pays).
func BenchmarkCorrelatorAppend(b *testing.B) {
	for _, kind := range []string{"execute", "other"} {
		b.Run(kind, func(b *testing.B) {
			e := newEnv(b, nil)
			ctx := context.Background()
			ev := func(i int) *rswebhooks.Event {
				at := e.clk.Now()
				if kind == "other" {
					return &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventCreated,
						ResourceID: fmt.Sprint("r", i), Time: at}
				}
				return &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventExecuted,
					ResourceID: fmt.Sprint("t", i%100), Time: at, Method: "POST", UserName: "admin"}
			}
			for i := range 50 {
				if err := e.corr.AppendEvent(ctx, ev(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.corr.AppendEvent(ctx, ev(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
