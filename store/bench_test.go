package store

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"github.com/rswebhooks/rswebhooks"
)

func benchDB(b *testing.B) *DB {
	b.Helper()
	db, err := Open(Options{Dir: b.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// benchEvent is a typical proxied-call event (~450 bytes of JSON).
func benchEvent(id string) *rswebhooks.Event {
	return &rswebhooks.Event{
		ID: id, Filter: "reports", Type: "Updated", ResourceID: "0f8fad5b-d9cb-469f-a165-70867728950e",
		ResourceName: "Quarterly Sales by Region", UserID: "6e8bc430-9c3a-11d9-9669-0800200c9a66",
		UserName: "alice", Time: time.Now().UTC(), APIVersion: "v2", Method: "PUT",
		Path: "/api/reportserver/v2/reports/0f8fad5b-d9cb-469f-a165-70867728950e", RequestID: strings.Repeat("r", 16),
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db := benchDB(b)
			ctx := context.Background()
			var seq atomic.Int64
			write := func() bool {
				id := fmt.Sprintf("%s%08d", rswebhooks.NewID(time.Now())[:10], seq.Add(1))
				if err := db.AppendEvent(ctx, benchEvent(id)); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			b.ResetTimer()
			if writers == 1 {
				for range b.N {
					if !write() {
						return
					}
				}
			} else {
				// RunParallel starts parallelism × GOMAXPROCS goroutines.
				b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() && write() {
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAppendEventGuard measures the degraded-mode guard's per-write
// checks (stat and statfs of the data directory) against the same writes
// without them, in the same run.
func BenchmarkAppendEventGuard(b *testing.B) {
	for _, guard := range []bool{false, true} {
		b.Run(fmt.Sprintf("guard=%v", guard), func(b *testing.B) {
			db, err := Open(Options{Dir: b.TempDir(), Logger: zerolog.Nop(), noGuard: !guard})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			ctx := context.Background()
			prefix := rswebhooks.NewID(time.Now())[:10]
			b.ResetTimer()
			for i := range b.N {
				if err := db.AppendEvent(ctx, benchEvent(fmt.Sprintf("%s%08d", prefix, i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkCompleteDelivery(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	now := time.Now().UTC()
	ds := make([]*rswebhooks.Delivery, b.N)
	for i := range ds {
		d := &rswebhooks.Delivery{ID: fmt.Sprintf("D%09d", i), WebhookID: "W1", EventID: "E1",
			Event: *benchEvent("E1"), State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now}
		if err := db.PutDelivery(ctx, d); err != nil {
			b.Fatal(err)
		}
		ds[i] = d
	}
	b.ResetTimer()
	for i, d := range ds {
		d.State, d.Attempts, d.LastStatus = rswebhooks.DeliverySucceeded, 1, 200
		a := &rswebhooks.Attempt{N: 1, StartedUTC: now, Duration: time.Millisecond, StatusCode: 200,
			ResponseHeaders: map[string][]string{"Content-Type": {"text/plain"}}, ResponseBody: "ok"}
		if err := db.Complete(ctx, d, a); err != nil {
			b.Fatal(i, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "completions/s")
}

// BenchmarkDue reads the 100 earliest of 1,000 due deliveries while 10,000
// more wait in the future, with 10,000 completed deliveries' queue
// tombstones in front of them.
func BenchmarkDue(b *testing.B) {
	db, now := dueBenchDB(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		ds, err := db.Due(ctx, now, 100)
		if err != nil || len(ds) != 100 {
			b.Fatal(len(ds), err)
		}
	}
}

// BenchmarkDueRefs is BenchmarkDue listing queue keys only, as the delivery
// engine does.
func BenchmarkDueRefs(b *testing.B) {
	db, now := dueBenchDB(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		rs, err := db.DueRefs(ctx, now, 100)
		if err != nil || len(rs) != 100 {
			b.Fatal(len(rs), err)
		}
	}
}

// BenchmarkUnfannedEvents lists the ids of the 100 waiting events behind
// 10,000 fanned-out ones (their ef/ tombstones), with the cursor and, for
// comparison, scanning ef/ from its start as before the cursor; "events"
// is the whole UnfannedEvents (ids and decoded events).
func BenchmarkUnfannedEvents(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	t := time.Now().Add(-time.Hour)
	for i := range 10100 {
		if err := db.AppendEvent(ctx, benchEvent(rswebhooks.NewID(t.Add(time.Duration(i)*time.Millisecond)))); err != nil {
			b.Fatal(err)
		}
	}
	evs, err := db.UnfannedEvents(ctx, 10000)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range evs {
		if err := db.FanOut(ctx, e.ID, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("cursor", func(b *testing.B) {
		for range b.N {
			low, sc := db.unfanned.begin()
			err := db.view(ctx, "bench", func(txn *badger.Txn) error {
				ids, err := db.scanUnfanned(txn, sc, low, 100)
				if err == nil && len(ids) != 100 {
					err = fmt.Errorf("%d ids", len(ids))
				}
				return err
			})
			db.unfanned.end(sc)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("events", func(b *testing.B) {
		for range b.N {
			evs, err := db.UnfannedEvents(ctx, 100)
			if err != nil || len(evs) != 100 {
				b.Fatal(len(evs), err)
			}
		}
	})
	b.Run("from-start", func(b *testing.B) {
		for range b.N {
			err := db.view(ctx, "bench", func(txn *badger.Txn) error {
				ids, err := keySuffixes(txn, []byte(pUnfanned), 100)
				if err == nil && len(ids) != 100 {
					err = fmt.Errorf("%d ids", len(ids))
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// dueBenchDB holds 1,000 due deliveries, 10,000 waiting in the future and
// 10,000 completed deliveries' queue tombstones in front of them.
func dueBenchDB(b *testing.B) (*DB, time.Time) {
	db := benchDB(b)
	ctx := context.Background()
	now := time.Now().UTC()
	put := func(i int, next time.Time) *rswebhooks.Delivery {
		d := &rswebhooks.Delivery{ID: fmt.Sprintf("D%09d", i), WebhookID: "W1", EventID: "E1",
			Event: *benchEvent("E1"), State: rswebhooks.DeliveryPending, NextUTC: next, CreatedUTC: now}
		if err := db.PutDelivery(ctx, d); err != nil {
			b.Fatal(err)
		}
		return d
	}
	i := 0
	for ; i < 10000; i++ { // tombstones: queued then completed
		d := put(i, now.Add(-time.Hour+time.Duration(i)))
		d.State = rswebhooks.DeliverySucceeded
		if err := db.Complete(ctx, d, nil); err != nil {
			b.Fatal(err)
		}
	}
	for ; i < 11000; i++ {
		put(i, now.Add(-time.Duration(i)))
	}
	for ; i < 21000; i++ {
		put(i, now.Add(time.Hour+time.Duration(i)))
	}
	return db, now
}

// BenchmarkGuardAdmit is the cost of the checks alone.
func BenchmarkGuardAdmit(b *testing.B) {
	db := benchDB(b)
	for range b.N {
		if err := db.guard.admit(); err != nil {
			b.Fatal(err)
		}
	}
}
