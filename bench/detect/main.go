// Command detect-bench measures the latency the rswebhooks daemon adds to a
// mutating call that detect turns into a persisted event, next to the latency
// it adds to an unmatched GET, against the report-server simulator on
// loopback. One run measures four cases:
//
//	(a) POST api/reportserver/v2/categories directly to the simulator
//	(b) the same POST through daemon.Run (proxy, detect tap, Badger store):
//	    the event is in the store before the client gets the response
//	(c) GET api/reportserver/v2/categories/{id} directly (no rule matches)
//	(d) the same GET through the daemon
//
// The load is open-loop: request i of the run is due at start + i/rate and is
// sent then whether or not earlier ones have returned, and its latency is
// measured from that due time, so a stall delays every request that was due
// during it (no coordinated omission). The four cases are interleaved in a
// freshly shuffled order every four slots, so machine noise and the growth of
// the simulator's category list hit all of them alike. The schedule runs at
// -rate requests/s in all (each case gets a quarter); the first -warmup of it
// is not measured.
//
// After the run the daemon is shut down, the store is reopened and checked:
// it must hold exactly one categories/Created event per 2xx proxied POST,
// with the ids the clients were given, and nothing else (a POST the client
// gave up on may still have an event: the report server did the change).
//
// The simulator, the daemon and the load generator share one process (and
// its GOMAXPROCS and garbage collector), as daemon.Run is the shipped path.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/daemon"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/store"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.rate, "rate", 500, "requests/s of the whole schedule; each of the four cases gets a quarter")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured time at the same rate before it")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured part to this file")
	flag.StringVar(&cfg.trace, "trace", "", "write an execution trace of the measured part to this file")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the case order")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "detect-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	rate              int
	duration, warmup  time.Duration
	cpuprofile, trace string
	seed              uint64
}

// The four measured cases, in table order.
const (
	postDirect = iota
	postProxy
	getDirect
	getProxy
	nCases
)

var caseNames = [nCases]string{
	"(a) POST direct",
	"(b) POST via proxy (event persisted)",
	"(c) GET direct (unmatched)",
	"(d) GET via proxy (unmatched)",
}

// sample is one request's outcome. latency is measured from the due time,
// service from the moment the request was handed to the client.
type sample struct {
	kind     int
	warm     bool
	latency  time.Duration
	service  time.Duration
	status   int
	err      error
	postedID string // the category id a 2xx POST returned
}

