package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the rswebhooks binary built once for the process tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rswebhooks-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "rswebhooks")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building rswebhooks:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemonProc is a child `rswebhooks serve` process.
type daemonProc struct {
	t          *testing.T
	cmd        *exec.Cmd
	proxyURL   string
	adminURL   string
	done       chan struct{}
	ready      chan [2]string
	logMu      sync.Mutex
	logs       strings.Builder
	exitStatus error
}

// startDaemon runs `rswebhooks serve` with the given flags (plus loopback
// listeners on free ports and JSON logs) and waits for its "serving" line.
func startDaemon(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	p := spawnDaemon(t, args...)
	p.await()
	return p
}

// startDaemons starts one process per flag list all at once (as a
// rollout does), then waits for each to serve.
func startDaemons(t *testing.T, argss ...[]string) []*daemonProc {
	t.Helper()
	ps := make([]*daemonProc, len(argss))
	for i, args := range argss {
		ps[i] = spawnDaemon(t, args...)
	}
	for _, p := range ps {
		p.await()
	}
	return ps
}

// spawnDaemon starts the process without waiting for it (see await).
func spawnDaemon(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"}, args...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "RSWEBHOOKS_TEST_CHILD=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{t: t, cmd: cmd, done: make(chan struct{}), ready: make(chan [2]string, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.logs.WriteString(line + "\n")
			p.logMu.Unlock()
			var m struct {
				Message     string `json:"message"`
				Listen      string `json:"listen"`
				AdminListen string `json:"admin_listen"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Message == "rswebhooks serving" {
				p.ready <- [2]string{m.Listen, m.AdminListen}
			}
		}
		p.exitStatus = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// await waits for the process's "serving" line and notes its addresses.
func (p *daemonProc) await() {
	p.t.Helper()
	select {
	case a := <-p.ready:
		p.proxyURL, p.adminURL = "http://"+a[0], "http://"+a[1]
	case <-p.done:
		p.t.Fatalf("rswebhooks exited before serving: %v\n%s", p.exitStatus, p.logText())
	case <-time.After(60 * time.Second):
		p.t.Fatalf("rswebhooks did not start within 60s:\n%s", p.logText())
	}
}

func (p *daemonProc) logText() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.logs.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *daemonProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *daemonProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("rswebhooks did not stop within 30s of SIGTERM")
	}
	if p.exitStatus != nil {
		p.t.Fatalf("rswebhooks exited with %v after SIGTERM:\n%s", p.exitStatus, p.logText())
	}
}

// waitFor polls cond (each call is a real request) until it holds or the
// deadline passes. Polling an external process is the only way to observe it.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

func doJSON(t *testing.T, c *http.Client, method, url, token string, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
