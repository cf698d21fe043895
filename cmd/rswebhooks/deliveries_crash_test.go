package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/signature"
)

// countingReceiver verifies and counts notifications by delivery id.
type countingReceiver struct {
	secret string
	slow   atomic.Bool // answer slowly (a receiver under load)
	// gate, when set, holds every notification until it is closed, so
	// nothing is delivered before the test is ready.
	gate   chan struct{}
	mu     sync.Mutex
	seen   map[string]int // delivery id -> 2xx answers given
	events map[string]bool
	total  int
	bad    int
}

func (r *countingReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet {
		io.WriteString(w, req.URL.Query().Get("echo"))
		return
	}
	body, _ := io.ReadAll(req.Body)
	if signature.Verify(r.secret, req.Header.Get("ms-signature"), body) != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-req.Context().Done():
			return
		}
	}
	if r.slow.Load() {
		select { // a slow receiver; the daemon may be killed meanwhile
		case <-time.After(20 * time.Millisecond):
		case <-req.Context().Done():
			return
		}
	}
	var n struct {
		ID            string `json:"Id"`
		Notifications []struct{ EventId string }
	}
	if err := json.Unmarshal(body, &n); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.seen[n.ID]++
	r.total++
	for _, x := range n.Notifications {
		r.events[x.EventId] = true
	}
	r.mu.Unlock()
}

func (r *countingReceiver) counts() (distinct, total, events int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen), r.total, len(r.events)
}

// TestDeliveriesSurviveSIGKILL: 1,000 deliveries pending against a slow
// receiver, SIGKILL, restart: every delivery succeeds at least once.
func TestDeliveriesSurviveSIGKILL(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	token, _ := sim.IssueToken("admin")
	// Held until all 1,000 calls are made, however slow the machine: the
	// kill must find deliveries pending.
	rcv := &countingReceiver{secret: "0123456789abcdef0123456789abcdef-crash", seen: map[string]int{}, events: map[string]bool{}, gate: make(chan struct{})}
	rcv.slow.Store(true)
	rs := httptest.NewServer(rcv)
	defer rs.Close()

	dir := t.TempDir()
	const operator = "operator-token-for-the-crash-test"
	args := []string{"--upstream", up.URL, "--data-dir", dir, "--watch-interval", "0", "--admin-token", operator,
		"--allow-target", "127.0.0.0/8", "--retry-delays", "50ms,100ms,200ms,400ms,800ms,1s,1s,1s"}
	p := startDaemon(t, args...)
	c := &http.Client{Timeout: 10 * time.Second}
	status, body := doJSON(t, c, "POST", p.adminURL+"/api/webhooks/registrations", operator,
		fmt.Sprintf(`{"WebHookUri":%q,"Secret":%q,"Filters":["categories"]}`, rs.URL+"/hook", rcv.secret))
	if status != http.StatusCreated {
		t.Fatalf("registering: %d %s", status, body)
	}

	const n = 1000
	for i := 0; i < n; i++ {
		if status, body := doJSON(t, c, "POST", p.proxyURL+"/api/reportserver/v2/categories", token, fmt.Sprintf(`{"Name":"c%d"}`, i)); status/100 != 2 {
			t.Fatalf("call %d: %d %s", i, status, body)
		}
	}
	close(rcv.gate)
	waitFor(t, "the first 50 deliveries", 60*time.Second, func() bool { d, _, _ := rcv.counts(); return d >= 50 })
	p.kill()
	before, _, _ := rcv.counts()
	if before >= n {
		t.Fatalf("all %d deliveries done before the kill; the test proves nothing", before)
	}

	rcv.slow.Store(false)
	p2 := startDaemon(t, args...)
	waitFor(t, "all 1000 events delivered", 120*time.Second, func() bool { _, _, e := rcv.counts(); return e >= n })
	p2.stop()
	distinct, total, events := rcv.counts()
	if events != n || distinct != n {
		t.Fatalf("receiver saw %d events in %d distinct deliveries, want %d", events, distinct, n)
	}
	if rcv.bad != 0 {
		t.Fatalf("%d notifications had a bad signature", rcv.bad)
	}
	for _, s := range []string{operator, rcv.secret, token} {
		if strings.Contains(p.logText()+p2.logText(), s) {
			t.Errorf("a log line contains the secret %q", s)
		}
	}
	t.Logf("delivered %d before SIGKILL; after restart all %d delivered; %d duplicates (at-least-once)", before, n, total-distinct)
}
