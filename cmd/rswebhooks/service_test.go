package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	ran, err := runAsServiceIfNeeded(func(context.Context, io.Writer, io.Writer) error {
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

// eventLogSink is a fake Windows event log: it records entries and sends
// each on ch.
type eventLogSink struct {
	mu  sync.Mutex
	got []string // "severity message"
	ch  chan string
}

func (s *eventLogSink) add(sev, msg string) error {
	s.mu.Lock()
	s.got = append(s.got, sev+" "+msg)
	s.mu.Unlock()
	select {
	case s.ch <- sev + " " + msg:
	default:
	}
	return nil
}

func (s *eventLogSink) Info(_ uint32, msg string) error    { return s.add("info", msg) }
func (s *eventLogSink) Warning(_ uint32, msg string) error { return s.add("warning", msg) }
func (s *eventLogSink) Error(_ uint32, msg string) error   { return s.add("error", msg) }

func (s *eventLogSink) entries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// TestServeLogsToEventLogWithLevels runs the real serve command the way the
// Windows service does (runWithEventLog, with a fake event log): every
// entry arrives at once (no buffering) with the severity of the level the
// logger gave it, in JSON and in console format.
func TestServeLogsToEventLogWithLevels(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			sink := &eventLogSink{ch: make(chan string, 100)}
			open := func(source string) (winsvc.EventLog, func() error, error) {
				if source != "rswebhooks-test" {
					t.Errorf("event log source %q", source)
				}
				return sink, func() error { return nil }, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- runWithEventLog(ctx, "rswebhooks-test", open, func(ctx context.Context, stdout, stderr io.Writer) error {
					return newApp(stdout, stderr).RunContext(ctx, []string{"rswebhooks", "serve",
						"--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
						"--data-dir", t.TempDir(), "--log-format", format, "--watch-interval", "0", "--reconcile-interval", "0"})
				})
			}()
			// Serving is logged at info after the no-service-account warning.
			for {
				e := recvWithin(t, sink.ch, "the serving entry")
				if strings.Contains(e, "rswebhooks serving") {
					break
				}
			}
			cancel()
			if err := recvWithin(t, done, "serve to stop"); err != nil {
				t.Fatal(err)
			}
			got := sink.entries()
			want := map[string]string{"info": `"level":"info"`, "warning": `"level":"warn"`, "error": `"level":"error"`}
			if format == "console" {
				want = map[string]string{"info": " INF ", "warning": " WRN ", "error": " ERR "}
			}
			seen := map[string]bool{}
			for _, e := range got {
				sev, msg, _ := strings.Cut(e, " ")
				seen[sev] = true
				if !strings.Contains(msg, want[sev]) {
					t.Errorf("%s entry does not carry its level mark %q: %s", sev, want[sev], msg)
				}
			}
			if !seen["info"] || !seen["warning"] {
				t.Fatalf("want info and warning entries, got %q", got)
			}
		})
	}
}

// An error that ends the run (a bad flag here) is logged as an error entry.
func TestServiceRunErrorGoesToEventLog(t *testing.T) {
	sink := &eventLogSink{ch: make(chan string, 10)}
	open := func(string) (winsvc.EventLog, func() error, error) { return sink, func() error { return nil }, nil }
	err := runWithEventLog(context.Background(), "rswebhooks", open, func(ctx context.Context, stdout, stderr io.Writer) error {
		return newApp(stdout, stderr).RunContext(ctx, []string{"rswebhooks", "serve", "--upstream", "http://127.0.0.1:1", "--log-level", "loud"})
	})
	if err == nil {
		t.Fatal("serve with --log-level loud succeeded")
	}
	got := sink.entries()
	if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "error rswebhooks: --log-level") {
		t.Fatalf("event log entries %q, want the error last", got)
	}
}

// Without an event log the run still happens.
func TestServiceRunsWithoutEventLog(t *testing.T) {
	ran := false
	err := runWithEventLog(context.Background(), "x", func(string) (winsvc.EventLog, func() error, error) {
		return nil, nil, errors.New("no such source")
	}, func(context.Context, io.Writer, io.Writer) error { ran = true; return nil })
	if err != nil || !ran {
		t.Fatalf("ran %v, err %v", ran, err)
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

// recvWithin waits for a value on ch for at most 30 s.
func recvWithin[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out after 30s waiting for %s", what)
		panic("unreachable")
	}
}
