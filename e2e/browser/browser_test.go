package browser_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/daemon"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// chromiumPath finds Chromium. Without it the test is skipped, except in CI
// (CI=true), where a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is required in CI (Debian: apt-get install chromium) or set CHROMIUM to its path")
	}
	t.Skip("Chromium not found (install chromium or set CHROMIUM); the browser tests need it")
	return ""
}

// receiver is a webhook receiver on loopback: it answers the echo check and
// records notifications; fail makes it answer 500.
type receiver struct {
	fail   atomic.Bool
	echoes atomic.Int32
	mu     sync.Mutex
	posts  []notification
}

type notification struct {
	ID            string `json:"Id"`
	Attempt       int    `json:"Attempt"`
	Notifications []struct {
		Action    string `json:"Action"`
		EventType string `json:"EventType"`
	} `json:"Notifications"`
	path   string
	status int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		if e := r.URL.Query().Get("echo"); e != "" {
			rc.echoes.Add(1)
			io.WriteString(w, e)
			return
		}
		http.NotFound(w, r)
	case http.MethodPost:
		var n notification
		_ = json.NewDecoder(r.Body).Decode(&n)
		n.path, n.status = r.URL.Path, http.StatusOK
		if rc.fail.Load() {
			n.status = http.StatusInternalServerError
		}
		rc.mu.Lock()
		rc.posts = append(rc.posts, n)
		rc.mu.Unlock()
		w.WriteHeader(n.status)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (rc *receiver) received() []notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]notification(nil), rc.posts...)
}

// env is the running system: simulator, daemon and receiver; uiURL is the
// daemon's admin listener, which serves the page and the API.
type env struct {
	sim      *simulator.Server
	rc       *receiver
	rcURL    string
	proxyURL string
	uiURL    string
	operator string
}

const operatorToken = "e2e-operator-token-0123456789abcdef"

func start(t *testing.T) *env {
	t.Helper()
	return startWithDelays(t, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond})
}

// startWithDelays starts the system with the given retry schedule.
func startWithDelays(t *testing.T, retryDelays []time.Duration) *env {
	t.Helper()
	e := &env{sim: simulator.New(simulator.Options{Logger: zerolog.Nop()}), rc: &receiver{}, operator: operatorToken}
	simSrv := httptest.NewServer(e.sim)
	t.Cleanup(simSrv.Close)
	rcSrv := httptest.NewServer(e.rc)
	t.Cleanup(rcSrv.Close)
	e.rcURL = rcSrv.URL

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			Upstream:        simSrv.URL,
			Listen:          "127.0.0.1:0",
			AdminListen:     "127.0.0.1:0",
			DataDir:         t.TempDir(),
			AdminToken:      e.operator,
			ServiceUser:     "admin",
			ServicePassword: "admin",
			RetryDelays:     retryDelays,
			AttemptTimeout:  5 * time.Second,
			AllowTargets:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			ShutdownTimeout: 5 * time.Second,
			Logger:          zerolog.Nop(),
			Ready:           func(p, a string) { ready <- [2]string{p, a} },
		})
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("daemon not ready after 20s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop within 20s")
		}
	})
	e.proxyURL = "http://" + addrs[0]

	// The page and the API come from the daemon's own admin listener, as
	// operators use it.
	e.uiURL = "http://" + addrs[1]
	return e
}

