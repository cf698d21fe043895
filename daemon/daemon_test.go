package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/buildinfo"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/store"
)

// running is a daemon started in-process on loopback ports.
type running struct {
	proxyURL, adminURL string
	stop               func() error
}

func start(t *testing.T, o Options) *running {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.Listen, o.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	ready := make(chan [2]string, 1)
	o.Ready = func(p, a string) { ready <- [2]string{p, a} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	var once sync.Once
	var runErr error
	r := &running{stop: func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}}
	select {
	case a := <-ready:
		r.proxyURL, r.adminURL = "http://"+a[0], "http://"+a[1]
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready within 30s")
	}
	t.Cleanup(func() { r.stop() })
	return r
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, []byte(b.String())
}

func TestReadyzNamesTheUpstreamWhenItIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r := start(t, Options{Upstream: dead, WatchInterval: 0})

	if status, body := get(t, r.adminURL+"/healthz"); status != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s", status, body)
	}
	status, body := get(t, r.adminURL+"/readyz")
	var got struct {
		Status  string
		Reasons map[string]string
		Checks  map[string]string
		Version string
	}
	if err := json.Unmarshal(body, &got); err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("readyz: %d %s (%v)", status, body, err)
	}
	if got.Version == "" {
		t.Errorf("readyz %s: no version", body)
	}
	if got.Reasons["upstream"] == "" || got.Reasons["store"] != "" {
		t.Fatalf("readyz reasons %v: want upstream only", got.Reasons)
	}
	// Every check made is listed, passing ones too.
	if got.Checks["store"] != "ok" || got.Checks["background"] != "ok" || got.Checks["upstream"] != got.Reasons["upstream"] {
		t.Fatalf("readyz checks %v: want store and background ok, upstream failing", got.Checks)
	}
	// The proxy answers 502 with JSON and keeps serving.
	if status, body := get(t, r.proxyURL+"/api/reportserver/v2/reports"); status != http.StatusBadGateway || !strings.HasPrefix(string(body), "{") {
		t.Fatalf("proxy to a dead upstream: %d %s", status, body)
	}
}

func TestReadyWithALiveUpstream(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0, Version: "v1.2.3-readytest"})
	status, body := get(t, r.adminURL+"/readyz")
	var got struct{ Status, Version string }
	if err := json.Unmarshal(body, &got); err != nil || status != 200 {
		t.Fatalf("readyz: %d %s (%v)", status, body, err)
	}
	if got.Status != "ready" || got.Version != "v1.2.3-readytest" {
		t.Fatalf("readyz %s: want status ready and version v1.2.3-readytest", body)
	}
}

// TestBuildInfoMetric: /metrics names the running build, as given in
// Options.Build.
func TestBuildInfoMetric(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	b := buildinfo.Info{Version: "v1.2.3", Commit: "0123abc", Date: "2026-11-30T12:00:00Z", GoVersion: "go1.26.8", Platform: "windows/amd64"}
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0, Build: b})
	_, body := get(t, r.adminURL+"/metrics")
	want := `rswebhooks_build_info{builddate="2026-11-30T12:00:00Z",goarch="amd64",goos="windows",goversion="go1.26.8",revision="0123abc",version="v1.2.3"} 1`
	if !strings.Contains(string(body), want+"\n") {
		t.Fatalf("/metrics lacks %s", want)
	}
	// Version defaults to the build's.
	_, ready := get(t, r.adminURL+"/readyz")
	if !strings.Contains(string(ready), `"version":"v1.2.3"`) {
		t.Fatalf("readyz %s: want version v1.2.3", ready)
	}
}

