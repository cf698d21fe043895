package demo

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

func TestDemoDeliversVerifiedNotifications(t *testing.T) {
	var out testutil.SyncBuffer
	var metrics string
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := Run(ctx, Options{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", SimListen: "127.0.0.1:0",
		Out: &out, Logger: zerolog.Nop(),
		Scripted: func(_, adminURL string) {
			// The receiver answers before the engine records the success:
			// poll the metrics (bounded) until the fourth is counted.
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				resp, err := http.Get(adminURL + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				resp.Body.Close()
				if metrics = b.String(); strings.Contains(metrics, `rswebhooks_deliveries_total{outcome="succeeded"} 4`) {
					return
				}
				<-time.After(20 * time.Millisecond)
			}
		},
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"categories Created", "reports    Created", "reports    Updated", "reports    Deleted",
		"4 notifications delivered and verified",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	// Each call is followed by the notification it caused, in order.
	at := 0
	for _, step := range []string{
		"POST   /api/reportserver/v2/categories → 200", "✓ categories Created",
		"POST   /api/reportserver/reports → 200", "✓ reports    Created",
		"PUT    /api/reportserver/reports/", "✓ reports    Updated",
		"GET    /api/reportserver/v2/reports → 200", "no notification",
		"DELETE /api/reportserver/reports/", "✓ reports    Deleted",
		"4 notifications delivered and verified",
	} {
		i := strings.Index(text[at:], step)
		if i < 0 {
			t.Fatalf("demo output lacks %q after byte %d (out of order?):\n%s", step, at, text)
		}
		at += i + len(step)
	}
	if n := strings.Count(text, "✓"); n != 4 {
		t.Errorf("%d verified deliveries printed, want 4:\n%s", n, text)
	}
	if strings.Contains(text, "✗") {
		t.Errorf("a notification failed verification:\n%s", text)
	}
	if !strings.Contains(metrics, `rswebhooks_deliveries_total{outcome="succeeded"} 4`) {
		t.Errorf("metrics do not count 4 successful deliveries:\n%s", grepLines(metrics, "rswebhooks_deliveries_total"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDemoSaysWhatStops: after the script the demo keeps serving; Ctrl-C
// (the context ending) prints what stops, and the data directory is gone.
func TestDemoSaysWhatStops(t *testing.T) {
	var out testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", SimListen: "127.0.0.1:0", Out: &out, Logger: zerolog.Nop()})
	}()
	waitFor(t, "the demo serving", func() bool { return strings.Contains(out.String(), "The demo keeps serving") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30s of Ctrl-C")
	}
	text := out.String()
	i := strings.Index(text, "Stopping: the proxy (http://127.0.0.1:")
	if i < 0 || !strings.Contains(text[i:], "the simulator") || !strings.Contains(text[i:], "demo receiver") {
		t.Fatalf("no line saying what stops:\n%s", text)
	}
	dir := strings.Fields(text[strings.Index(text[i:], "data directory ")+i+len("data directory "):])[0]
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo's data directory %s is still there (%v)", dir, err)
	}
}

// waitFor polls cond until it holds, at most 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestReceiverEchoIsPlainText: the receiver answers the echo check with
// exactly the echo value, as plain text a browser will not sniff into HTML.
func TestReceiverEchoIsPlainText(t *testing.T) {
	srv := httptest.NewServer(NewReceiver("whsec_dGVzdA==", io.Discard))
	defer srv.Close()
	const echo = "<script>alert(1)</script>"
	resp, err := http.Get(srv.URL + "/hook?echo=" + url.QueryEscape(echo))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != echo {
		t.Errorf("body %q, want the echo value %q", b, echo)
	}
	if ct, nosniff := resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"); ct != "text/plain; charset=utf-8" || nosniff != "nosniff" {
		t.Errorf("Content-Type %q, X-Content-Type-Options %q; want text/plain; charset=utf-8 and nosniff", ct, nosniff)
	}
}
