// Package benchrig starts what the benchmarks under bench/ run against: a
// real `rswebhooks serve` process in front of a fast upstream that answers
// like the report server, loopback receivers, and the delivery engine on a
// store of the caller's choice. Each benchmark's main keeps only its own
// load and measurement.
package benchrig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// Token is the operator token every daemon is started with.
const Token = "bench-operator-token-0123456789abcdef"

// StartUpstream serves, on a loopback port, what the benchmarks need of the
// report server: each request's body is drained; GET and HEAD get an empty
// list, anything else a small Category with a fresh Id (a create). It
// returns the address (host:port); the server lives as long as the process.
func StartUpstream() (string, error) {
	var seq atomic.Int64
	addr, _, err := Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			_, _ = io.WriteString(w, `[]`)
			return
		}
		fmt.Fprintf(w, `{"Id":"c%010d","Name":"bench"}`, seq.Add(1))
	}))
	return addr, err
}

// Serve serves h on a fresh loopback port and returns its address
// (host:port) and a function that closes the server.
func Serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// Echo answers the registrations API's check of a new webhook's URI (a
// request with ?echo=X gets X back) and passes every other request to h.
func Echo(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := r.URL.Query().Get("echo"); e != "" {
			_, _ = io.WriteString(w, e)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// FreePort returns a loopback address nothing listens on right now.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Options says how to start `rswebhooks serve`.
type Options struct {
	// Bin is the rswebhooks binary; required.
	Bin string
	// Upstream is the report server's URL; required.
	Upstream string
	// Args are more serve flags, after those every run has (proxy and
	// admin listeners on free loopback ports, a fresh data directory, the
	// operator Token, loopback delivery targets, no execution watcher,
	// warn-level logs).
	Args []string
	// Env is the daemon's environment; nil means this process's.
	Env []string
	// ReadyPath is the admin path polled until it answers 200; "" means
	// /readyz.
	ReadyPath string
}

// Daemon is a running `rswebhooks serve`.
type Daemon struct {
	// Proxy and Admin are the listeners' addresses (host:port).
	Proxy, Admin string
	cmd          *exec.Cmd
	dir          string
}

// Start starts the daemon in a fresh temporary directory (its data and
// its stderr in daemon.log; stdout, the access log, is discarded as a
// pipe to journald would take it) and waits up to 30 s until it is ready.
func Start(o Options) (*Daemon, error) {
	dir, err := os.MkdirTemp("", "rsw-bench-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{dir: dir}
	if err := d.start(o); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

func (d *Daemon) start(o Options) error {
	var err error
	if d.Proxy, err = FreePort(); err != nil {
		return err
	}
	if d.Admin, err = FreePort(); err != nil {
		return err
	}
	args := []string{"serve", "--upstream", o.Upstream, "--listen", d.Proxy, "--admin-listen", d.Admin,
		"--data-dir", filepath.Join(d.dir, "data"), "--admin-token", Token, "--allow-target", "127.0.0.0/8",
		"--watch-interval", "0", "--log-level", "warn"}
	d.cmd = exec.Command(o.Bin, append(args, o.Args...)...)
	d.cmd.Env = o.Env
	d.cmd.Stdout = io.Discard
	errLog, err := os.Create(filepath.Join(d.dir, "daemon.log"))
	if err != nil {
		return err
	}
	defer errLog.Close()
	d.cmd.Stderr = errLog
	if err := d.cmd.Start(); err != nil {
		return err
	}
	path := o.ReadyPath
	if path == "" {
		path = "/readyz"
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.Admin + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond) // polling another process's start
	}
	d.stopProcess()
	b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	return fmt.Errorf("daemon not ready on %s within 30s: %s", path, b)
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Stop ends the daemon (SIGTERM, SIGKILL after 20 s) and removes its
// directory.
func (d *Daemon) Stop() {
	d.stopProcess()
	_ = os.RemoveAll(d.dir)
}

func (d *Daemon) stopProcess() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

// Register registers a webhook through the registrations API with the
// operator token; reg is the registration's JSON body.
func (d *Daemon) Register(reg any) error {
	b, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+d.Admin+"/api/webhooks/registrations", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
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
