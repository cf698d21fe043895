package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "48m") on a fresh
// directory and unmounts it at cleanup. It needs root (CI runs as root);
// without it the test is skipped with the reason, except in CI.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (needs root and mount(8)): %v %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem is full, like logs or
// backups filling a real disk.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			break
		}
	}
	// The last partial chunk: fill to the byte.
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
}

// diskFixture is a simulator, a receiver, and a daemon whose data dir is dir.
type diskFixture struct {
	t        *testing.T
	sim      *simulator.Server
	token    string
	rcv      *countingReceiver
	rcvURL   string
	args     []string
	c        *http.Client
	p        *daemonProc
	created  int
	operator string
}

func newDiskFixture(t *testing.T, dataDir string, extra ...string) *diskFixture {
	t.Helper()
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	t.Cleanup(up.Close)
	token, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &countingReceiver{secret: "0123456789abcdef0123456789abcdef-disk", seen: map[string]int{}, events: map[string]bool{}}
	rs := httptest.NewServer(rcv)
	t.Cleanup(rs.Close)
	f := &diskFixture{t: t, sim: sim, token: token, rcv: rcv, rcvURL: rs.URL, c: &http.Client{Timeout: 10 * time.Second},
		operator: "operator-token-for-the-disk-tests"}
	f.args = append([]string{"--upstream", up.URL, "--data-dir", dataDir, "--watch-interval", "0",
		"--admin-token", f.operator, "--allow-target", "127.0.0.0/8", "--retry-delays", "50ms,100ms,200ms,400ms,800ms,1s,1s,1s",
		"--shutdown-timeout", "2s", "--store-check-interval", "100ms"}, extra...)
	f.p = startDaemon(t, f.args...)
	return f
}

func (f *diskFixture) register(want int) {
	f.t.Helper()
	status, body := doJSON(f.t, f.c, "POST", f.p.adminURL+"/api/webhooks/registrations", f.operator,
		fmt.Sprintf(`{"WebHookUri":%q,"Secret":%q,"Filters":["categories"]}`, f.rcvURL+"/hook", f.rcv.secret))
	if status != want {
		f.t.Fatalf("registering a webhook: %d %s, want %d", status, body, want)
	}
}

