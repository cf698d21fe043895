package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// BenchmarkDeliveryCycle is the store's part of delivering one event to 8
// webhooks, per delivery: AppendEvent, FanOut, then for each delivery
// Lease, Complete with a successful attempt (as the engine does), and the
// event's reads by the fan-out (UnfannedEvents). It uses only the Store
// API, so the same file measures an earlier tree as the baseline.
func BenchmarkDeliveryCycle(b *testing.B) {
	db, err := Open(Options{Dir: b.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const hooks = 8
	req := rswebhooks.LeaseRequest{Holder: "bench", For: time.Minute, PerWebhook: 4}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += hooks {
		now := time.Now().UTC()
		ev := benchEvent(rswebhooks.NewID(now))
		if err := db.AppendEvent(ctx, ev); err != nil {
			b.Fatal(err)
		}
		evs, err := db.UnfannedEvents(ctx, 1)
		if err != nil || len(evs) != 1 {
			b.Fatal(len(evs), err)
		}
		ds := make([]*rswebhooks.Delivery, hooks)
		for i := range ds {
			wh := fmt.Sprintf("01HOOK00000000000000000%03d", i)
			ds[i] = &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(evs[0], wh), WebhookID: wh, EventID: ev.ID, Event: *evs[0],
				State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now, AccessPending: true}
		}
		if err := db.FanOut(ctx, ev.ID, ds); err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			l, err := db.Lease(ctx, d.ID, time.Now(), req)
			if err != nil {
				b.Fatal(err)
			}
			l.State, l.Attempts, l.LastStatus, l.AccessPending, l.UpdatedUTC = rswebhooks.DeliverySucceeded, 1, 200, false, time.Now().UTC()
			a := &rswebhooks.Attempt{DeliveryID: l.ID, N: 1, StartedUTC: now, Duration: time.Millisecond, StatusCode: 200,
				ResponseHeaders: map[string][]string{"Content-Length": {"0"}, "Date": {now.Format(time.RFC1123)}}}
			if err := db.Complete(ctx, l, a); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
