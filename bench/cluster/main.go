// Command cluster-bench compares the storage engines under the delivery
// engine, in one run on one machine: Badger (one node) and PostgreSQL
// (-nodes engines sharing one database, each with its own connection pool
// and listener, events appended round-robin), with real signing and a fast
// loopback receiver.
//
//	throughput: -events events as fast as they can be appended; deliveries/s.
//	latency:    events at -rate per second; event → first attempt p50/p99.
//
// PostgreSQL is the server at -postgres-url or, without it, a throw-away
// cluster started from the local binaries (internal/pgtest). The figures
// are printed as ratios against Badger's, measured in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/bench/benchrig"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store"
)

func main() {
	events := flag.Int("events", 10000, "events per row")
	rate := flag.Int("rate", 1000, "events/s in the latency rows")
	hooks := flag.Int("webhooks", 1, "webhooks (all matching every event)")
	nodes := flag.Int("nodes", 1, "PostgreSQL nodes (delivery engines sharing the database)")
	pgURL := flag.String("postgres-url", "", "PostgreSQL server whose role may create databases (default: a throw-away cluster)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	pgStats := flag.Bool("pgstats", false, "after PostgreSQL's throughput row, print the server's and this process's CPU per delivery, the server's statements, buffer hits and WAL per delivery, and the top statements of pg_stat_statements (throw-away cluster only)")
	pgWaits := flag.Bool("pgwaits", false, "after PostgreSQL's throughput row, print what its active backends were doing (wait events, sampled every 5 ms)")
	warmup := flag.Int("warmup", 0, "in the latency rows, events sent at -rate and delivered before the measured ones, not counted (0: the engines start cold)")
	stagesOn := flag.Bool("stages", false, "after PostgreSQL's latency row, print how long each stage took from event to first attempt (append, fan-out, due read, lease, arrival), for all deliveries and the slowest 1 %")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster-bench: -cpuprofile:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(*events, *rate, *hooks, *nodes, *warmup, *pgURL, *pgStats, *pgWaits, *stagesOn); err != nil {
		fmt.Fprintln(os.Stderr, "cluster-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type result struct {
	perSec   float64
	p50, p99 time.Duration
}

func run(events, rate, hooks, nodes, warmup int, pgURL string, pgStats, pgWaits, stagesOn bool) error {
	if pgStats && pgURL != "" {
		return fmt.Errorf("-pgstats needs the throw-away cluster (it loads pg_stat_statements and reads the server's CPU): drop -postgres-url")
	}
	var cluster *pgtest.Cluster
	if pgURL == "" {
		var settings []string
		if pgStats {
			settings = []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"}
		}
		c, err := pgtest.Launch(settings...)
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer c.Close()
		cluster = c
	} else {
		cluster = &pgtest.Cluster{URL: pgURL}
	}
	n := 0
	lastURL, walFrom := "", ""
	newPG := func() ([]rswebhooks.Store, func(), error) {
		n++
		url, err := cluster.CreateDatabase(context.Background(), fmt.Sprintf("bench_%d_%d", os.Getpid(), n))
		if err != nil {
			return nil, nil, err
		}
		lastURL = url
		if pgStats {
			if walFrom, err = resetStats(url); err != nil {
				return nil, nil, err
			}
		}
		var ss []rswebhooks.Store
		for range nodes {
			db, err := pgstore.Open(context.Background(), pgstore.Options{URL: url, Logger: zerolog.Nop()})
			if err != nil {
				return nil, nil, err
			}
			ss = append(ss, db)
		}
		return ss, func() {
			for _, s := range ss {
				s.Close()
			}
		}, nil
	}
	newBadger := func() ([]rswebhooks.Store, func(), error) {
		dir, err := os.MkdirTemp("", "cluster-bench-")
		if err != nil {
			return nil, nil, err
		}
		db, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
		if err != nil {
			return nil, nil, err
		}
		return []rswebhooks.Store{db}, func() { db.Close(); os.RemoveAll(dir) }, nil
	}
	fmt.Printf("# events=%d webhooks=%d rate=%d/s postgres-nodes=%d warmup=%d\n", events, hooks, rate, nodes, warmup)
	rows := []struct {
		name string
		open func() ([]rswebhooks.Store, func(), error)
	}{
		{"badger", newBadger},
		{fmt.Sprintf("postgres x%d", nodes), newPG},
	}
	res := map[string][2]result{}
	for _, r := range rows {
		var pair [2]result
		for i, rateOrZero := range []int{0, rate} {
			ss, closeAll, err := r.open()
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			stats := pgStats && r.name != "badger" && rateOrZero == 0
			var before usage
			if stats {
				before = usageNow(cluster.ServerPid())
			}
			var waits *waitSampler
			if pgWaits && r.name != "badger" && rateOrZero == 0 {
				if waits, err = sampleWaits(lastURL); err != nil {
					return err
				}
			}
			var clock *stageClock
			if stagesOn && r.name != "badger" && rateOrZero > 0 {
				clock = newStageClock()
			}
			pair[i], err = measure(ss, events, hooks, rateOrZero, warmup, clock)
			if clock != nil {
				clock.print()
				printServerWork(lastURL)
			}
			if waits != nil {
				waits.print()
			}
			if err == nil && stats {
				err = printStats(lastURL, walFrom, before, usageNow(cluster.ServerPid()), events*hooks)
			}
			closeAll()
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
		res[r.name] = pair
		fmt.Printf("%-12s throughput %6.0f deliveries/s   at %d events/s: event->first attempt p50 %-8s p99 %s\n",
			r.name, pair[0].perSec, rate, pair[1].p50.Round(100*time.Microsecond), pair[1].p99.Round(100*time.Microsecond))
	}
	b, p := res[rows[0].name], res[rows[1].name]
	fmt.Printf("ratio %s/badger: throughput %.2fx, p99 latency %.2fx\n", rows[1].name, p[0].perSec/b[0].perSec,
		float64(p[1].p99)/float64(b[1].p99))
	return nil
}

// measure runs one delivery engine per store on events (at rate per
// second, or as fast as possible when rate is 0) and waits for every
// delivery. With rate, warmup events go first, at the same rate, and are
// delivered before the measured ones start. With a clock (PostgreSQL
// only) it records each measured delivery's stages.
func measure(ss []rswebhooks.Store, events, hooks, rate, warmup int, clock *stageClock) (result, error) {
	total := events * hooks
	if clock != nil {
		staged := make([]rswebhooks.Store, len(ss))
		for i, s := range ss {
			staged[i] = stagedDB{DB: s.(*pgstore.DB), c: clock, node: i}
		}
		ss = staged
	}
	h := &switchHandler{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := benchrig.CreateWebhooks(ctx, ss[0], hooks, srv.URL+"/hook"); err != nil {
		return result{}, err
	}
	var engines []*deliver.Engine
	var wg sync.WaitGroup
	for _, s := range ss {
		eng, err := benchrig.NewEngine(s, 16, 4)
		if err != nil {
			return result{}, err
		}
		engines = append(engines, eng)
		wg.Add(1)
		go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	}
	defer wg.Wait()
	defer cancel()
	add := func(i int, ev *rswebhooks.Event) error {
		node := i % len(ss)
		if err := ss[node].AppendEvent(ctx, ev); err != nil {
			return err
		}
		engines[node].Wake()
		return nil
	}
	if warmup > 0 && rate > 0 {
		w := benchrig.NewReceiver(warmup*hooks, false)
		h.set(w)
		if err := benchrig.Feed(warmup, rate, add); err != nil {
			return result{}, err
		}
		if err := w.Wait(10 * time.Minute); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	recv := benchrig.NewReceiver(total, true)
	if clock != nil {
		clock.reset()
		h.set(clock.receiver(recv))
	} else {
		h.set(recv)
	}
	start := time.Now()
	if err := benchrig.Feed(events, rate, add); err != nil {
		return result{}, err
	}
	if err := recv.Wait(10 * time.Minute); err != nil {
		return result{}, err
	}
	r := result{perSec: float64(total) / time.Since(start).Seconds()}
	if lat := recv.Latencies(); len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[int(0.99*float64(len(lat)-1))]
	}
	return r, nil
}

// switchHandler passes requests to the handler set last.
type switchHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *switchHandler) set(h http.Handler) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}