// create makes n categories through the proxy; every one must get the
// simulator's own answer (200 with the new category, as the report server
// answers a create), whatever the store does.
func (f *diskFixture) create(n int) {
	f.t.Helper()
	for i := 0; i < n; i++ {
		f.created++
		status, body := doJSON(f.t, f.c, "POST", f.p.proxyURL+"/api/reportserver/v2/categories", f.token,
			fmt.Sprintf(`{"Name":"disk %d"}`, f.created))
		if status != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"disk %d"`, f.created)) {
			f.t.Fatalf("create %d through the proxy: %d %s, want the report server's 200", f.created, status, body)
		}
	}
}

// metric reads one sample from /metrics (0 when absent).
func (f *diskFixture) metric(name, labels string) float64 {
	f.t.Helper()
	_, body := doJSON(f.t, f.c, "GET", f.p.adminURL+"/metrics", "", "")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		f.t.Fatalf("metric %s{%s} not exported", name, labels)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// readyz returns /readyz's status code and body.
func (f *diskFixture) readyz() (int, string) {
	f.t.Helper()
	status, body := doJSON(f.t, f.c, "GET", f.p.adminURL+"/readyz", "", "")
	return status, string(body)
}

// waitReadyz waits until /readyz (cached for 1s) mentions want.
func (f *diskFixture) waitReadyz(want string) {
	f.t.Helper()
	waitFor(f.t, "/readyz to say "+want, 15*time.Second, func() bool {
		status, body := f.readyz()
		return status == http.StatusOK && strings.Contains(body, want)
	})
}

// stopWithin sends SIGTERM and returns how long the exit took and its error.
func (f *diskFixture) stopWithin(bound time.Duration) (time.Duration, error) {
	f.t.Helper()
	start := time.Now()
	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		f.t.Fatal(err)
	}
	select {
	case <-f.p.done:
	case <-time.After(bound + 10*time.Second):
		f.t.Fatalf("no exit %s after SIGTERM (bound %s):\n%s", time.Since(start), bound, tail(f.p.logText(), 30))
	}
	took := time.Since(start)
	if took > bound {
		f.t.Errorf("exit took %s after SIGTERM, bound %s", took, bound)
	}
	return took, f.p.exitStatus
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// shutdownBound is --shutdown-timeout (2s) + daemon.ShutdownMargin (5s) + slack for
// the process start-up of the signal and the exit.
const shutdownBound = 2*time.Second + 5*time.Second + 2*time.Second

// TestDiskFullDegradesAndRecovers: the data dir on a 48 MiB tmpfs that
// another file fills up while creates flow through the proxy. Every create
// gets the report server's answer; the lost events are counted as disk_full;
// /readyz stays ready and names the condition; admin changes get 503. When
// the file goes, new events are stored and delivered without a restart. A
// SIGTERM while the disk is full ends the process within the bound, saying
// the store was not closed, and a restart finds every event acknowledged
// before the fault.
func TestDiskFullDegradesAndRecovers(t *testing.T) {
	mnt := mountTmpfs(t, "48m")
	f := newDiskFixture(t, filepath.Join(mnt, "data"), "--min-free-space", strconv.Itoa(16<<20))
	f.register(http.StatusCreated)
	f.create(5)
	waitFor(t, "5 events delivered", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 5 })

	ballast := filepath.Join(mnt, "backup.tar")
	fill(t, ballast)
	f.create(10)
	if got := f.metric("rswebhooks_events_lost_total", `reason="disk_full"`); got != 10 {
		t.Errorf("events_lost_total{reason=disk_full} = %v, want 10", got)
	}
	if got := f.metric("rswebhooks_store_degraded", `reason="disk_full"`); got != 1 {
		t.Errorf("store_degraded{reason=disk_full} = %v, want 1", got)
	}
	f.waitReadyz(`"status":"degraded"`)
	if _, body := f.readyz(); !strings.Contains(body, "disk_full") {
		t.Errorf("/readyz does not name the condition: %s", body)
	}
	status, body := doJSON(t, f.c, "POST", f.p.adminURL+"/api/webhooks/registrations", f.operator,
		`{"WebHookUri":"http://127.0.0.1:1/x?noecho=1"}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "disk of its data directory is full") {
		t.Errorf("admin change while degraded: %d %s, want 503 naming the full disk", status, body)
	}
	if n := strings.Count(f.p.logText(), "store degraded: writes refused"); n != 1 {
		t.Errorf("degraded mode logged %d times, want once", n)
	}

	// Space returns: no restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	f.waitReadyz(`"status":"ready"`)
	f.create(5)
	waitFor(t, "the 5 new events delivered", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 10 })
	if got := f.metric("rswebhooks_store_degraded", `reason="disk_full"`); got != 0 {
		t.Errorf("store_degraded{reason=disk_full} = %v after recovery, want 0", got)
	}
	if !strings.Contains(f.p.logText(), "store writable again") {
		t.Error("leaving degraded mode was not logged")
	}

	// Full again, then SIGTERM: the process ends within the bound and says
	// the store was not closed (closing would write into the full disk).
	fill(t, ballast)
	f.create(2)
	took, err := f.stopWithin(shutdownBound)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit after SIGTERM with the disk full: %v, want status 1", err)
	}
	if !strings.Contains(f.p.logText(), "could not be closed cleanly") {
		t.Errorf("the log does not say the store was not closed:\n%s", tail(f.p.logText(), 20))
	}
	t.Logf("SIGTERM with the disk full: exit after %s", took.Round(time.Millisecond))

	// Restart with space: everything acknowledged before is there, and the
	// daemon works as before.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	f.p = startDaemon(t, f.args...)
	f.create(1)
	waitFor(t, "the 11th event delivered after the restart", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 11 })
	f.p.stop()
}
