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
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
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
	var got atomic.Int64
	done := make(chan struct{})
	var mu sync.Mutex
	var lat []time.Duration
	srv := httptest.NewServer(receiverHandler(mode, total, &got, done, &mu, &lat))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now().UTC()
	pad := strings.Repeat("x", 560) // brings the body to about 1 KB
	for i := 0; i < hooks; i++ {
		w := &rswebhooks.Webhook{
			ID: rswebhooks.NewID(now), URI: srv.URL + "/hook", Secret: "0123456789abcdef0123456789abcdef",
			Filters: []string{"*"}, User: rswebhooks.User{ID: "u1", Name: "bench"},
			Properties: map[string]json.RawMessage{"pad": json.RawMessage(strconv.Quote(pad))}, CreatedUTC: now, UpdatedUTC: now,
		}
		if err := db.CreateWebhook(ctx, w); err != nil {
			return err
		}
	}
	eng, err := deliver.New(deliver.Options{
		Store: db, Access: deliver.AllowAll{}, MaxConcurrency: conc, PerWebhookConcurrency: per,
		Client: deliver.NewHTTPClient(deliver.ClientOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}),
		Logger: zerolog.Nop(), Version: "bench",
	})
	if err != nil {
		return err
	}
	runDone := make(chan error, 1)
	go func() { runDone <- eng.Run(ctx) }()

	start := time.Now()
	var interval time.Duration
	if mode == "latency" {
		interval = time.Second / time.Duration(rate)
	}
	for i := 0; i < events; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d) // pacing the load generator, not synchronisation
			}
		}
		t := time.Now().UTC()
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(t), Filter: "reports", Type: "Created", ResourceID: fmt.Sprint(i),
			ResourceName: "Report", UserID: "u1", UserName: "bench", Time: t, APIVersion: "v2", Method: "POST",
			Path: "/api/reportserver/v2/reports"}
		if err := db.AppendEvent(ctx, ev); err != nil {
			return err
		}
		eng.Wake()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("only %d of %d deliveries after 10 minutes", got.Load(), total)
	}
	elapsed := time.Since(start)
	cancel()
	<-runDone

	fmt.Printf("mode=%s events=%d webhooks=%d deliveries=%d concurrency=%d per-webhook=%d\n", mode, events, hooks, total, conc, per)
	fmt.Printf("elapsed=%s deliveries/s=%.0f\n", elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	if mode == "latency" {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
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

// receiverHandler answers 204 at once; in latency mode it records arrival
// time minus the event's TimestampUtc.
func receiverHandler(mode string, total int, got *atomic.Int64, done chan struct{}, mu *sync.Mutex, lat *[]time.Duration) http.Handler {
	const key = `"TimestampUtc": "`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		arrived := time.Now()
		if mode == "latency" {
			if i := strings.Index(string(body), key); i >= 0 {
				s := string(body[i+len(key):])
				if t, err := time.Parse(time.RFC3339Nano, s[:strings.IndexByte(s, '"')]); err == nil {
					mu.Lock()
					*lat = append(*lat, arrived.Sub(t))
					mu.Unlock()
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == int64(total) {
			close(done)
		}
	})
}
