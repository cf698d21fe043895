//go:build linux

// Command e2e-bench measures end-to-end delivery throughput of a real
// `rswebhooks serve` process: clients POST creates through the proxy to a
// fast upstream that answers like the report server, the daemon detects
// each create, stores the event, fans it out to every webhook and delivers
// signed notifications to a sink that verifies both signatures (ms-signature
// and the Standard Webhooks one) and counts distinct delivery ids.
//
// With several -bin values each round runs every binary once, in order, on a
// fresh data directory, so a baseline and a candidate measured back to back
// share the machine's conditions. Each run prints one line:
//
//	bin=NAME round=R events=N webhooks=W deliveries=D elapsed=… events_per_s=… deliveries_per_s=… load_deliveries_per_s=… daemon_cpu_us_per_delivery=… bench_cpu_us_per_delivery=… allocs_per_delivery=… alloc_bytes_per_delivery=… gc_cycles=… load_daemon_cores=… load_bench_cores=… bad_signatures=0 duplicates=…
//
// deliveries_per_s is every delivery over the time from the first POST to
// the last delivery's arrival; load_deliveries_per_s counts only those that
// arrived while the clients were still posting. daemon_cpu_us_per_delivery
// is the daemon's CPU time (user + system, from /proc) over the same span
// divided by the deliveries: on a shared machine it moves less with the
// other load than the rates do. bench_cpu_us_per_delivery is the same for
// this process (the clients, the upstream and the sink together), which
// shares the machine with the daemon: what is left of the cores for the
// daemon at a given rate. allocs_per_delivery, alloc_bytes_per_delivery
// and gc_cycles come from the daemon's /metrics over the same span and do
// not move with the load at all. load_daemon_cores and load_bench_cores are
// the cores the daemon and this process kept busy on average while the
// clients were posting (CPU time over that span): below the machine's
// cores, that phase was not held back by CPU.
//
// This process is harness, not product, and shares the two cores with the
// daemon, so it is kept cheap without weakening what it checks: the sink
// reads HTTP/1.1 itself (sink.go; every notification still verified with
// both signatures and counted by delivery id), the process collects at
// GOGC 400 and runs on one P (-procs). The clients and the upstream use
// net/http.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rswebhooks/rswebhooks/bench/benchrig"
)

// secret is every webhook's secret (the registrations API wants 32–128).
const secret = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"

