package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rswebhooks/rswebhooks/winsvc"
)

func TestServiceCommandsOutsideWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Fatal("this test describes the non-Windows behaviour; the Windows path is cross-compiled in CI")
	}
	a := &liveAdmin{}
	for _, args := range [][]string{
		{"service", "install", "--", "--upstream", "http://127.0.0.1:83"},
		{"service", "uninstall"},
		{"service", "start", "--name", "other"},
		{"service", "stop"},
	} {
		r := a.run(t, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "only on Windows; use deploy/systemd") {
			t.Errorf("%v: code %d stderr %q", args, r.code, r.stderr)
		}
	}
	ran, err := runAsServiceIfNeeded(func(context.Context) error {
		t.Error("run must not be called outside a Windows service")
		return nil
	})
	if ran || err != nil {
		t.Fatalf("runAsServiceIfNeeded = %v, %v", ran, err)
	}
}

func TestServiceArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{"serve"}},
		{[]string{"--", "--upstream", "u"}, []string{"serve", "--upstream", "u"}},
		{[]string{"serve", "--listen", ":80"}, []string{"serve", "--listen", ":80"}},
		{[]string{"--upstream", "u"}, []string{"serve", "--upstream", "u"}},
	} {
		if got := serviceArgs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("serviceArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
		cfg := winsvc.ServiceConfig{Exe: "/usr/local/bin/rswebhooks", Args: serviceArgs(tc.in)}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: %v", tc.in, err)
		}
	}
}

// TestRedirectOutput checks the event-log plumbing of runAsServiceIfNeeded:
// everything written to os.Stdout and os.Stderr while redirected arrives, one
// entry per line with its level, and the originals come back.
func TestRedirectOutput(t *testing.T) {
	var mu sync.Mutex
	var got []string
	w := &winsvc.LineWriter{Emit: func(l winsvc.Level, s string) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, l.String()+" "+s)
		return nil
	}}
	oldOut, oldErr := os.Stdout, os.Stderr
	restore, err := redirectOutput(w)
	if err != nil {
		t.Fatal(err)
	}
	if os.Stdout == oldOut || os.Stderr == oldErr {
		restore()
		t.Fatal("os.Stdout/os.Stderr were not redirected")
	}
	fmt.Fprintln(os.Stderr, `{"level":"warn","message":"slow receiver"}`)
	fmt.Fprintln(os.Stdout, `{"level":"info","message":"listening"}`)
	fmt.Fprint(os.Stderr, "rswebhooks: --upstream: is required")
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if os.Stdout != oldOut || os.Stderr != oldErr {
		t.Fatal("os.Stdout/os.Stderr were not restored")
	}
	want := []string{
		`warning {"level":"warn","message":"slow receiver"}`,
		`info {"level":"info","message":"listening"}`,
		`error rswebhooks: --upstream: is required`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("event log got %q\nwant %q", got, want)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer healthy.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	a := &liveAdmin{}
	if r := a.run(t, "", "healthcheck", "--url", healthy.URL+"/healthz"); r.code != 0 || !strings.Contains(r.stdout, "200 OK") {
		t.Fatalf("healthy: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	t.Setenv("RSWEBHOOKS_HEALTHCHECK_URL", healthy.URL+"/healthz")
	if r := a.run(t, "", "healthcheck"); r.code != 0 {
		t.Fatalf("healthy via env: code %d stderr %q", r.code, r.stderr)
	}
	for name, u := range map[string]string{"503": sick.URL + "/healthz", "404": healthy.URL + "/nope", "refused": dead.URL + "/healthz", "bad url": "::"} {
		r := a.run(t, "", "healthcheck", "--url", u)
		if r.code == 0 || !strings.Contains(r.stderr, "healthcheck:") {
			t.Errorf("%s: code %d stderr %q", name, r.code, r.stderr)
		}
	}
}

// TestHealthcheckFollowsAdminListen: in a container the serve flags come from
// the environment, so the probe finds a moved admin listener there too.
func TestHealthcheckFollowsAdminListen(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer healthy.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(healthy.URL, "http://"))
	a := &liveAdmin{}
	for _, listen := range []string{":" + port, "0.0.0.0:" + port, "127.0.0.1:" + port} {
		t.Setenv("RSWEBHOOKS_ADMIN_LISTEN", listen)
		if r := a.run(t, "", "healthcheck"); r.code != 0 || !strings.Contains(r.stdout, "127.0.0.1:"+port+"/healthz") {
			t.Errorf("RSWEBHOOKS_ADMIN_LISTEN=%s: code %d stdout %q stderr %q", listen, r.code, r.stdout, r.stderr)
		}
	}
	// An explicit URL still wins.
	t.Setenv("RSWEBHOOKS_ADMIN_LISTEN", "127.0.0.1:1")
	if r := a.run(t, "", "healthcheck", "--url", healthy.URL+"/healthz"); r.code != 0 {
		t.Errorf("--url with RSWEBHOOKS_ADMIN_LISTEN set: code %d stderr %q", r.code, r.stderr)
	}
}
