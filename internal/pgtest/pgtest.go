// Package pgtest gives tests a real PostgreSQL: the server named by
// RSWEBHOOKS_TEST_POSTGRES_URL or, when PostgreSQL's binaries are installed
// (Debian's postgresql package), a throw-away cluster it starts itself:
// initdb in a temporary directory, run as the unprivileged postgres user
// when the tests run as root, listening on a free loopback port with its
// unix socket in that directory. Each test gets its own database, so tests
// are isolated and may run in parallel.
//
// One shared cluster serves a whole test binary; call Main from TestMain so
// it is stopped at the end (a test binary that dies takes it down too).
// Tests that stop or restart PostgreSQL start a private one with Start.
//
// When no PostgreSQL is available the tests are skipped with a message
// saying how to get one, except in CI (env CI=true), where they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable with the URL of a PostgreSQL
// server to use instead of a throw-away cluster. Its role needs CREATEDB.
const EnvURL = "RSWEBHOOKS_TEST_POSTGRES_URL"

// EnvBin names the environment variable with PostgreSQL's bin directory
// (default: the newest /usr/lib/postgresql/*/bin).
const EnvBin = "RSWEBHOOKS_TEST_POSTGRES_BIN"

// Cluster is a PostgreSQL server tests create databases in.
type Cluster struct {
	// URL connects to the maintenance database as a superuser (or a role
	// with CREATEDB).
	URL string

	mu    sync.Mutex
	dir   string // temporary directory (data, socket); "" for EnvURL
	bin   string
	owner *account // the account the server runs as; nil: this process's
	port  int
	cmd   *exec.Cmd
	exit  chan error // the running postmaster's exit
	// settings are extra server settings (name=value, passed as -c).
	settings []string
}

// account is a user and group a command runs as.
type account struct{ uid, gid uint32 }

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// Shared returns the test binary's shared cluster, starting it on first
// use. It skips (or, in CI, fails) t when no PostgreSQL is available.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			shared = &Cluster{URL: u}
			return
		}
		shared, sharedErr = start()
	})
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return shared
}

// NewDatabase creates an empty database in the shared cluster, dropped when
// t ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Main runs the tests and then stops the shared cluster; call it from
// TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		_ = shared.Stop()
		shared.remove()
	}
	os.Exit(code)
}

// Launch starts a throw-away cluster outside a test (benchmarks); Close
// stops and removes it. Settings (name=value) are passed to the server as
// -c options, e.g. shared_preload_libraries=pg_stat_statements.
func Launch(settings ...string) (*Cluster, error) { return start(settings...) }

// ServerPid is the process id of the running postmaster (0 when stopped
// or not started here).
func (c *Cluster) ServerPid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Close stops the server and removes its directory.
func (c *Cluster) Close() error {
	err := c.Stop()
	c.remove()
	return err
}

// Start starts a private throw-away cluster for t (one that t may stop and
// restart), removed when t ends. It needs PostgreSQL's binaries.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		_ = c.Stop()
		c.remove()
	})
	return c
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("PostgreSQL is not available (%v): install Debian's postgresql package (initdb under /usr/lib/postgresql/*/bin) or set %s to a server whose role may create databases", err, EnvURL)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// errNoBinaries: PostgreSQL is not installed.
var errNoBinaries = errors.New("no PostgreSQL binaries found")

func binDir() (string, error) {
	if d := os.Getenv(EnvBin); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errNoBinaries
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// start initialises and starts a cluster in a new temporary directory.
func start(settings ...string) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rswebhooks-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin, settings: settings}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			c.remove()
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, uerr := strconv.ParseUint(u.Uid, 10, 32)
		gid, gerr := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(uerr, gerr); err != nil {
			c.remove()
			return nil, fmt.Errorf("the postgres user's uid %q or gid %q: %w", u.Uid, u.Gid, err)
		}
		c.owner = &account{uid: uint32(uid), gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			c.remove()
			return nil, err
		}
	}
	initdb := c.command(filepath.Join(bin, "initdb"), "-D", c.dataDir(), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		c.remove()
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		c.remove()
		return nil, err
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if err := c.Restart(); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	runAs(cmd, c.owner)
	return cmd
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts the cluster's server again after Stop (same data, same
// port) and waits until it accepts connections.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == "" {
		return errors.New("pgtest: a server given by " + EnvURL + " cannot be restarted")
	}
	if c.cmd != nil {
		return errors.New("pgtest: the server is running")
	}
	args := []string{"-D", c.dataDir(), "-k", c.dir, "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "log_min_messages=warning"}
	for _, s := range c.settings {
		args = append(args, "-c", s)
	}
	cmd := c.command(filepath.Join(c.bin, "postgres"), args...)
	dieWithParent(cmd)
	logf, err := os.Create(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait(); logf.Close() }()
	c.cmd, c.exit = cmd, exit
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL)
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case werr := <-exit:
			c.cmd = nil
			log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("postgres exited at start: %w: %s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not accepting connections after 30s: %w", err)
		}
	}
}

// Stop stops the server (fast shutdown: sessions are ended, committed data
// stays) and waits for it to exit.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exit:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exit
	}
	c.cmd = nil
	return nil
}

func (c *Cluster) remove() {
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database, dropped when t ends, and returns
// its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// CreateDatabase creates an empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return "", fmt.Errorf("cluster URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
