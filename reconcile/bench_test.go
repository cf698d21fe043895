package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
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
// type: RunOnce (five lists, decode, fingerprints, diff, read-times save)
// against the baseline of the same five list requests decoded into generic
// JSON and nothing else. The two alternate within each iteration, so load
// from other work hits both alike; it reports both times, their ratio, the
// requests per run and the snapshot's size.
func BenchmarkRun(b *testing.B) {
	e := newEnv(b, "admin")
	seedLarge(b, e)
	ctx := context.Background()
	if err := e.r.RunOnce(ctx); err != nil { // baseline run
		b.Fatal(err)
	}
	listsOnly := func() {
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
	var base, run time.Duration
	requests := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		listsOnly()
		t1 := time.Now()
		e.sim.ResetCounters()
		if err := e.r.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
		run += time.Since(t1)
		base += t1.Sub(t0)
		for route, n := range e.sim.Requests() {
			if strings.HasPrefix(route, "GET ") {
				requests += n
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(run.Milliseconds())/float64(b.N), "run-ms/op")
	b.ReportMetric(float64(base.Milliseconds())/float64(b.N), "lists-only-ms/op")
	b.ReportMetric(float64(run)/float64(base), "run/lists-only")
	b.ReportMetric(float64(requests)/float64(b.N), "requests/run")
	raw, err := e.db.GetMeta(ctx, metaSnapshot)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(raw)), "snapshot-bytes")
	if es := e.fresh(); len(es) != 0 {
		b.Fatalf("an unchanged server gave %d events", len(es))
	}
}

// BenchmarkDiff measures the in-memory part of a run for the same sizes,
// with 1 % of the items changed: decoding and fingerprinting the five
// lists and diffing them against the snapshot, against decoding the same
// lists into generic JSON (the baseline any reader pays), alternating
// within each iteration; it reports both times and their ratio.
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
	var base, ours time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for _, raws := range lists {
			for _, raw := range raws {
				var m map[string]any
				if err := json.Unmarshal(raw, &m); err != nil {
					b.Fatal(err)
				}
			}
		}
		t1 := time.Now()
		changes := 0
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
		ours += time.Since(t1)
		base += t1.Sub(t0)
		if changes != want {
			b.Fatalf("%d changes, want %d (1 %% of the items)", changes, want)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "decode+diff-ms/op")
	b.ReportMetric(float64(base.Milliseconds())/float64(b.N), "generic-decode-ms/op")
	b.ReportMetric(float64(ours)/float64(base), "decode+diff/generic")
}

// BenchmarkSharedGateAppend measures what a cluster node's gate adds to a
// claimable proxy event on PostgreSQL: AppendEvent through NewSharedGate
// (announce, look for an emission, append) against AppendEvent straight to
// the store, alternating within each iteration on one database. It reports
// both times and their ratio.
func BenchmarkSharedGateAppend(b *testing.B) {
	ctx := context.Background()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	db, err := pgstore.Open(octx, pgstore.Options{URL: pgtest.NewDatabase(b), Logger: zerolog.Nop()})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	g, err := NewSharedGate(db, db, 0, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ev := func(i int) *rswebhooks.Event {
		now := time.Now()
		return &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventUpdated,
			ResourceID: fmt.Sprintf("r-%d", i%100), Time: now.UTC(), Source: rswebhooks.SourceProxy}
	}
	var direct, gated time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := db.AppendEvent(ctx, ev(i)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := g.AppendEvent(ctx, ev(i)); err != nil {
			b.Fatal(err)
		}
		direct += t1.Sub(t0)
		gated += time.Since(t1)
	}
	b.ReportMetric(float64(direct.Microseconds())/float64(b.N), "direct-µs/op")
	b.ReportMetric(float64(gated.Microseconds())/float64(b.N), "gated-µs/op")
	b.ReportMetric(float64(gated)/float64(direct), "gated/direct")
}
