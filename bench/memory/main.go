//go:build linux

// Command memory-bench measures the peak RSS of a real `rswebhooks serve`
// process (default settings) under load, while it keeps polling the admin
// /healthz and a GET through the proxy (the front door) to show both keep
// answering. It runs one scenario per invocation, each on a fresh daemon:
//
//	uploads:    -clients concurrent POSTs of -size bytes to a watched route
//	            (POST /api/reportserver/v2/categories) for -duration
//	idle:       -conns client connections that send half a request and stall
//	deliveries: -events events × -webhooks webhooks delivered to a loopback
//	            receiver; runs until every delivery arrived
//
// The upstream is a small Go server in this process that drains the body and
// answers like the report server's create (200 + Category JSON).
// RLIMIT_NOFILE is raised here and inherited by the daemon.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rswebhooks/rswebhooks/bench/benchrig"
)

func main() {
	bin := flag.String("bin", "rswebhooks", "the rswebhooks binary")
	scenario := flag.String("scenario", "uploads", "uploads, idle or deliveries")
	clients := flag.Int("clients", 1000, "uploads: concurrent clients")
	size := flag.Int("size", 1<<20, "uploads: body bytes")
	duration := flag.Duration("duration", 5*time.Second, "uploads and idle: how long the load lasts")
	conns := flag.Int("conns", 10000, "idle: client connections")
	events := flag.Int("events", 10000, "deliveries: events")
	hooks := flag.Int("webhooks", 8, "deliveries: webhooks (each gets every event)")
	direct := flag.Bool("direct", false, "uploads: send to the upstream directly (baseline, no daemon RSS)")
	reference := flag.String("reference", "", "uploads: send through this reference proxy binary instead (bench/proxy/httputilproxy: a plain httputil.ReverseProxy; baseline for what streaming alone costs)")
	deliveryWait = flag.Duration("wait", 5*time.Minute, "deliveries: how long to wait for every delivery after the events are made")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the daemon (empty: none, as in a bare `rswebhooks serve`)")
	flag.Parse()
	daemonEnv = append(os.Environ(), "RSWEBHOOKS_LOG_FORMAT=json")
	if *memLimit != "" {
		daemonEnv = append(daemonEnv, "GOMEMLIMIT="+*memLimit)
	}
	if err := run(*bin, *scenario, *clients, *size, *duration, *conns, *events, *hooks, *direct, *reference); err != nil {
		fmt.Fprintln(os.Stderr, "memory-bench:", err)
		os.Exit(1)
	}
}

func run(bin, scenario string, clients, size int, duration time.Duration, conns, events, hooks int, direct bool, reference string) error {
	files, err := benchrig.RaiseOpenFiles() // as far as the hard limit allows
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	if need := uint64(conns + 1000); scenario == "idle" && files < need {
		return fmt.Errorf("RLIMIT_NOFILE is %d, the idle scenario needs %d (raise the hard limit: ulimit -Hn)", files, need)
	}
	up, err := benchrig.StartUpstream()
	if err != nil {
		return err
	}
	recv := &receiver{}
	recvAddr, stopRecv, err := benchrig.Serve(benchrig.Echo(recv))
	if err != nil {
		return err
	}
	defer stopRecv()

	d, err := benchrig.Start(benchrig.Options{Bin: bin, Upstream: "http://" + up, Env: daemonEnv, ReadyPath: "/healthz"})
	if err != nil {
		return err
	}
	defer d.Stop()

	hc := startHealth(d)
	sampler := startSampler(d)
	target := "http://" + d.Proxy
	if direct {
		target = "http://" + up
	}
	if reference != "" {
		addr, stop, err := startReference(reference, "http://"+up)
		if err != nil {
			return err
		}
		defer stop()
		target = "http://" + addr
	}
	fmt.Printf("scenario=%s %s", scenario, strings.Join(daemonEnv[len(os.Environ()):], " "))
	switch scenario {
	case "uploads":
		fmt.Printf(" clients=%d size=%d duration=%s direct=%v reference=%v\n", clients, size, duration, direct, reference != "")
		err = uploads(target, clients, size, duration)
	case "idle":
		fmt.Printf(" conns=%d duration=%s\n", conns, duration)
		err = idle(d.Proxy, conns, duration)
	case "deliveries":
		fmt.Printf(" events=%d webhooks=%d\n", events, hooks)
		err = deliveries(d, recv, "http://"+recvAddr, events, hooks)
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	hc.stop()
	if err != nil {
		return err
	}
	anon, file, heap := sampler.stop()
	fmt.Printf("peak_rss_mib=%.1f rss_end_mib=%.1f peak_anon_mib=%.1f peak_file_mib=%.1f peak_go_heap_inuse_mib=%.1f\n",
		float64(status(d.Pid(), "VmHWM"))/1024, float64(status(d.Pid(), "VmRSS"))/1024, float64(anon)/1024, float64(file)/1024, heap/(1<<20))
	hc.report()
	return nil
}

// startReference runs the reference proxy binary in front of upstream and
// waits until it accepts connections.
func startReference(bin, upstream string) (string, func(), error) {
	addr, err := benchrig.FreePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-listen", addr, "-upstream", upstream)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("reference proxy did not listen on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a child's listener; no event to wait on
	}
}

// deliveryWait is -wait.
var deliveryWait *time.Duration

