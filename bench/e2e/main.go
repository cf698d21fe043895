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
//	bin=NAME round=R events=N webhooks=W deliveries=D elapsed=… events_per_s=… deliveries_per_s=… load_deliveries_per_s=… daemon_cpu_us_per_delivery=… bad_signatures=0 duplicates=…
//
// deliveries_per_s is every delivery over the time from the first POST to
// the last delivery's arrival; load_deliveries_per_s counts only those that
// arrived while the clients were still posting. daemon_cpu_us_per_delivery
// is the daemon's CPU time (user + system, from /proc) over the same span
// divided by the deliveries: on a shared machine it moves less with the
// other load than the rates do.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rswebhooks/rswebhooks/signature"
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
	flag.Parse()
	if err := run(strings.Split(*bins, ","), *rounds, *events, *hooks, *clients, *wait, *perfOut); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-bench:", err)
		os.Exit(1)
	}
}

func run(bins []string, rounds, events, hooks, clients int, wait time.Duration, perfOut string) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	up, err := startUpstream()
	if err != nil {
		return err
	}
	for r := 1; r <= rounds; r++ {
		for _, b := range bins {
			name, path, ok := strings.Cut(b, "=")
			if !ok {
				name, path = filepath.Base(b), b
			}
			res, err := once(path, up, events, hooks, clients, wait, perfOut, fmt.Sprintf("%s.%d", name, r))
			if err != nil {
				return fmt.Errorf("%s round %d: %w", name, r, err)
			}
			fmt.Printf("bin=%s round=%d %s\n", name, r, res)
		}
	}
	return nil
}

// startUpstream answers like a report-server create: the body is drained,
// the answer is a small Category with a fresh Id.
func startUpstream() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var seq atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			_, _ = io.WriteString(w, `[]`)
			return
		}
		fmt.Fprintf(w, `{"Id":"c%010d","Name":"bench"}`, seq.Add(1))
	})}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), nil
}

// sink verifies each notification's signatures and counts distinct
// delivery ids; done is closed when want distinct ids have arrived.
type sink struct {
	want   int64
	done   chan struct{}
	mu     sync.Mutex
	seen   map[string]struct{}
	dups   atomic.Int64
	bad    atomic.Int64
	badMsg atomic.Value
	at     atomic.Int64 // distinct deliveries so far
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := r.URL.Query().Get("echo"); e != "" {
		_, _ = io.WriteString(w, e)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = signature.Verify(secret, r.Header.Get(signature.HeaderSignature), body)
	}
	if err == nil {
		err = signature.VerifyStandard(secret, r.Header, body, time.Now(), 0)
	}
	if err != nil {
		s.bad.Add(1)
		s.badMsg.Store(err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(signature.HeaderWebhookID)
	s.mu.Lock()
	_, dup := s.seen[id]
	s.seen[id] = struct{}{}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if dup {
		s.dups.Add(1)
		return
	}
	if s.at.Add(1) == s.want {
		close(s.done)
	}
}

type daemon struct {
	cmd   *exec.Cmd
	dir   string
	proxy string
	admin string
	token string
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startDaemon(bin, upstream string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "rsw-e2e-bench-")
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, token: "bench-operator-token-0123456789abcdef"}
	if d.proxy, err = freePort(); err != nil {
		return nil, err
	}
	if d.admin, err = freePort(); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(bin, "serve", "--upstream", "http://"+upstream, "--listen", d.proxy, "--admin-listen", d.admin,
		"--data-dir", filepath.Join(dir, "data"), "--admin-token", d.token, "--allow-target", "127.0.0.0/8",
		"--watch-interval", "0", "--reconcile-interval", "0", "--log-level", "warn", "--log-format", "json")
	d.cmd.Stdout = io.Discard // the access log goes through a pipe, as to journald
	errLog, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	defer errLog.Close()
	d.cmd.Stderr = errLog
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		time.Sleep(50 * time.Millisecond) // polling another process's start
	}
	d.stop()
	b, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
	return nil, fmt.Errorf("daemon did not become ready: %s", b)
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(d.dir)
}

// cpu returns the CPU time (user + system) the daemon has used so far.
func (d *daemon) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", d.cmd.Process.Pid)
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

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

func (d *daemon) register(uri string) error {
	b, err := json.Marshal(map[string]any{"WebHookUri": uri, "Secret": secret, "Filters": []string{"categories"},
		"Properties": map[string]string{"env": "bench"}})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+d.admin+"/api/webhooks/registrations", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("register webhook: %s %s", resp.Status, out)
	}
	return nil
}

// once runs one binary: fresh daemon and sink, webhooks, creates, wait.
func once(bin, upstream string, events, hooks, clients int, wait time.Duration, perfOut, label string) (string, error) {
	want := int64(events * hooks)
	s := &sink{want: want, done: make(chan struct{}), seen: make(map[string]struct{}, want)}
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	sinkSrv := &http.Server{Handler: s}
	go func() { _ = sinkSrv.Serve(sinkLn) }()
	defer sinkSrv.Close()

	d, err := startDaemon(bin, upstream)
	if err != nil {
		return "", err
	}
	defer d.stop()
	for i := range hooks {
		if err := d.register(fmt.Sprintf("http://%s/hook/%d", sinkLn.Addr(), i)); err != nil {
			return "", err
		}
	}
	if perfOut != "" {
		perf := exec.Command("perf", "record", "-F", "499", "-g", "-o", perfOut+"."+label, "-p", fmt.Sprint(d.cmd.Process.Pid))
		perf.Stdout, perf.Stderr = io.Discard, io.Discard
		if err := perf.Start(); err != nil {
			return "", fmt.Errorf("perf: %w", err)
		}
		defer func() { _ = perf.Process.Signal(os.Interrupt); _ = perf.Wait() }()
	}

	cpu0, err := d.cpu()
	if err != nil {
		return "", err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	body := []byte(`{"Name":"bench","Description":"end-to-end delivery benchmark"}`)
	target := "http://" + d.proxy + "/api/reportserver/v2/categories"
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
	cpu1, err := d.cpu()
	if err != nil {
		return "", err
	}
	if n := s.bad.Load(); n > 0 {
		return "", fmt.Errorf("%d notifications failed verification: %v", n, s.badMsg.Load())
	}
	return fmt.Sprintf("events=%d webhooks=%d deliveries=%d elapsed=%s events_per_s=%.0f deliveries_per_s=%.0f load_deliveries_per_s=%.0f daemon_cpu_us_per_delivery=%.0f bad_signatures=0 duplicates=%d",
		events, hooks, want, el.Round(time.Millisecond), float64(events)/made.Seconds(), float64(want)/el.Seconds(),
		float64(duringLoad)/made.Seconds(), float64((cpu1-cpu0).Microseconds())/float64(want), s.dups.Load()), nil
}
