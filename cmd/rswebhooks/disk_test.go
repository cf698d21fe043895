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
	f.waitReadyz(`"status":"degraded"`) // a write within 10 ms of a passed check may still be stored
	f.create(10)
	if got := f.metric("rswebhooks_events_lost_total", `reason="disk_full"`); got != 10 {
		t.Errorf("events_lost_total{reason=disk_full} = %v, want 10", got)
	}
	if got := f.metric("rswebhooks_store_degraded", `reason="disk_full"`); got != 1 {
		t.Errorf("store_degraded{reason=disk_full} = %v, want 1", got)
	}
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

// waitLost waits until events_lost_total{reason} reaches n.
func (f *diskFixture) waitLost(reason string, n float64) {
	f.t.Helper()
	waitFor(f.t, fmt.Sprintf("%v events lost as %s", n, reason), 15*time.Second, func() bool {
		return f.metric("rswebhooks_events_lost_total", `reason="`+reason+`"`) == n
	})
}

// TestDataDirRemoved: the data directory is deleted under the running
// daemon. The proxy keeps answering with the report server's responses,
// events are counted lost as unwritable at once (no stall behind Badger's
// flush retries), /readyz names it, and Badger's retry loop does not flood
// the log. When the directory comes back, everything committed before is
// copied into it and the daemon delivers again without a restart. Removed
// again, SIGTERM ends the process within the bound, saying the store was
// not closed.
func TestDataDirRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	f := newDiskFixture(t, dir)
	f.register(http.StatusCreated)
	f.create(3)
	waitFor(t, "3 events delivered", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 3 })

	removeLiveDir(t, dir)
	f.waitReadyz(`"status":"degraded"`) // a write within 10 ms of a passed check may still land in the old files
	f.create(5)
	f.waitLost("unwritable", 5)
	if _, body := f.readyz(); !strings.Contains(body, "was removed") {
		t.Errorf("/readyz does not say the directory was removed: %s", body)
	}
	if got := f.metric("rswebhooks_store_degraded", `reason="unwritable"`); got != 1 {
		t.Errorf("store_degraded{reason=unwritable} = %v, want 1", got)
	}
	f.create(20)
	f.waitLost("unwritable", 25)
	if n := strings.Count(f.p.logText(), `"lib":"badger","level":"error"`) + strings.Count(f.p.logText(), `"level":"error","lib":"badger"`); n > 3 {
		t.Errorf("Badger logged %d error lines after the directory was removed, want at most 3", n)
	}

	// The directory comes back: the registration made before is still
	// there, without a restart.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f.waitReadyz(`"status":"ready"`)
	f.create(1)
	waitFor(t, "an event delivered after the directory came back", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 4 })

	removeLiveDir(t, dir)
	f.waitReadyz(`"status":"degraded"`) // a write within 10 ms of a passed check may still land in the old files
	f.create(1)
	f.waitLost("unwritable", 26)
	_, err := f.stopWithin(shutdownBound)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit after SIGTERM with the directory removed: %v, want status 1", err)
	}
	if !strings.Contains(f.p.logText(), "could not be closed cleanly") {
		t.Errorf("the log does not say the store was not closed:\n%s", tail(f.p.logText(), 20))
	}
}

// removeLiveDir removes a directory the daemon is writing to, as an
// operator's rm -r would: a file Badger creates between the listing and the
// final rmdir makes one pass fail with "directory not empty", so it tries
// again (the daemon cannot keep creating files in a directory that is gone).
func removeLiveDir(t *testing.T, dir string) {
	t.Helper()
	var err error
	for range 100 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
	}
	t.Fatalf("remove the data directory: %v", err)
}

// mountExt4 makes a small ext4 filesystem image, mounts it with
// errors=remount-ro through a loop device and returns the mount point and
// the device name (for /sys/fs/ext4/<dev>).
func mountExt4(t *testing.T, size int64) (mnt, img, dev string) {
	t.Helper()
	base := t.TempDir()
	img, mnt = filepath.Join(base, "disk.img"), filepath.Join(base, "mnt")
	skip := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		skip("cannot make an ext4 filesystem (needs mkfs.ext4, e2fsprogs): %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, mnt).CombinedOutput(); err != nil {
		skip("cannot mount an ext4 image on a loop device (needs root and /dev/loop*): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", mnt).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", mnt, err)
	}
	return mnt, img, filepath.Base(strings.TrimSpace(string(out)))
}

