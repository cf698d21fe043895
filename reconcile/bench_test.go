package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks"
)

// seedLarge fills the simulator with 10,000 reports and 1,000 each of
// categories, data connections, scheduled tasks and data alerts.
func seedLarge(b *testing.B, e *env) {
	b.Helper()
	cats := make([]string, 1000)
	for i := range cats {
		cats[i] = e.must(e.sim.CreateCategory(fmt.Sprintf("category %04d", i)))
	}
	for i := 0; i < 10000; i++ {
		e.must(e.sim.CreateReport(cats[i%len(cats)], fmt.Sprintf("report %05d", i), "admin"))
	}
	for i := 0; i < 1000; i++ {
		e.must(e.sim.CreateDataConnection(fmt.Sprintf("connection %04d", i)))
	}
	if _, err := e.sim.SeedTasks(1000, ""); err != nil {
		b.Fatal(err)
	}
	if _, err := e.sim.SeedAlerts(1000, ""); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRun measures one reconcile run with nothing changed against the
// simulator on loopback holding 10,000 reports and 1,000 of each other
// type: "run" is RunOnce (five lists, decode, fingerprints, diff, snapshot
// save); "lists-only" is the baseline, the same five list requests with the
// answers decoded into generic JSON and nothing else. It reports the
// requests per run and the snapshot's size.
func BenchmarkRun(b *testing.B) {
	e := newEnv(b, "admin")
	seedLarge(b, e)
	ctx := context.Background()
	if err := e.r.RunOnce(ctx); err != nil { // baseline run
		b.Fatal(err)
	}
	b.Run("lists-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, f := range rswebhooks.Filters() {
				raws, _, err := e.client.Collection(ctx, "v3", f)
				if err != nil {
					b.Fatal(err)
				}
				for _, raw := range raws {
					var m map[string]any
					if err := json.Unmarshal(raw, &m); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
	b.Run("run", func(b *testing.B) {
		e.sim.ResetCounters()
		for i := 0; i < b.N; i++ {
			if err := e.r.RunOnce(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		lists := 0
		for route, n := range e.sim.Requests() {
			if strings.HasPrefix(route, "GET ") {
				lists += n
			}
		}
		b.ReportMetric(float64(lists)/float64(b.N), "requests/op")
		raw, err := e.db.GetMeta(ctx, metaSnapshot)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(raw)), "snapshot-bytes")
		if es := e.fresh(); len(es) != 0 {
			b.Fatalf("an unchanged server gave %d events", len(es))
		}
	})
}

// BenchmarkDiff measures the in-memory part of a run for the same sizes,
// with 1 % of the items changed: decoding and fingerprinting the five
// lists and diffing them against the snapshot ("decode+diff"), against
// decoding the same lists into generic JSON ("decode-generic", the
// baseline any reader pays).
func BenchmarkDiff(b *testing.B) {
	e := newEnv(b, "admin")
	seedLarge(b, e)
	ctx := context.Background()
	lists := map[string][]json.RawMessage{}
	for _, f := range rswebhooks.Filters() {
		raws, _, err := e.client.Collection(ctx, "v3", f)
		if err != nil {
			b.Fatal(err)
		}
		lists[f] = raws
	}
	old := map[string]map[string]entry{}
	want := 0
	for f, raws := range lists {
		want += (len(raws) + 99) / 100
		old[f] = map[string]entry{}
		for i, raw := range raws {
			it, err := decodeItem(f, raw)
			if err != nil {
				b.Fatal(err)
			}
			if i%100 == 0 {
				it.FP = "changed"
			}
			old[f][strings.ToLower(it.ID)] = it.entry
		}
	}
	b.Run("decode-generic", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, raws := range lists {
				for _, raw := range raws {
					var m map[string]any
					if err := json.Unmarshal(raw, &m); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
	b.Run("decode+diff", func(b *testing.B) {
		changes := 0
		for i := 0; i < b.N; i++ {
			changes = 0
			for f, raws := range lists {
				cur := make(map[string]item, len(raws))
				for _, raw := range raws {
					it, err := decodeItem(f, raw)
					if err != nil {
						b.Fatal(err)
					}
					cur[strings.ToLower(it.ID)] = it
				}
				changes += len(diff(f, old[f], cur))
			}
		}
		if changes != want {
			b.Fatalf("%d changes, want %d (1 %% of the items)", changes, want)
		}
	})
}