// call makes an API request on the admin listener.
func (e *env) call(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.uiURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

func (e *env) login(t *testing.T, user string) string {
	t.Helper()
	var res struct {
		Token string `json:"access_token"`
	}
	e.call(t, "POST", "/api/webhooks/login", "", map[string]string{"username": user, "password": user}, 200, &res)
	return res.Token
}

type webhook struct {
	ID          string   `json:"Id"`
	URI         string   `json:"WebHookUri"`
	Secret      string   `json:"Secret"`
	Description string   `json:"Description"`
	IsPaused    bool     `json:"IsPaused"`
	Filters     []string `json:"Filters"`
	// Properties as stored, number text and all.
	Properties   map[string]json.RawMessage `json:"Properties"`
	Ordered      bool                       `json:"Ordered"`
	MaxPerSecond float64                    `json:"MaxPerSecond"`
}

func (e *env) webhooks(t *testing.T, token string) map[string]webhook {
	t.Helper()
	var ws []webhook
	e.call(t, "GET", "/api/webhooks/registrations", token, nil, 200, &ws)
	out := map[string]webhook{}
	for _, w := range ws {
		out[w.Description] = w
	}
	return out
}

// change makes a report-server change through the proxy as admin: creating
// a category, which alice may read.
func (e *env) change(t *testing.T, name string) {
	t.Helper()
	tok, err := e.sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"Name": name})
	req, _ := http.NewRequest("POST", e.proxyURL+"/api/reportserver/v2/categories", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("creating category %q: status %d", name, res.StatusCode)
	}
}

// page drives one browser tab; every wait is bounded.
type page struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	bad []string // requests outside the origin, script errors, CSP reports
}

func (p *page) problem(s string) {
	p.mu.Lock()
	p.bad = append(p.bad, s)
	p.mu.Unlock()
}

func (p *page) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bad...)
}

func (p *page) fail(what string, err error) {
	p.t.Helper()
	if b, serr := chromedp.Run(p.ctx, chromedp.CaptureScreenshot()); serr == nil {
		f := filepath.Join(p.t.TempDir(), "failure.png")
		if os.WriteFile(f, b, 0o644) == nil {
			p.t.Logf("screenshot at failure: %s", f)
		}
	}
	if txt, terr := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`)); terr == nil {
		p.t.Logf("page text at failure:\n%s", txt)
	}
	if el, ferr := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : 'none'`)); ferr == nil {
		p.t.Logf("focus at failure: %s", el)
	}
	if msg, merr := chromedp.Run(p.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('[role=status],[role=alert],.toast')].map(e => e.textContent.trim()).filter(Boolean).join(' | ')`)); merr == nil {
		p.t.Logf("messages at failure: %q", msg)
	}
	p.t.Fatalf("%s: %v (page problems: %q)", what, err, p.problems())
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	defer func(t0 time.Time) { p.t.Logf("%s: %s", what, time.Since(t0).Round(time.Millisecond)) }(time.Now())
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail(what, err)
	}
}

// wait polls a JavaScript condition until it is true (at most 20s).
func (p *page) wait(what, expr string) {
	p.t.Helper()
	defer func(t0 time.Time) { p.t.Logf("wait %s: %s", what, time.Since(t0).Round(time.Millisecond)) }(time.Now())
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		p.fail("waiting until "+what, err)
	}
}

func (p *page) text(expr string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.fail("evaluating "+expr, err)
	}
	return s
}

func (p *page) value(id string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.ID(id)))
	if err != nil {
		p.fail("reading #"+id, err)
	}
	return s
}

// shot saves a screenshot of the viewport, after dismissing a message toast
// so it hides nothing. It goes to $RSWEBHOOKS_SCREENSHOTS (`make
// screenshots` points it at docs/screenshots), else to a temporary directory,
// so a test run never rewrites the committed pictures.
func (p *page) shot(name string) {
	p.t.Helper()
	p.text(`document.getElementById('toast').hidden = true, ''`)
	b, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.fail("screenshot "+name, err)
	}
	dir := os.Getenv("RSWEBHOOKS_SCREENSHOTS")
	if dir == "" {
		dir = p.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) signIn(user string) {
	p.t.Helper()
	p.do("sign-in form", chromedp.WaitVisible(chromedp.ID("login-username")))
	p.text(`document.getElementById('login-username').value = ''`)
	p.do("sign in as "+user,
		chromedp.SendKeys(chromedp.ID("login-username"), user),
		chromedp.SendKeys(chromedp.ID("login-password"), user),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("grid-view")),
	)
}