// TestReadOnlyFilesystem: the data directory's filesystem turns read-only
// under the running daemon, as ext4 does on an I/O error with
// errors=remount-ro (a plain "mount -o remount,ro" is refused while Badger
// holds its files open for writing). The proxy keeps answering, events are
// counted lost as unwritable, /readyz names it, SIGTERM ends within the
// bound; after fsck and a remount, a restart finds everything written
// before the fault (--sync-writes: without it, writes not yet flushed by the
// kernel are lost with the filesystem, as in a power loss).
func TestReadOnlyFilesystem(t *testing.T) {
	mnt, img, dev := mountExt4(t, 96<<20)
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount,ro of an idle filesystem: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount,rw: %v %s", err, out)
	}
	dir := filepath.Join(mnt, "data")
	f := newDiskFixture(t, dir, "--sync-writes", "--min-free-space", strconv.Itoa(8<<20))
	f.register(http.StatusCreated)
	f.create(3)
	waitFor(t, "3 events delivered", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 3 })

	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err == nil {
		t.Log("remount,ro succeeded with Badger's files open")
	} else {
		t.Logf("remount,ro refused while Badger holds its files (%s); failing the filesystem instead", strings.TrimSpace(string(out)))
		if err := os.WriteFile("/sys/fs/ext4/"+dev+"/trigger_fs_error", []byte("1"), 0o200); err != nil {
			t.Fatalf("triggering an ext4 error: %v", err)
		}
	}
	f.waitReadyz("unwritable")
	f.create(5)
	f.waitLost("unwritable", 5)
	_, err := f.stopWithin(shutdownBound)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit after SIGTERM on a read-only filesystem: %v, want status 1", err)
	}

	// The operator's way back: unmount, fsck, mount, restart.
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	if out, err := exec.Command("e2fsck", "-fy", img).CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() > 2 { // 1, 2: errors corrected
			t.Fatalf("e2fsck: %v %s", err, out)
		}
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount again: %v %s", err, out)
	}
	f.p = startDaemon(t, f.args...)
	status, body := doJSON(t, f.c, "GET", f.p.adminURL+"/api/webhooks/registrations", f.operator, "")
	if status != http.StatusOK || !strings.Contains(string(body), f.rcvURL) {
		t.Fatalf("registrations after the restart: %d %s\n%s", status, body, tail(f.p.logText(), 40))
	}
	f.create(1)
	waitFor(t, "an event delivered after the restart", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 4 })
	f.p.stop()
}

// TestCorruptManifest: a damaged MANIFEST at start. With --store-required
// the daemon refuses to start, saying why; without it, it serves the report
// server (events counted lost as unopened, /readyz and the metric name it).
// "store check" says what is wrong; "store repair", run while the daemon
// serves, restores the registrations into a new store, and the running
// daemon opens it and delivers again without a restart.
func TestCorruptManifest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	f := newDiskFixture(t, dir)
	f.register(http.StatusCreated)
	f.register(http.StatusCreated)
	f.create(2)
	waitFor(t, "2 events delivered", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 2 })
	f.p.stop()

	mf, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mf.WriteAt([]byte("XXXXXXXX"), 0); err != nil {
		t.Fatal(err)
	}
	mf.Close()

	strict := exec.Command(binPath, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store-required"}, f.args...)...)
	out, err := strict.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(out), "--store-required") || !strings.Contains(strings.ToLower(string(out)), "manifest") {
		t.Fatalf("--store-required with a damaged MANIFEST: %v\n%s", err, tail(string(out), 10))
	}

	f.p = startDaemon(t, f.args...)
	f.create(3)
	f.waitLost("unopened", 3)
	f.waitReadyz(`"status":"degraded"`)
	if _, body := f.readyz(); !strings.Contains(body, "unopened") || !strings.Contains(strings.ToLower(body), "manifest") {
		t.Errorf("/readyz does not say why the store is unavailable: %s", body)
	}
	if got := f.metric("rswebhooks_store_degraded", `reason="unopened"`); got != 1 {
		t.Errorf("store_degraded{reason=unopened} = %v, want 1", got)
	}
	if status, body := doJSON(t, f.c, "GET", f.p.adminURL+"/api/webhooks/registrations", f.operator, ""); status != http.StatusServiceUnavailable {
		t.Errorf("registrations while unopened: %d %s, want 503", status, body)
	}

	out, err = exec.Command(binPath, "store", "check", "--data-dir", dir).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "NOT OK") {
		t.Errorf("store check on a damaged store: %v\n%s", err, out)
	}
	out, err = exec.Command(binPath, "store", "repair", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restored 2 registrations") {
		t.Fatalf("store repair: %v\n%s", err, out)
	}
	t.Logf("store repair said:\n%s", out)

	f.waitReadyz(`"status":"ready"`)
	status, body := doJSON(t, f.c, "GET", f.p.adminURL+"/api/webhooks/registrations", f.operator, "")
	if status != http.StatusOK || strings.Count(string(body), f.rcvURL) != 2 {
		t.Fatalf("registrations after the repair: %d %s", status, body)
	}
	f.create(1)
	waitFor(t, "an event delivered after the repair", 30*time.Second, func() bool { _, _, e := f.rcv.counts(); return e == 3 })
	out, err = exec.Command(binPath, "store", "check", "--data-dir", dir).CombinedOutput()
	if !errors.As(err, &ee) || !strings.Contains(string(out), "running rswebhooks holds it") {
		t.Errorf("store check while the daemon holds the store: %v\n%s", err, out)
	}
	f.p.stop()
	out, err = exec.Command(binPath, "store", "check", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "webhooks: 2 active") {
		t.Errorf("store check after the repair: %v\n%s", err, out)
	}
}