func main() {
	bins := flag.String("bin", "rswebhooks", "comma-separated rswebhooks binaries, run in turn each round (name=path to label one)")
	rounds := flag.Int("rounds", 1, "rounds")
	events := flag.Int("events", 4000, "creates POSTed through the proxy")
	hooks := flag.Int("webhooks", 8, "webhooks, each matching every create")
	clients := flag.Int("clients", 16, "concurrent clients posting creates")
	wait := flag.Duration("wait", 5*time.Minute, "longest wait for every delivery after the last create")
	perfOut := flag.String("perf", "", "record a perf profile of each daemon here (suffixed .NAME.ROUND)")
	cpuOut := flag.String("cpuprofile", "", "have each daemon write a Go CPU profile of its run here (suffixed .NAME.ROUND; the binary must be built with -tags pprof)")
	procs := flag.Int("procs", 1, "GOMAXPROCS of this process (0: the Go default, one per core); its goroutines need well under a core, and on one P its threads do not spin looking for work on the cores the daemon needs")
	selfOut := flag.String("selfprofile", "", "write a Go CPU profile of this process (clients, upstream and sink) over all rounds here")
	flag.Parse()
	// This process (clients, upstream, sink) shares the cores with the
	// daemon; its heap is a few MB, so at the default GOGC it collects
	// every few milliseconds. Collect less often: that is this harness's
	// cost, not the daemon's (whose environment, GOGC included, is left
	// as it is).
	debug.SetGCPercent(400)
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	if *selfOut != "" {
		f, err := os.Create(*selfOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "e2e-bench:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if err := run(strings.Split(*bins, ","), *rounds, *events, *hooks, *clients, *wait, *perfOut, *cpuOut); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(bins []string, rounds, events, hooks, clients int, wait time.Duration, perfOut, cpuOut string) error {
	_, _ = benchrig.RaiseOpenFiles() // best effort: as far as the hard limit allows
	up, err := benchrig.StartUpstream()
	if err != nil {
		return err
	}
	for r := 1; r <= rounds; r++ {
		for _, b := range bins {
			name, path, ok := strings.Cut(b, "=")
			if !ok {
				name, path = filepath.Base(b), b
			}
			res, err := once(path, up, events, hooks, clients, wait, perfOut, cpuOut, fmt.Sprintf("%s.%d", name, r))
			if err != nil {
				return fmt.Errorf("%s round %d: %w", name, r, err)
			}
			fmt.Printf("bin=%s round=%d %s\n", name, r, res)
		}
	}
	return nil
}

// cpu returns the CPU time (user + system) process pid has used so far.
func cpu(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// goStats reads the allocation and GC counters of the daemon whose admin
// listener is admin from its /metrics (the Go collector's
// go_memstats_mallocs_total, go_memstats_alloc_bytes_total and
// go_gc_duration_seconds_count): unlike CPU time they do not move with other
// people's load.
func goStats(admin string) (mallocs, bytes, gcs float64, err error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_memstats_mallocs_total":
			dst = &mallocs
		case "go_memstats_alloc_bytes_total":
			dst = &bytes
		case "go_gc_duration_seconds_count":
			dst = &gcs
		default:
			continue
		}
		if _, err := fmt.Sscan(v, dst); err != nil {
			return 0, 0, 0, fmt.Errorf("/metrics %s: %w", name, err)
		}
	}
	return mallocs, bytes, gcs, nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// once runs one binary: fresh daemon and sink, webhooks, creates, wait.
func once(bin, upstream string, events, hooks, clients int, wait time.Duration, perfOut, cpuOut, label string) (string, error) {
	want := int64(events * hooks)
	s, err := newSink(want)
	if err != nil {
		return "", err
	}
	defer s.close()
	sinkAddr := s.addr()

	var env []string // nil: this process's
	if cpuOut != "" {
		env = append(os.Environ(), "RSWEBHOOKS_CPUPROFILE="+cpuOut+"."+label)
	}
	d, err := benchrig.Start(benchrig.Options{Bin: bin, Upstream: "http://" + upstream,
		Args: []string{"--reconcile-interval", "0", "--log-format", "json"}, Env: env})
	if err != nil {
		return "", err
	}
	defer d.Stop()
	for i := range hooks {
		err := d.Register(map[string]any{"WebHookUri": fmt.Sprintf("http://%s/hook/%d", sinkAddr, i), "Secret": secret,
			"Filters": []string{"categories"}, "Properties": map[string]string{"env": "bench"}})
		if err != nil {
			return "", err
		}
	}
	if perfOut != "" {
		perf := exec.Command("perf", "record", "-F", "499", "-g", "-o", perfOut+"."+label, "-p", fmt.Sprint(d.Pid()))
		perf.Stdout, perf.Stderr = io.Discard, io.Discard
		if err := perf.Start(); err != nil {
			return "", fmt.Errorf("perf: %w", err)
		}
		defer func() { _ = perf.Process.Signal(os.Interrupt); _ = perf.Wait() }()
	}

	cpu0, err := cpu(d.Pid())
	if err != nil {
		return "", err
	}
	self0, err := cpu(os.Getpid())
	if err != nil {
		return "", err
	}
	mallocs0, bytes0, gcs0, err := goStats(d.Admin)
	if err != nil {
		return "", err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	body := []byte(`{"Name":"bench","Description":"end-to-end delivery benchmark"}`)
	target := "http://" + d.Proxy + "/api/reportserver/v2/categories"
	var next, failed atomic.Int64
	var lastErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(events) {
				resp, err := c.Post(target, "application/json", bytes.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	made := time.Since(start)
	duringLoad := s.at.Load()
	cpuLoad, err := cpu(d.Pid())
	if err != nil {
		return "", err
	}
	selfLoad, err := cpu(os.Getpid())
	if err != nil {
		return "", err
	}
	if n := failed.Load(); n > 0 {
		return "", fmt.Errorf("%d creates failed, last: %v", n, lastErr.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		return "", fmt.Errorf("only %d of %d deliveries within %s after the last create (bad signatures %d: %v)",
			s.at.Load(), want, wait, s.bad.Load(), s.badMsg.Load())
	}
	el := time.Since(start)
	cpu1, err := cpu(d.Pid())
	if err != nil {
		return "", err
	}
	self1, err := cpu(os.Getpid())
	if err != nil {
		return "", err
	}
	mallocs1, bytes1, gcs1, err := goStats(d.Admin)
	if err != nil {
		return "", err
	}
	if n := s.bad.Load(); n > 0 {
		return "", fmt.Errorf("%d notifications failed verification: %v", n, s.badMsg.Load())
	}
	return fmt.Sprintf("events=%d webhooks=%d deliveries=%d elapsed=%s events_per_s=%.0f deliveries_per_s=%.0f load_deliveries_per_s=%.0f daemon_cpu_us_per_delivery=%.0f bench_cpu_us_per_delivery=%.0f allocs_per_delivery=%.0f alloc_bytes_per_delivery=%.0f gc_cycles=%.0f load_daemon_cores=%.2f load_bench_cores=%.2f bad_signatures=0 duplicates=%d",
		events, hooks, want, el.Round(time.Millisecond), float64(events)/made.Seconds(), float64(want)/el.Seconds(),
		float64(duringLoad)/made.Seconds(), float64((cpu1-cpu0).Microseconds())/float64(want), float64((self1-self0).Microseconds())/float64(want),
		(mallocs1-mallocs0)/float64(want), (bytes1-bytes0)/float64(want), gcs1-gcs0,
		(cpuLoad-cpu0).Seconds()/made.Seconds(), (selfLoad-self0).Seconds()/made.Seconds(), s.dups.Load()), nil
}