// TestExportedMetricsMatchDeployList: the names the daemon exports are
// exactly those listed in deploy/metrics.txt, which the dashboard and the
// alert rules are checked against.
func TestExportedMetricsMatchDeployList(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	r := start(t, Options{Upstream: up.URL, ServiceUser: "admin", ServicePassword: "admin", WatchInterval: time.Hour})
	get(t, r.proxyURL+"/api/reportserver/v2/reports") // request counters appear with their first request
	_, body := get(t, r.adminURL+"/metrics")
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exported[strings.Fields(name)[0]] = true
		}
	}
	b, err := os.ReadFile(filepath.Join("..", "deploy", "metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			listed[line] = true
		}
	}
	var missing, unlisted []string
	for name := range listed {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "rswebhooks_") && !listed[name] {
			unlisted = append(unlisted, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(unlisted)
	if len(missing) > 0 {
		t.Errorf("deploy/metrics.txt lists names the daemon does not export: %v", missing)
	}
	if len(unlisted) > 0 {
		t.Errorf("the daemon exports rswebhooks_ names deploy/metrics.txt does not list: %v", unlisted)
	}
	// The names dashboards and alerts built outside this repository rely on
	// (README "Monitor") are exported.
	for _, name := range []string{"rswebhooks_proxy_requests_total", "rswebhooks_proxy_request_duration_seconds",
		"rswebhooks_upstream_errors_total", "rswebhooks_events_total", "rswebhooks_events_lost_total",
		"rswebhooks_unmatched_mutations_total", "rswebhooks_deliveries_total", "rswebhooks_delivery_attempts_total",
		"rswebhooks_delivery_attempt_duration_seconds", "rswebhooks_delivery_queue_depth", "rswebhooks_delivery_lag_seconds",
		"rswebhooks_webhooks", "rswebhooks_build_info", "go_goroutines", "process_resident_memory_bytes"} {
		if !exported[name] {
			t.Errorf("contract metric %s is not exported", name)
		}
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "--upstream: is required"},
		{Options{Upstream: "http://rs?x=1"}, "--upstream: must not carry a query"},
		{Options{Upstream: "http://rs", ServiceUser: "svc"}, "--service-user: and --service-password must be given together"},
		{Options{Upstream: "http://rs", ServiceToken: "t", ServiceUser: "u", ServicePassword: "p"}, "--service-token: and --service-user/--service-password are alternatives"},
		{Options{Upstream: "http://rs", WatchInterval: time.Millisecond}, "--watch-interval: must be 0 (off) or at least 1s"},
		{Options{Upstream: "http://rs", ReconcileInterval: -time.Second}, "--reconcile-interval: must be 0 (off) or at least 1s"},
		{Options{Upstream: "http://rs", APIVersion: "v9"}, `--api-version: must be v2 or v3`},
		{Options{Upstream: "http://rs", AdminToken: "short"}, "--admin-token: must be at least 16 characters"},
		{Options{Upstream: "http://rs", Listen: ":9000", AdminListen: ":9000"}, "--admin-listen: must differ from --listen"},
		{Options{Upstream: "http://rs", PostgresURL: "postgres://rs:pw@db/rsw?sslmode=sometimes"}, "--postgres-url: cannot be parsed"},
	} {
		err := tc.o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
	ok := Options{Upstream: "https://rs.example/reporting"}
	if err := ok.Validate(); err != nil {
		t.Errorf("a valid configuration was refused: %v", err)
	}
}

func TestRegistrationsOnProxy(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	const operator = "operator-token-registrations-on-proxy"
	r := start(t, Options{Upstream: up.URL, AdminToken: operator, RegistrationsOnProxy: true, WatchInterval: 0})
	req, _ := http.NewRequest("GET", r.proxyURL+"/api/webhooks/registrations", nil)
	req.Header.Set("Authorization", "Bearer "+operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("registrations on the proxy listener: %d", resp.StatusCode)
	}
	// Anything else still reaches the report server (the simulator answers
	// 404 for /api/webhooks/incoming, and the proxy passes that on).
	if status, _ := get(t, r.proxyURL+"/api/webhooks/incoming/custom"); status != http.StatusNotFound || sim.Count("GET", "/api/webhooks/incoming") != 1 {
		t.Fatalf("other /api/webhooks paths: %d, %d upstream requests; want the upstream's 404", status, sim.Count("GET", "/api/webhooks/incoming"))
	}
	if sim.Count("GET", "/api/webhooks/registrations") != 0 {
		t.Fatal("the registrations request reached the report server")
	}
	if status, _ := get(t, r.proxyURL+"/api/reportserver/v2/reports"); status != http.StatusUnauthorized {
		t.Fatalf("report-server API through the proxy: %d, want the simulator's 401", status)
	}
}

func TestAdminListenerServesTheWebhooksPage(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0})
	resp, err := http.Get(r.adminURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /: %d %q CSP %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
	}
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", resp.Request.URL.Path, err)
	}
}

