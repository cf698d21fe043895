package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// callJSON sends a JSON request with a bearer token and decodes a JSON answer.
func callJSON(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

// TestUnmatchedCallBecomesARuleThroughTheDaemon: a call no rule knows is
// listed at /api/webhooks/unmatched with a snippet; a daemon started with
// that snippet as --rules turns the same call into an event, which the
// events feed shows.
func TestUnmatchedCallBecomesARuleThroughTheDaemon(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	const operator = "operator-token-unmatched-to-rule"
	tok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := sim.CreateCategory("Before")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Options{Upstream: up.URL, AdminToken: operator, WatchInterval: 0})
	if st := callJSON(t, "POST", r.proxyURL+"/Category/Rename/"+cat, tok, map[string]string{"Name": "Renamed"}, nil); st != 200 {
		t.Fatalf("rename through the proxy: %d", st)
	}
	var routes []rswebhooks.UnmatchedRoute
	if st := callJSON(t, "GET", r.adminURL+"/api/webhooks/unmatched", operator, nil, &routes); st != 200 || len(routes) != 1 {
		t.Fatalf("unmatched: %d %+v", st, routes)
	}
	if routes[0].Path != "Category/Rename/{categoryId}" || routes[0].Count != 1 {
		t.Fatalf("unmatched route %+v", routes[0])
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}}
	resp, err := http.PostForm(r.proxyURL+"/Token", form)
	if err != nil {
		t.Fatal(err)
	}
	var alice struct {
		AccessToken string `json:"access_token"`
	}
	decode(t, resp, &alice)
	resp.Body.Close()
	if st := callJSON(t, "GET", r.adminURL+"/api/webhooks/unmatched", alice.AccessToken, nil, nil); st != 403 {
		t.Fatalf("unmatched for alice: %d, want 403 (administrators only)", st)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(routes[0].Snippet), 0o600); err != nil {
		t.Fatal(err)
	}
	r = start(t, Options{Upstream: up.URL, AdminToken: operator, WatchInterval: 0, RulesFile: rules})
	if st := callJSON(t, "POST", r.proxyURL+"/Category/Rename/"+cat, tok, map[string]string{"Name": "Again"}, nil); st != 200 {
		t.Fatalf("rename with the rule: %d", st)
	}
	var page rswebhooks.EventPage
	if st := callJSON(t, "GET", r.adminURL+"/api/webhooks/events?filter=categories", operator, nil, &page); st != 200 || len(page.Events) != 1 {
		t.Fatalf("events: %d %+v", st, page)
	}
	if e := page.Events[0]; e.Type != "Updated" || e.ResourceID != cat || e.ResourceName != "Again" || e.Path != "/Category/Rename/"+cat {
		t.Fatalf("event %+v", e)
	}
	var after []rswebhooks.UnmatchedRoute
	if st := callJSON(t, "GET", r.adminURL+"/api/webhooks/unmatched", operator, nil, &after); st != 200 || len(after) != 0 {
		t.Fatalf("unmatched with the rule loaded: %d %+v, want none", st, after)
	}
}

// TestReplayReachesTheReceiver: a replayed event is delivered again, with
// a new delivery id and the same event id, and the feed lists both
// deliveries under the event.
func TestReplayReachesTheReceiver(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	type note struct {
		ID            string `json:"Id"`
		Notifications []struct{ EventId string }
	}
	var mu sync.Mutex
	got := make(chan note, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n note
		_ = json.NewDecoder(r.Body).Decode(&n)
		mu.Lock()
		got <- n
		mu.Unlock()
	}))
	defer recv.Close()
	const operator = "operator-token-replay-reaches"
	r := start(t, Options{Upstream: up.URL, AdminToken: operator, WatchInterval: 0,
		AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	var wh rswebhooks.Webhook
	if st := callJSON(t, "POST", r.adminURL+"/api/webhooks/registrations", operator,
		map[string]any{"WebHookUri": recv.URL + "/h?noecho=1", "Filters": []string{"categories"}}, &wh); st != 201 {
		t.Fatalf("register: %d", st)
	}
	tok, _ := sim.IssueToken("admin")
	if st := callJSON(t, "POST", r.proxyURL+"/api/reportserver/v2/categories", tok, map[string]string{"Name": "Replayed"}, nil); st/100 != 2 {
		t.Fatalf("create: %d", st)
	}
	wait := func() note {
		t.Helper()
		select {
		case n := <-got:
			return n
		case <-time.After(30 * time.Second):
			t.Fatal("no notification within 30s")
		}
		return note{}
	}
	first := wait()
	var res rswebhooks.ReplayResult
	if st := callJSON(t, "POST", r.adminURL+"/api/webhooks/registrations/"+wh.ID+"/replay", operator,
		map[string]any{"Since": time.Now().Add(-time.Hour)}, &res); st != 202 || res.Queued != 1 || !res.Done {
		t.Fatalf("replay: %d %+v", st, res)
	}
	second := wait()
	if second.ID == first.ID || len(second.Notifications) != 1 || second.Notifications[0].EventId != first.Notifications[0].EventId {
		t.Fatalf("replayed notification %+v, first %+v: want a new Id and the same EventId", second, first)
	}
	var page rswebhooks.EventPage
	if st := callJSON(t, "GET", r.adminURL+"/api/webhooks/events", operator, nil, &page); st != 200 || len(page.Events) != 1 || len(page.Events[0].Deliveries) != 2 {
		t.Fatalf("feed after replay: %d %+v", st, page)
	}
	if !strings.EqualFold(page.Events[0].ID, first.Notifications[0].EventId) {
		t.Fatalf("feed event %s, notified %s", page.Events[0].ID, first.Notifications[0].EventId)
	}
}
