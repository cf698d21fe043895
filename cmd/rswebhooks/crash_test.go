package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/store"
)

// TestEventsSurviveSIGKILL: 500 concurrent mutating calls through a child
// daemon, SIGKILL in the middle, restart on the same data dir: every call
// whose 2xx reached the client has exactly one event on disk, and no call
// has two.
func TestEventsSurviveSIGKILL(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	token, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := startDaemon(t, "--upstream", up.URL, "--data-dir", dir, "--watch-interval", "0")

	const calls, workers, killAfter = 500, 32, 200
	var (
		acked   sync.Map // request id -> true, for calls whose 2xx reached us
		nAcked  atomic.Int64
		killed  = make(chan struct{})
		once    sync.Once
		next    atomic.Int64
		wg      sync.WaitGroup
		client  = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		refused atomic.Int64
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > calls {
					return
				}
				rid := fmt.Sprintf("crash-%04d", i)
				req, _ := http.NewRequestWithContext(context.Background(), "POST", p.proxyURL+"/api/reportserver/v2/categories",
					strings.NewReader(fmt.Sprintf(`{"Name":"category %d"}`, i)))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Request-Id", rid)
				resp, err := client.Do(req)
				if err != nil {
					refused.Add(1)
					continue
				}
				_, rerr := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if rerr == nil && resp.StatusCode/100 == 2 {
					acked.Store(rid, true)
					if nAcked.Add(1) == killAfter {
						once.Do(func() { p.kill(); close(killed) })
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("only %d calls were acknowledged; the daemon was never killed", nAcked.Load())
	}
	if refused.Load() == 0 {
		t.Fatalf("no call failed after SIGKILL: the kill did not land in the middle of the run")
	}

	// Restart on the same data dir (proves recovery), then stop cleanly and
	// read the events.
	p2 := startDaemon(t, "--upstream", up.URL, "--data-dir", dir, "--watch-interval", "0")
	p2.stop()
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.ListEvents(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	perRequest := map[string]int{}
	for _, e := range events {
		perRequest[e.RequestID]++
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if perRequest[k.(string)] == 0 {
			missing++
		}
		return true
	})
	for rid, n := range perRequest {
		if n > 1 {
			t.Errorf("request %s has %d events, want 1", rid, n)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged calls have no event on disk", missing, nAcked.Load())
	}
	t.Logf("acknowledged %d calls before and around SIGKILL, %d refused after; %d events on disk (%d for calls whose answer never reached the client)",
		nAcked.Load(), refused.Load(), len(events), len(events)-int(nAcked.Load()))
}
