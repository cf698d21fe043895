// Command store measures the store's memory: it opens a store, writes a
// number of events (optionally fanning each out to a delivery that is then
// completed with an attempt, as the delivery engine does), goes idle, and
// prints the process's resident memory from /proc/self/status.
//
//	go run ./bench/store -events 100000
//	go run ./bench/store -events 100000 -pipeline -value-threshold 65536
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/store:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "data directory (default: a new temporary directory, removed afterwards)")
	events := flag.Int("events", 100000, "events to write")
	pipeline := flag.Bool("pipeline", false, "also fan each event out to one delivery and complete it with an attempt")
	threshold := flag.Int64("value-threshold", store.DefaultValueThreshold, "Badger ValueThreshold in bytes")
	idle := flag.Duration("idle", 20*time.Second, "idle time before measuring")
	heapProfile := flag.String("heapprofile", "", "write a heap profile here after the idle time")
	flag.Parse()

	if *dir == "" {
		d, err := os.MkdirTemp("", "rswebhooks-bench-store-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	report("before open")
	db, err := store.Open(store.Options{Dir: *dir, Logger: zerolog.New(os.Stderr).Level(zerolog.WarnLevel),
		ValueThreshold: *threshold})
	if err != nil {
		return err
	}
	defer db.Close()
	report("after open")

	ctx := context.Background()
	start := time.Now()
	for i := range *events {
		now := time.Now().UTC()
		e := &rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Updated",
			ResourceID: "0f8fad5b-d9cb-469f-a165-70867728950e", ResourceName: "Quarterly Sales by Region",
			UserID: "6e8bc430-9c3a-11d9-9669-0800200c9a66", UserName: "alice", Time: now, APIVersion: "v2",
			Method: "PUT", Path: "/api/reportserver/v2/reports/0f8fad5b-d9cb-469f-a165-70867728950e"}
		if err := db.AppendEvent(ctx, e); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if !*pipeline {
			continue
		}
		d := &rswebhooks.Delivery{ID: rswebhooks.NewID(now), WebhookID: "W1", EventID: e.ID, Event: *e,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now}
		if err := db.FanOut(ctx, e.ID, []*rswebhooks.Delivery{d}); err != nil {
			return err
		}
		d.State, d.Attempts, d.LastStatus = rswebhooks.DeliverySucceeded, 1, 200
		a := &rswebhooks.Attempt{N: 1, StartedUTC: now, Duration: time.Millisecond, StatusCode: 200,
			ResponseHeaders: map[string][]string{"Content-Type": {"text/plain"}}, ResponseBody: "ok"}
		if err := db.Complete(ctx, d, a); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Printf("wrote %d events (pipeline=%v) in %s: %.0f events/s\n", *events, *pipeline, el.Round(time.Millisecond),
		float64(*events)/el.Seconds())
	report("after writes")

	// Badger returns its table-builder buffers to a pool that releases one
	// every 2 s of quiet; the Go runtime then frees them at the next GC (a
	// quiet process runs one at least every 2 minutes), forced here.
	time.Sleep(*idle)
	runtime.GC()
	debug.FreeOSMemory()
	lsm, vlog := db.Size()
	fmt.Printf("badger size: lsm %.1f MiB, vlog %.1f MiB\n", mib(lsm), mib(vlog))
	report(fmt.Sprintf("idle %s", *idle))
	if *heapProfile != "" {
		f, err := os.Create(*heapProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func report(label string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fields := map[string]string{}
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	fmt.Printf("%-14s VmRSS %-10s VmHWM %-10s RssAnon %-10s RssFile %-10s Go heap in use %.1f MiB, HeapSys %.1f MiB\n",
		label+":", fields["VmRSS"], fields["VmHWM"], fields["RssAnon"], fields["RssFile"],
		float64(ms.HeapInuse)/(1<<20), float64(ms.HeapSys)/(1<<20))
}