func run(cfg config) error {
	if cfg.rate < nCases || cfg.duration <= 0 || cfg.warmup < 0 {
		return fmt.Errorf("-rate must be at least %d and -duration positive, -warmup not negative", nCases)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()

	// The report server.
	sim := simulator.New(simulator.Options{})
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Serve(ctx, simLn) }()
	token, err := sim.IssueToken("admin")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	catID, err := sim.CreateCategory("bench-get-target")
	if err != nil {
		return fmt.Errorf("category: %w", err)
	}

	// The daemon, as shipped, on a temporary data dir.
	dir, err := os.MkdirTemp("", "detect-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	reg := prometheus.NewRegistry()
	dctx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	ready := make(chan string, 1)
	daemonDone := make(chan error, 1)
	go func() {
		daemonDone <- daemon.Run(dctx, daemon.Options{
			Upstream:      "http://" + simLn.Addr().String(),
			Listen:        "127.0.0.1:0",
			AdminListen:   "127.0.0.1:0",
			DataDir:       dir,
			WatchInterval: 0,
			Logger:        log,
			Registerer:    reg,
			Gatherer:      reg,
			Version:       "bench",
			Ready:         func(p, _ string) { ready <- p },
		})
	}()
	var proxyAddr string
	select {
	case proxyAddr = <-ready:
	case err := <-daemonDone:
		return fmt.Errorf("daemon: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("daemon not ready after 30s")
	}

	direct := "http://" + simLn.Addr().String()
	proxied := "http://" + proxyAddr
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	send := func(kind, slot int) sample {
		base := direct
		if kind == postProxy || kind == getProxy {
			base = proxied
		}
		var req *http.Request
		if kind == postDirect || kind == postProxy {
			req, _ = http.NewRequest(http.MethodPost, base+"/api/reportserver/v2/categories",
				strings.NewReader(fmt.Sprintf(`{"Name":"bench-%d"}`, slot)))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req, _ = http.NewRequest(http.MethodGet, base+"/api/reportserver/v2/categories/"+catID, nil)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		s := sample{kind: kind}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			s.err = err
			s.service = time.Since(start)
			return s
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.service = time.Since(start)
		s.status, s.err = resp.StatusCode, err
		if kind == postProxy && err == nil && resp.StatusCode/100 == 2 {
			var c struct{ ID string }
			if json.Unmarshal(body, &c) == nil {
				s.postedID = c.ID
			}
		}
		return s
	}

	// The open-loop schedule.
	interval := time.Second / time.Duration(cfg.rate)
	slots := int((cfg.warmup + cfg.duration) / interval)
	warmSlots := int(cfg.warmup / interval)
	samples := make([]sample, slots)
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	order := [nCases]int{postDirect, postProxy, getDirect, getProxy}
	var wg sync.WaitGroup
	var stopProfile func() error
	fmt.Fprintf(os.Stderr, "detect-bench: %d req/s in all (%v apart), %v warm-up + %v measured, %d requests\n",
		cfg.rate, interval, cfg.warmup, cfg.duration, slots)
	begin := time.Now()
	for i := 0; i < slots; i++ {
		if i%nCases == 0 {
			rng.Shuffle(nCases, func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		if i == warmSlots {
			if stopProfile, err = startProfiles(cfg); err != nil {
				return err
			}
		}
		due := begin.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		kind := order[i%nCases]
		wg.Add(1)
		go func(i, kind int, due time.Time) {
			defer wg.Done()
			s := send(kind, i)
			s.latency = time.Since(due)
			s.warm = i < warmSlots
			samples[i] = s
		}(i, kind, due)
	}
	wg.Wait()
	if stopProfile != nil {
		if err := stopProfile(); err != nil {
			return err
		}
	}
	elapsed := time.Since(begin)

	lost, err := metricSum(reg, "rswebhooks_events_lost_total")
	if err != nil {
		return err
	}
	stopDaemon()
	select {
	case err := <-daemonDone:
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	case <-time.After(60 * time.Second):
		return errors.New("daemon did not stop within 60s")
	}
	stored, err := storedEvents(dir)
	if err != nil {
		return err
	}
	cancel()
	<-simDone

	return report(os.Stdout, cfg, samples, elapsed, lost, stored)
}

// startProfiles starts the requested CPU profile and trace; the returned func
// stops them.
func startProfiles(cfg config) (func() error, error) {
	var closers []func() error
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		closers = append(closers, func() error { pprof.StopCPUProfile(); return f.Close() })
	}
	if cfg.trace != "" {
		f, err := os.Create(cfg.trace)
		if err != nil {
			return nil, err
		}
		if err := trace.Start(f); err != nil {
			return nil, err
		}
		closers = append(closers, func() error { trace.Stop(); return f.Close() })
	}
	return func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}, nil
}

// metricSum adds up every series of the named metric in reg.
func metricSum(reg prometheus.Gatherer, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum, nil
}

// storedEvents reopens the store after the daemon closed it and counts its
// events by "filter/type/resource id".
func storedEvents(dir string) (map[string]int, error) {
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("reopen store: %w", err)
	}
	defer db.Close()
	evs, err := db.ListEvents(context.Background(), "", 0)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := make(map[string]int, len(evs))
	for _, e := range evs {
		out[e.Filter+"/"+e.Type+"/"+e.ResourceID]++
	}
	return out, nil
}
