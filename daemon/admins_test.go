package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// TestAdministratorsWebhooksWithoutServiceAccount: with no service account,
// an administrator verified through the admin API is notified, also after a
// restart; a non-administrator's delivery is skipped (access unknown).
func TestAdministratorsWebhooksWithoutServiceAccount(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	// Delivery is at least once: a delivery whose answer the first daemon
	// had not recorded when it stopped comes again; count each id once.
	arrived := make(chan string, 16)
	var mu sync.Mutex
	seen := map[string]bool{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		dup := seen[r.Header.Get("webhook-id")]
		seen[r.Header.Get("webhook-id")] = true
		mu.Unlock()
		if !dup {
			arrived <- r.URL.Query().Get("who")
		}
	}))
	defer rcv.Close()
	dir := t.TempDir()
	opts := Options{Upstream: up.URL, DataDir: dir, WatchInterval: 0,
		RetryDelays: []time.Duration{}, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

	r := start(t, opts)
	token := func(proxyURL, user string) string {
		resp, err := http.PostForm(proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {user}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Access_token string }
		decode(t, resp, &body)
		return body.Access_token
	}
	register := func(base, tok, who string) {
		req, _ := http.NewRequest("POST", base+"/api/webhooks/registrations",
			strings.NewReader(fmt.Sprintf(`{"WebHookUri":%q,"Filters":["categories"]}`, rcv.URL+"/?noecho=1&who="+who)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("register as %s: %v %v", who, err, resp.Status)
		}
		resp.Body.Close()
	}
	change := func(proxyURL, tok, name string) {
		req, _ := http.NewRequest("POST", proxyURL+"/api/reportserver/v2/categories", strings.NewReader(`{"Name":"`+name+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("create category: %v %v", err, resp.Status)
		}
		resp.Body.Close()
	}
	expect := func(want string) {
		t.Helper()
		select {
		case who := <-arrived:
			if who != want {
				t.Fatalf("notification for %q, want %q", who, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no notification for %s within 20s", want)
		}
	}
	adminTok, aliceTok := token(r.proxyURL, "admin"), token(r.proxyURL, "alice")
	register(r.adminURL, adminTok, "admin")
	register(r.adminURL, aliceTok, "alice")
	change(r.proxyURL, adminTok, "before restart")
	expect("admin")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	r2 := start(t, opts)
	adminTok = token(r2.proxyURL, "admin") // a fresh token; the admin API is not called again
	change(r2.proxyURL, adminTok, "after restart")
	expect("admin")
	waitMetric(t, r2.adminURL, `rswebhooks_deliveries_total{outcome="skipped"}`)
	select {
	case who := <-arrived:
		t.Fatalf("unexpected notification for %q (alice's access cannot be known)", who)
	default:
	}
}