// daemonEnv is the daemon's environment.
var daemonEnv []string

// status reads a kB field of /proc/PID/status.
func status(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// sampler records the peak anonymous and file-backed RSS (kB) every 50 ms
// and the Go heap in use from /metrics every second.
type sampler struct {
	stopc      chan struct{}
	done       chan struct{}
	anon, file int64
	heap       float64
}

func startSampler(d *benchrig.Daemon) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		c := &http.Client{Timeout: 2 * time.Second}
		for i := 0; ; i++ {
			s.anon = max(s.anon, status(d.Pid(), "RssAnon"))
			s.file = max(s.file, status(d.Pid(), "RssFile")+status(d.Pid(), "RssShmem"))
			if i%20 == 0 {
				if resp, err := c.Get("http://" + d.Admin + "/metrics"); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					for _, l := range strings.Split(string(b), "\n") {
						if v, ok := strings.CutPrefix(l, "go_memstats_heap_inuse_bytes "); ok {
							f, _ := strconv.ParseFloat(v, 64)
							s.heap = max(s.heap, f)
						}
					}
				}
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (anon, file int64, heap float64) {
	close(s.stopc)
	<-s.done
	return s.anon, s.file, s.heap
}

// health polls the admin /healthz and a GET through the proxy every 100 ms
// with a 2 s timeout each, on their own connections.
type health struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	stats  map[string]*probeStats
}

type probeStats struct {
	ok, failed int
	worst      time.Duration
	lastErr    string
}

func startHealth(d *benchrig.Daemon) *health {
	ctx, cancel := context.WithCancel(context.Background())
	h := &health{cancel: cancel, stats: map[string]*probeStats{}}
	for name, u := range map[string]string{
		"admin /healthz":    "http://" + d.Admin + "/healthz",
		"proxy GET (front)": "http://" + d.Proxy + "/api/reportserver/v2/categories",
	} {
		st := &probeStats{}
		h.stats[name] = st
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				start := time.Now()
				resp, err := c.Get(u)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
				el := time.Since(start)
				h.mu.Lock()
				if err != nil {
					st.failed++
					st.lastErr = err.Error()
				} else {
					st.ok++
				}
				st.worst = max(st.worst, el)
				h.mu.Unlock()
			}
		}()
	}
	return h
}

func (h *health) stop() { h.cancel(); h.wg.Wait() }

func (h *health) report() {
	for name, st := range h.stats {
		fmt.Printf("health %-18s ok=%d failed=%d worst_ms=%.1f %s\n", name, st.ok, st.failed,
			float64(st.worst.Microseconds())/1000, st.lastErr)
	}
}

// uploads runs clients concurrent upload loops for duration.
func uploads(target string, clients, size int, duration time.Duration) error {
	pad := bytes.Repeat([]byte("QUJD"), size/4)
	body := []byte(`{"Name":"bench","Description":"` + string(pad[:max(0, size-40)]) + `"}`)
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	var n, failed atomic.Int64
	var lastErr atomic.Value
	stop := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				resp, err := c.Post(target+"/api/reportserver/v2/categories", "application/json", bytes.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("requests=%d failed=%d req_per_s=%.1f mib_per_s=%.1f", n.Load(), failed.Load(), float64(n.Load())/el,
		float64(n.Load())*float64(len(body))/el/(1<<20))
	if e, ok := lastErr.Load().(string); ok {
		fmt.Printf(" last_error=%q", e)
	}
	fmt.Println()
	return nil
}

// idle opens conns connections that send the start of a request and stall.
func idle(addr string, conns int, duration time.Duration) error {
	held := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var failed int
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			failed++
			continue
		}
		half := "POST /api/reportserver/v2/categories HTTP/1.1\r\nHost: bench\r\n"
		if i%2 == 0 { // the other half: connected, silent
			if _, err := io.WriteString(c, half); err != nil {
				failed++
			}
		}
		held = append(held, c)
	}
	fmt.Printf("connections=%d failed=%d\n", len(held), failed)
	time.Sleep(duration) // holding the connections open is the load
	return nil
}

// receiver counts deliveries.
type receiver struct{ n atomic.Int64 }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	r.n.Add(1)
}

// deliveries registers webhooks, makes events through the proxy (8 clients)
// and waits until every delivery arrived.
func deliveries(d *benchrig.Daemon, recv *receiver, recvURL string, events, hooks int) error {
	for i := range hooks {
		if err := d.Register(map[string]any{"WebHookUri": fmt.Sprintf("%s/hook/%d", recvURL, i), "Filters": []string{"categories"}}); err != nil {
			return err
		}
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	body := []byte(`{"Name":"bench"}`)
	var failed atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(events) {
				resp, err := http.Post("http://"+d.Proxy+"/api/reportserver/v2/categories", "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	made := time.Since(start)
	want := int64(events * hooks)
	deadline := time.Now().Add(*deliveryWait)
	for recv.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // waiting on another process's progress
	}
	el := time.Since(start)
	fmt.Printf("events=%d failed=%d events_s=%.1f deliveries=%d/%d deliveries_per_s=%.0f\n", events, failed.Load(),
		made.Seconds(), recv.n.Load(), want, float64(recv.n.Load())/el.Seconds())
	if recv.n.Load() < want {
		return fmt.Errorf("only %d of %d deliveries arrived", recv.n.Load(), want)
	}
	return nil
}