func (p *page) signOut() {
	p.t.Helper()
	p.do("sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("login-username")))
}

func newPage(t *testing.T, origin string) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	p := &page{t: t}
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if u := e.Request.URL; !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") {
				p.problem("request outside the origin: " + u)
			}
		case *runtime.EventExceptionThrown:
			p.problem("script exception: " + e.ExceptionDetails.Text + " " + fmt.Sprint(e.ExceptionDetails.Exception))
		case *log.EventEntryAdded:
			// 4xx answers the page expects (validation) are logged by the
			// network source; anything else at error level is a problem
			// (CSP violations come from the security source).
			if e.Entry.Level == log.EntryLevelError && e.Entry.Source != log.EntrySourceNetwork {
				p.problem(string(e.Entry.Source) + ": " + e.Entry.Text)
			}
		}
	}))
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	// Start the browser and the tab on the long-lived context; steps run on
	// shorter contexts derived from it, which must not own the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	p.ctx = ctx
	return p
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestWebhooksPage(t *testing.T) {
	e := start(t)
	p := newPage(t, e.uiURL)

	alice, bob := e.login(t, "alice"), e.login(t, "bob")
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/alice-existing?noecho=1", "Description": "Alice existing receiver", "Filters": []string{"reports"},
	}, 201, nil)
	e.call(t, "POST", "/api/webhooks/registrations", bob, map[string]any{
		"WebHookUri": e.rcURL + "/bob?noecho=1", "Description": "Bob receiver",
	}, 201, nil)

	// Sign in as alice: only her webhook, no User column.
	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL))
	p.signIn("alice")
	p.wait("alice sees her one webhook", `document.querySelectorAll('#grid-body tr.webhook').length === 1 &&
		document.getElementById('grid-body').textContent.includes('Alice existing receiver')`)
	if got := p.text(`document.getElementById('grid-body').textContent.includes('Bob receiver') + '/' + document.getElementById('col-user').hidden + '/' + document.getElementById('who-role').textContent`); got != "false/true/User" {
		t.Fatalf("alice's grid: bob's row shown / User column hidden / role = %s, want false/true/User", got)
	}

	// Create a webhook against the receiver; the echo check passes.
	hook := e.rcURL + "/hook"
	p.do("fill the new webhook form",
		chromedp.Click(chromedp.ID("new-webhook")),
		chromedp.WaitVisible(chromedp.ID("edit-dialog")),
		chromedp.SendKeys(chromedp.ID("f-url"), hook),
		chromedp.Click(chromedp.ID("f-secret-generate")),
		chromedp.Click(chromedp.ID("f-filter-categories")),
		chromedp.SendKeys(chromedp.ID("f-description"), "Orders integration"),
	)
	secret := p.value("f-secret")
	if !regexp.MustCompile(`^[A-Za-z0-9]{48}$`).MatchString(secret) {
		t.Fatalf("generated secret %q: want 48 letters and digits", secret)
	}
	echoes := e.rc.echoes.Load()
	p.do("save", chromedp.Click(chromedp.ID("edit-save")), chromedp.WaitNotVisible(chromedp.ID("edit-dialog")))
	p.wait("the new row", `document.getElementById('grid-body').textContent.includes('Orders integration')`)
	if e.rc.echoes.Load() <= echoes {
		t.Fatal("the receiver saw no echo check")
	}
	w, ok := e.webhooks(t, alice)["Orders integration"]
	if !ok || w.URI != hook || w.Secret != secret || len(w.Filters) != 1 || w.Filters[0] != "categories" || w.IsPaused {
		t.Fatalf("stored webhook = %+v, want %s, the generated secret, [categories], active", w, hook)
	}
	row := fmt.Sprintf(`tr[data-id=%s]`, js(w.ID))
	p.shot("grid-user.png")

	// Invalid input: the server's messages appear next to the fields.
	p.do("submit a bad URL",
		chromedp.Click(chromedp.ID("new-webhook")),
		chromedp.WaitVisible(chromedp.ID("edit-dialog")),
		chromedp.SendKeys(chromedp.ID("f-url"), "ftp://files.example.com/hook"),
		chromedp.SendKeys(chromedp.ID("f-description"), "Broken"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("f-url-error")),
	)
	if got := p.text(`document.getElementById('f-url-error').textContent + '|' + document.getElementById('f-url').getAttribute('aria-invalid') + '|' + (document.activeElement && document.activeElement.id)`); !strings.Contains(got, "Scheme must be http or https") || !strings.HasSuffix(got, "|true|f-url") {
		t.Fatalf("URL error: %q, want the scheme rule, aria-invalid and focus on the field", got)
	}
	p.shot("edit-validation.png")
	p.do("submit a short secret",
		chromedp.SetValue(chromedp.ID("f-url"), hook),
		chromedp.SetValue(chromedp.ID("f-secret"), "too-short"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("f-secret-error")),
		chromedp.WaitNotVisible(chromedp.ID("f-url-error")),
	)
	if got := p.text(`document.getElementById('f-secret-error').textContent`); !strings.Contains(got, "between 32 and 128 characters") {
		t.Fatalf("secret error = %q", got)
	}
	p.do("cancel", chromedp.Click(chromedp.ID("edit-cancel")), chromedp.WaitNotVisible(chromedp.ID("edit-dialog")))
	if n := len(e.webhooks(t, alice)); n != 2 {
		t.Fatalf("alice has %d webhooks after refused input, want 2", n)
	}

	// Pause and resume inline.
	p.do("pause", chromedp.Click(chromedp.CSS(row+" input.pause-toggle")))
	p.wait("paused row", fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r && r.classList.contains('is-paused') && r.querySelector('.switch-text').textContent === 'Yes' && !r.querySelector('input.pause-toggle').disabled })()`, js(row)))
	if !e.webhooks(t, alice)["Orders integration"].IsPaused {
		t.Fatal("the webhook is not paused in the store")
	}
	p.do("resume", chromedp.Click(chromedp.CSS(row+" input.pause-toggle")))
	p.wait("active row", fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r && !r.classList.contains('is-paused') && !r.querySelector('input.pause-toggle').disabled })()`, js(row)))
	if e.webhooks(t, alice)["Orders integration"].IsPaused {
		t.Fatal("the webhook is still paused in the store")
	}

	// A change through the proxy shows up as a delivery.
	panel := "#panel-" + w.ID
	p.do("open deliveries", chromedp.Click(chromedp.CSS(row+" button.deliveries-toggle")), chromedp.WaitVisible(chromedp.CSS(panel+" .empty-deliveries")))
	e.change(t, "Sales")
	p.wait("a succeeded delivery", fmt.Sprintf(`document.querySelectorAll(%s).length === 1`, js(panel+" tr.delivery[data-state=succeeded]")))
	if got := p.text(fmt.Sprintf(`document.querySelector(%s).textContent`, js(panel+" tr.delivery"))); !strings.Contains(got, "categories Created") || !strings.Contains(got, "200") {
		t.Fatalf("delivery row = %q, want categories Created and 200", got)
	}

	// A failing receiver: the delivery fails after every retry, then is
	// redelivered once the receiver is fixed.
	e.rc.fail.Store(true)
	e.change(t, "Finance")
	failed := panel + " tr.delivery[data-state=failed]"
	p.wait("a failed delivery", fmt.Sprintf(`!!document.querySelector(%s)`, js(failed)))
	if got := p.text(fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r.querySelector('.attempts').textContent + '/' + r.querySelector('.response').textContent })()`, js(failed))); got != "3/500" {
		t.Fatalf("failed delivery attempts/response = %q, want 3/500", got)
	}
	p.shot("deliveries-failed.png")
	e.rc.fail.Store(false)
	failedID := p.text(fmt.Sprintf(`document.querySelector(%s).dataset.deliveryId`, js(failed)))
	p.do("redeliver", chromedp.Click(chromedp.CSS(failed+" button.redeliver")))
	p.wait("the redelivery succeeded", fmt.Sprintf(`!!document.querySelector(%s)`, js(fmt.Sprintf(`%s tr.delivery[data-delivery-id=%q][data-state=succeeded]`, panel, failedID))))
	if got := p.text(fmt.Sprintf(`document.querySelector(%s).textContent`, js(fmt.Sprintf(`%s tr.delivery[data-delivery-id=%q] .attempts`, panel, failedID)))); got != "4" {
		t.Fatalf("attempts after redelivery = %q, want 4", got)
	}

	// Test ping.
	p.do("ping", chromedp.Click(chromedp.CSS(panel+" button.ping")))
	p.wait("the ping result", fmt.Sprintf(`document.querySelector(%s).textContent.startsWith('Test ping delivered')`, js(panel+" .ping-result")))
	if got := p.text(fmt.Sprintf(`document.querySelector(%s).textContent`, js(panel+" .ping-result"))); !strings.Contains(got, "answered 200") {
		t.Fatalf("ping result = %q", got)
	}
	p.wait("the ping in the list", fmt.Sprintf(`[...document.querySelectorAll(%s)].some(r => r.textContent.includes('Test ping'))`, js(panel+" tr.delivery[data-state=succeeded]")))
	p.text(`window.scrollTo(0, 0), ''`)
	p.shot("deliveries.png")
	var pings, ok200 int
	for _, n := range e.rc.received() {
		if n.path != "/hook" {
			continue // bob's webhook gets the categories too
		}
		if len(n.Notifications) == 1 && n.Notifications[0].Action == "ping" {
			pings++
		}
		if n.status == 200 {
			ok200++
		}
	}
	if pings != 1 || ok200 != 3 {
		t.Fatalf("receiver: %d pings, %d answered 200; want 1 and 3 (Sales, Finance redelivered, ping)", pings, ok200)
	}

	// Delivery options: Ordered and a rate limit, the server's rule for a
	// bad rate next to its field, and chips in the row once saved.
	p.do("edit the delivery options",
		chromedp.Click(chromedp.CSS(row+" button.edit")),
		chromedp.WaitVisible(chromedp.ID("edit-dialog")),
		chromedp.Click(chromedp.ID("f-ordered")),
		chromedp.SetValue(chromedp.ID("f-max-per-second"), "5000"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("f-max-per-second-error")),
	)
	if got := p.text(`document.getElementById('f-max-per-second-error').textContent`); !strings.Contains(got, "between 0.01 and 1000") {
		t.Fatalf("rate error = %q, want the range", got)
	}
	p.do("a valid rate",
		chromedp.SetValue(chromedp.ID("f-max-per-second"), "2.5"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit-dialog")),
	)
	p.wait("the delivery chips", fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r && r.querySelector('.chip.ordered') && r.querySelector('.chip.max-per-second').textContent === '≤ 2.5/s' })()`, js(row)))
	if w := e.webhooks(t, alice)["Orders integration"]; !w.Ordered || w.MaxPerSecond != 2.5 {
		t.Fatalf("stored Ordered %v MaxPerSecond %g, want true 2.5", w.Ordered, w.MaxPerSecond)
	}
	p.do("turn them off again",
		chromedp.Click(chromedp.CSS(row+" button.edit")),
		chromedp.WaitVisible(chromedp.ID("edit-dialog")),
		chromedp.Click(chromedp.ID("f-ordered")),
		chromedp.SetValue(chromedp.ID("f-max-per-second"), "0"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit-dialog")),
	)
	p.wait("no delivery chips", fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r && !r.querySelector('.delivery-mode') })()`, js(row)))
	if w := e.webhooks(t, alice)["Orders integration"]; w.Ordered || w.MaxPerSecond != 0 {
		t.Fatalf("stored Ordered %v MaxPerSecond %g after turning them off", w.Ordered, w.MaxPerSecond)
	}

	// Phone width: rows become cards.
	p.do("phone width", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
	p.wait("cards layout", `getComputedStyle(document.querySelector('#grid thead')).display === 'none' && document.documentElement.scrollWidth <= 375`)
	p.shot("phone.png")
	p.do("laptop width", chromedp.EmulateViewport(1280, 800))

	// Delete with confirmation: cancel first, then confirm.
	p.do("cancel delete",
		chromedp.Click(chromedp.CSS(row+" button.delete")),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")),
		chromedp.Click(chromedp.ID("confirm-cancel")),
		chromedp.WaitNotVisible(chromedp.ID("confirm-dialog")),
	)
	if _, ok := e.webhooks(t, alice)["Orders integration"]; !ok {
		t.Fatal("cancel deleted the webhook")
	}
	p.do("delete",
		chromedp.Click(chromedp.CSS(row+" button.delete")),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")),
		chromedp.Click(chromedp.ID("confirm-ok")),
	)
	p.wait("the row is gone", fmt.Sprintf(`!document.querySelector(%s) && !document.getElementById('confirm-dialog').open`, js(row)))
	if _, ok := e.webhooks(t, alice)["Orders integration"]; ok {
		t.Fatal("the webhook is still stored after delete")
	}

	// An administrator sees everyone's webhooks with the User column.
	p.signOut()
	p.signIn("admin")
	p.wait("the User column with alice and bob", `!document.getElementById('col-user').hidden &&
		[...document.querySelectorAll('#grid-body td.col-user')].map(td => td.textContent).sort().join(',') === 'alice,bob'`)
	if got := p.text(`document.getElementById('who-role').textContent`); got != "Administrator" {
		t.Fatalf("admin role label = %q", got)
	}
	p.shot("grid-admin.png")

	// The operator token works too.
	p.signOut()
	p.do("operator sign-in",
		chromedp.Click(chromedp.CSS("#operator-details summary")),
		chromedp.SendKeys(chromedp.ID("operator-token"), e.operator),
		chromedp.Click(chromedp.ID("token-submit")),
		chromedp.WaitVisible(chromedp.ID("grid-view")),
	)
	p.wait("the operator sees every webhook", `document.getElementById('who-name').textContent === 'Operator' &&
		document.querySelectorAll('#grid-body td.col-user').length === 2`)

	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}

// TestKeyboardOnly drives the page with the keyboard alone: sign in, Tab to
// the controls, Enter and Space on buttons and switches, Escape closes the
// dialogs and gives focus back to the control that opened them.
func TestKeyboardOnly(t *testing.T) {
	e := start(t)
	p := newPage(t, e.uiURL)
	alice := e.login(t, "alice")
	// Numbers a JavaScript double cannot hold: the page must send them back
	// exactly as it read them when it saves the webhook (pause below).
	props := map[string]json.RawMessage{
		"big": json.RawMessage(`9007199254740993`), "huge": json.RawMessage(`1e400`),
		"precise": json.RawMessage(`0.1000000000000000055511151231257827`), "plain": json.RawMessage(`2`),
	}
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/keys?noecho=1", "Description": "Keyboard receiver", "Properties": props,
	}, 201, nil)

	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL), chromedp.WaitVisible(chromedp.ID("login-username")))
	p.wait("focus on the user name", `document.activeElement && document.activeElement.id === 'login-username'`)
	p.do("sign in with keys", chromedp.KeyEvent("alice"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("alice"), chromedp.KeyEvent(kb.Enter))
	p.wait("the grid", `!document.getElementById('grid-view').hidden && document.querySelectorAll('#grid-body tr.webhook').length === 1`)

	// tabTo presses Tab until the element matching sel has focus, and
	// returns the ids or classes passed on the way.
	tabTo := func(sel string) []string {
		t.Helper()
		var passed []string
		for range 40 {
			if p.text(fmt.Sprintf(`String(document.activeElement === document.querySelector(%s))`, js(sel))) == "true" {
				return passed
			}
			p.do("Tab", chromedp.KeyEvent(kb.Tab))
			passed = append(passed, p.text(`(document.activeElement.id || document.activeElement.className || document.activeElement.tagName)`))
		}
		t.Fatalf("%s never got focus with Tab; focus went through %q", sel, passed)
		return nil
	}

	// New webhook: Enter opens the dialog with focus on the URL, Escape
	// closes it and focus returns to the button.
	tabTo("#new-webhook")
	p.do("Enter on New webhook", chromedp.KeyEvent(kb.Enter))
	p.wait("the dialog, focus on the URL", `document.getElementById('edit-dialog').open && document.activeElement.id === 'f-url'`)
	p.do("Escape", chromedp.KeyEvent(kb.Escape))
	p.wait("the dialog closed, focus back", `!document.getElementById('edit-dialog').open && document.activeElement.id === 'new-webhook'`)

	// The pause switch toggles with Space.
	w := e.webhooks(t, alice)["Keyboard receiver"]
	row := fmt.Sprintf(`tr[data-id=%s]`, js(w.ID))
	tabTo(row + " input.pause-toggle")
	p.do("Space on the switch", chromedp.KeyEvent(" "))
	p.wait("paused row", fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r && r.classList.contains('is-paused') && !r.querySelector('input.pause-toggle').disabled })()`, js(row)))
	paused := e.webhooks(t, alice)["Keyboard receiver"]
	if !paused.IsPaused {
		t.Fatal("Space on the switch did not pause the webhook")
	}
	for k, v := range props {
		if got := string(paused.Properties[k]); got != string(v) {
			t.Errorf("after the page saved the webhook, Properties[%q] = %s, want %s", k, got, v)
		}
	}

	// Delete: Enter opens the confirmation with focus on Cancel; Escape
	// keeps the webhook and gives focus back to Delete.
	tabTo(row + " button.delete")
	p.do("Enter on Delete", chromedp.KeyEvent(kb.Enter))
	p.wait("the confirmation, focus on Cancel", `document.getElementById('confirm-dialog').open && document.activeElement.id === 'confirm-cancel'`)
	p.do("Escape", chromedp.KeyEvent(kb.Escape))
	p.wait("confirmation closed, focus back on Delete", fmt.Sprintf(`!document.getElementById('confirm-dialog').open && document.activeElement === document.querySelector(%s)`, js(row+" button.delete")))
	if _, ok := e.webhooks(t, alice)["Keyboard receiver"]; !ok {
		t.Fatal("Escape on the confirmation deleted the webhook")
	}

	// Cancel and ask again at once: the close event of the first dialog
	// (dispatched later, as a task) must not close the second one.
	reopened, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const del = document.querySelector(%s);
		del.click();
		document.getElementById('confirm-cancel').click();
		del.click();
		return new Promise((r) => setTimeout(() => requestAnimationFrame(() => r(document.getElementById('confirm-dialog').open)), 0));
	})()`, js(row+" button.delete")), func(p *runtime.EvaluateParams) { await := true; p.AwaitPromise = &await }))
	if err != nil || !reopened {
		t.Fatalf("the confirmation asked again right after a cancel is open = %v (%v), want true", reopened, err)
	}
	p.do("Escape", chromedp.KeyEvent(kb.Escape))
	p.wait("confirmation closed", `!document.getElementById('confirm-dialog').open`)

	// Deliveries: Enter opens the panel.
	tabTo(row + " button.deliveries-toggle")
	p.do("Enter on Deliveries", chromedp.KeyEvent(kb.Enter))
	p.wait("the deliveries panel", fmt.Sprintf(`!!document.querySelector(%s) && document.querySelector(%s).getAttribute('aria-expanded') === 'true'`,
		js("#panel-"+w.ID+" .empty-deliveries"), js(row+" button.deliveries-toggle")))

	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}
