// Command deliver-bench measures the delivery engine end to end: events are
// appended to a real Badger store, fanned out, signed and POSTed to a fast
// loopback receiver.
//
//	throughput: N events × W webhooks as fast as possible; deliveries/s.
//	latency:    events at a fixed rate; event → first attempt p50/p99.
//
// Both print peak RSS (VmHWM).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/bench/benchrig"
	"github.com/rswebhooks/rswebhooks/store"
)

func main() {
	mode := flag.String("mode", "throughput", "throughput or latency")
	events := flag.Int("events", 5000, "events to append")
	hooks := flag.Int("webhooks", 8, "webhooks (all matching every event, one receiver)")
	rate := flag.Int("rate", 1000, "events/s in latency mode")
	conc := flag.Int("concurrency", 16, "Options.MaxConcurrency (daemon default 16)")
	per := flag.Int("per-webhook", 4, "Options.PerWebhookConcurrency (daemon default 4)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "deliver-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "deliver-bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(*mode, *events, *hooks, *rate, *conc, *per); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "deliver-bench:", err)
		os.Exit(1)
	}
}

func run(mode string, events, hooks, rate, conc, per int) error {
	dir, err := os.MkdirTemp("", "deliver-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	defer db.Close()

	total := events * hooks
	recv := benchrig.NewReceiver(total, mode == "latency")
	srv := httptest.NewServer(recv)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := benchrig.CreateWebhooks(ctx, db, hooks, srv.URL+"/hook"); err != nil {
		return err
	}
	eng, err := benchrig.NewEngine(db, conc, per)
	if err != nil {
		return err
	}
	runDone := make(chan error, 1)
	go func() { runDone <- eng.Run(ctx) }()

	if mode != "latency" {
		rate = 0
	}
	start := time.Now()
	err = benchrig.Feed(events, rate, func(_ int, ev *rswebhooks.Event) error {
		if err := db.AppendEvent(ctx, ev); err != nil {
			return err
		}
		eng.Wake()
		return nil
	})
	if err != nil {
		return err
	}
	if err := recv.Wait(10 * time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	cancel()
	<-runDone

	fmt.Printf("mode=%s events=%d webhooks=%d deliveries=%d concurrency=%d per-webhook=%d\n", mode, events, hooks, total, conc, per)
	fmt.Printf("elapsed=%s deliveries/s=%.0f\n", elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	if mode == "latency" {
		lat := recv.Latencies()
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		fmt.Printf("event->first attempt: n=%d p50=%s p90=%s p99=%s max=%s\n", len(lat), q(.5), q(.9), q(.99), lat[len(lat)-1])
	}
	fmt.Printf("peak RSS: %s\n", peakRSS())
	return nil
}

// peakRSS returns VmHWM, and at the end of the run the resident memory split
// into anonymous (heap, stacks) and file-backed (Badger's mmapped tables,
// value log and memtable WALs: page cache) pages.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	f := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("%s (at the end: RssAnon %s, RssFile %s)", f["VmHWM"], f["RssAnon"], f["RssFile"])
}