// TestVirtualDirectory: a report server hosted under /reporting. Clients use
// /reporting/... through the proxy; events fire for API calls below it, and
// the server's own Location headers work as sent.
func TestVirtualDirectory(t *testing.T) {
	sim := simulator.New(simulator.Options{Prefix: "/reporting"})
	up := httptest.NewServer(sim)
	defer up.Close()
	r := start(t, Options{Upstream: up.URL + "/reporting", WatchInterval: 0})
	tok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", r.proxyURL+"/reporting/api/reportserver/v3/categories", strings.NewReader(`{"Name":"vdir"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.Contains(loc, "/reporting/api/") {
		t.Fatalf("create under /reporting: %d, Location %q", resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	req, _ = http.NewRequest("GET", r.proxyURL+u.Path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("following Location %q through the proxy: %v %v", loc, err, resp.Status)
	} else {
		resp.Body.Close()
	}
	waitMetric(t, r.adminURL, `rswebhooks_events_total{event="Created",type="categories"}`)
}

// TestRegistrationObeysTheAddressPolicy: even with ?noecho (no echo request
// is made) a receiver address the delivery policy refuses is not stored.
func TestRegistrationObeysTheAddressPolicy(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	const operator = "operator-token-address-policy"
	r := start(t, Options{Upstream: up.URL, AdminToken: operator, WatchInterval: 0})
	for _, uri := range []string{"http://169.254.169.254/latest?noecho=1", "http://127.0.0.1:9/hook?noecho=1"} {
		req, _ := http.NewRequest("POST", r.adminURL+"/api/webhooks/registrations", strings.NewReader(`{"WebHookUri":"`+uri+`"}`))
		req.Header.Set("Authorization", "Bearer "+operator)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Message string }
		decode(t, resp, &body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.Message, "--allow-target") {
			t.Errorf("%s: %d %q, want 400 naming the address policy", uri, resp.StatusCode, body.Message)
		}
	}
}

// TestLogLinesHaveNoDuplicateKeys: each part adds its own component field
// once; log pipelines reject objects with repeated keys.
func TestLogLinesHaveNoDuplicateKeys(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	var logs testutil.SyncBuffer
	r := start(t, Options{Upstream: up.URL, ServiceUser: "admin", ServicePassword: "admin", WatchInterval: time.Hour,
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
	tok, _ := sim.IssueToken("admin")
	req, _ := http.NewRequest("POST", r.proxyURL+"/api/reportserver/v2/categories", strings.NewReader(`{"Name":"logs"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	get(t, r.adminURL+"/readyz")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	components := map[string]bool{}
	for _, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %q", line)
		}
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			key := k.(string)
			if seen[key] {
				t.Errorf("key %q repeated in %s", key, line)
			}
			seen[key] = true
			var v any
			dec.Decode(&v)
			if key == "component" {
				components[v.(string)] = true
			}
		}
	}
	for _, c := range []string{"store", "proxy", "detect"} {
		if !components[c] {
			t.Errorf("no log line from component %q in %d lines", c, len(lines))
		}
	}
}

// TestAdminListenerMethods: /healthz, /readyz and /metrics answer other
// methods with 405 and Allow (not the web page's 404); the web page is
// served for GET and HEAD only.
func TestAdminListenerMethods(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/healthz", 200}, {"HEAD", "/healthz", 200}, {"POST", "/healthz", 405}, {"DELETE", "/healthz", 405},
		{"GET", "/readyz", 200}, {"PUT", "/readyz", 405},
		{"GET", "/metrics", 200}, {"HEAD", "/metrics", 200}, {"POST", "/metrics", 405},
		{"GET", "/", 200}, {"HEAD", "/app.js", 200}, {"POST", "/", 405}, {"GET", "/nothing-here", 404},
	} {
		req, _ := http.NewRequest(tc.method, r.adminURL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q, want GET, HEAD", tc.method, tc.path, resp.Header.Get("Allow"))
		}
		if tc.status == 405 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: Content-Type %q, want JSON", tc.method, tc.path, resp.Header.Get("Content-Type"))
		}
	}
}

// A store locked by another process beyond the bound: with a service
// account (watcher, reconciler) the daemon still serves the report server,
// stays ready with the store named as degraded, and opens the store once
// the other holder lets go. With StoreRequired it refuses to start.
func TestServesWithAnUnopenedStore(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	dir := t.TempDir()
	holder, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Upstream: up.URL, DataDir: dir, ServiceUser: "admin", ServicePassword: "admin",
		WatchInterval: time.Hour, StoreCheckInterval: 20 * time.Millisecond}
	strict := o
	strict.StoreRequired, strict.Listen, strict.AdminListen = true, "127.0.0.1:0", "127.0.0.1:0"
	if err := Run(context.Background(), strict); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Run with StoreRequired on a locked store: %v, want ErrLocked", err)
	}

	r := start(t, o)
	direct, want := get(t, up.URL+"/api/reportserver/v2/reports")
	if status, body := get(t, r.proxyURL+"/api/reportserver/v2/reports"); status != direct || string(body) != string(want) {
		t.Fatalf("proxy with an unopened store: %d %s, want the report server's %d %s", status, body, direct, want)
	}
	status, body := get(t, r.adminURL+"/readyz")
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"degraded"`) || !strings.Contains(string(body), "locked") {
		t.Fatalf("readyz with a locked store: %d %s", status, body)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body = get(t, r.adminURL+"/readyz")
		if status == http.StatusOK && strings.Contains(string(body), `"status":"ready"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store was not opened after the lock was released: %d %s", status, body)
		}
		tick := time.NewTimer(50 * time.Millisecond) // polling /readyz, cached for 1s
		<-tick.C
	}
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
