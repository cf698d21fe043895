// Package demo runs the README's first command: the report-server simulator,
// the rswebhooks daemon in front of it, and a receiver that verifies every
// notification it gets. It registers a webhook the way an existing client
// would, makes a few report-server API calls through the proxy, prints each
// call followed by the verified delivery it caused, then keeps everything
// serving until the context ends. The receiver is also the `rswebhooks
// receiver` command, for trying a real daemon on loopback.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/daemon"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/signature"
)

// Options configure Run. Empty addresses take the defaults shown.
type Options struct {
	Listen      string // proxy, default 127.0.0.1:8080
	AdminListen string // admin API, default 127.0.0.1:8081
	SimListen   string // simulator, default 127.0.0.1:8083
	// DataDir is the Badger directory; empty means a temporary directory
	// removed on exit.
	DataDir string
	Out     io.Writer
	Logger  zerolog.Logger // the daemon's and simulator's logs
	Version string
	// Scripted, when set, is called after the scripted calls were all
	// delivered; Run then returns instead of serving until ctx ends.
	Scripted func(proxyURL, adminURL string)
}

// Run runs the demo; see the package documentation.
func Run(ctx context.Context, o Options) error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Listen, "127.0.0.1:8080")
	def(&o.AdminListen, "127.0.0.1:8081")
	def(&o.SimListen, "127.0.0.1:8083")
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.DataDir == "" {
		dir, err := os.MkdirTemp("", "rswebhooks-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.DataDir = dir
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sim := simulator.New(simulator.Options{Logger: o.Logger, SeedSamples: true})
	simLn, err := net.Listen("tcp", o.SimListen)
	if err != nil {
		return fmt.Errorf("simulator listener: %w", err)
	}
	simErr := make(chan error, 1)
	go func() { simErr <- sim.Serve(ctx, simLn) }()

	secret := randomHex(24) // 48 characters
	rcv := NewReceiver(secret, o.Out)
	rcv.Hold() // the script prints each notification after the call that caused it
	rcvLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("receiver listener: %w", err)
	}
	rcvSrv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go rcvSrv.Serve(rcvLn)
	defer rcvSrv.Close()

	admin, _ := sim.User("admin")
	operator := randomHex(16)
	ready := make(chan [2]string, 1)
	daemonErr := make(chan error, 1)
	daemonDone := make(chan struct{})
	// Whatever happens, the daemon is stopped and has closed its store
	// before the temporary data directory is removed.
	defer func() { cancel(); <-daemonDone }()
	go func() {
		defer close(daemonDone)
		daemonErr <- daemon.Run(ctx, daemon.Options{
			Upstream:          "http://" + simLn.Addr().String(),
			Listen:            o.Listen,
			AdminListen:       o.AdminListen,
			DataDir:           o.DataDir,
			AdminToken:        operator,
			ServiceUser:       admin.Username,
			ServicePassword:   admin.Password,
			RetryDelays:       []time.Duration{time.Second, 5 * time.Second, 30 * time.Second},
			AllowTargets:      []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
			WatchInterval:     5 * time.Second,
			ReconcileInterval: 5 * time.Second,
			Version:           o.Version,
			Logger:            o.Logger,
			Ready:             func(p, a string) { ready <- [2]string{p, a} },
		})
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-daemonErr:
		return fmt.Errorf("daemon: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	proxyURL, adminURL := "http://"+addrs[0], "http://"+addrs[1]
	fmt.Fprintf(o.Out, "report-server simulator  http://%s   (users admin/admin, alice/alice, bob/bob)\n", simLn.Addr())
	fmt.Fprintf(o.Out, "rswebhooks proxy         %s\n", proxyURL)
	fmt.Fprintf(o.Out, "rswebhooks admin API     %s   (operator token %s)\n", adminURL, operator)
	fmt.Fprintf(o.Out, "demo receiver            http://%s/hook\n\n", rcvLn.Addr())

	c := &client{http: &http.Client{Timeout: 10 * time.Second}, out: o.Out}
	if err := script(ctx, c, proxyURL, adminURL, "http://"+rcvLn.Addr().String()+"/hook", secret, rcv); err != nil {
		return err
	}
	// From now on notifications are printed as they arrive; several
	// webhooks' deliveries run concurrently, so their order can differ
	// from the order of the calls.
	rcv.Release()
	if o.Scripted != nil {
		o.Scripted(proxyURL, adminURL)
		cancel()
		return ignoreCanceled(<-daemonErr)
	}
	fmt.Fprintf(o.Out, "\nTry more (Ctrl-C to stop):\n")
	fmt.Fprintf(o.Out, "  open %s/ in a browser and sign in as alice/alice or admin/admin (the Webhooks grid)\n", adminURL)
	fmt.Fprintf(o.Out, "  TOKEN=$(curl -s -d 'grant_type=password&username=admin&password=admin' %s/Token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n", proxyURL)
	fmt.Fprintf(o.Out, "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{\"Name\":\"Finance\"}' %s/api/reportserver/v2/categories\n", proxyURL)
	fmt.Fprintf(o.Out, "  curl -s -H 'Content-Type: application/json' -d '{\"Name\":\"Restored\"}' http://%s/_sim/storage/categories   (a change in storage: the reconciler notifies it within 5 s)\n", simLn.Addr())
	fmt.Fprintf(o.Out, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/api/webhooks/registrations\n", adminURL)
	fmt.Fprintf(o.Out, "  curl -s %s/metrics | grep ^rswebhooks_\n", adminURL)
	fmt.Fprintf(o.Out, "The demo keeps serving; new notifications are printed here as they arrive.\n")
	select {
	case err = <-daemonErr:
	case err = <-simErr:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		// Ctrl-C. The deferred calls wait for the daemon to close its
		// store before the data directory goes.
		fmt.Fprintf(o.Out, "\nStopping: the proxy (%s), the admin API (%s), the simulator (http://%s) and the demo receiver; "+
			"the demo's data directory %s is removed.\n", proxyURL, adminURL, simLn.Addr(), o.DataDir)
		return nil
	}
	return ignoreCanceled(err)
}

// script registers a webhook as alice, makes changes and waits until each
// has been delivered and verified.
func script(ctx context.Context, c *client, proxyURL, adminURL, hookURL, secret string, rcv *Receiver) error {
	tok, err := c.token(proxyURL, "alice", "alice")
	if err != nil {
		return err
	}
	adminTok, err := c.token(proxyURL, "admin", "admin")
	if err != nil {
		return err
	}
	var hook struct {
		ID string `json:"Id"`
	}
	if err := c.do("POST", adminURL+"/api/webhooks/registrations", tok, map[string]any{
		"WebHookUri":  hookURL,
		"Secret":      secret,
		"Description": "demo receiver",
		"Filters":     []string{"reports", "categories", "tasks", "alerts"},
	}, http.StatusCreated, &hook); err != nil {
		return fmt.Errorf("registering the webhook: %w", err)
	}
	fmt.Fprintf(c.out, "registered webhook %s for alice (filters reports, categories, tasks, alerts; receiver echo check passed)\n", hook.ID)
	fmt.Fprintf(c.out, "now admin changes things through the proxy; alice may read reports and categories, so she is notified:\n\n")
	tok = adminTok

	// Each change is printed, then the notification it caused: the script
	// waits for it before the next call, so the output reads in the order
	// things happened.
	delivered := 0
	notified := func() error {
		delivered++
		select {
		case line := <-rcv.lines:
			fmt.Fprint(c.out, line)
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("notification %d did not arrive within 30s", delivered)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var cat struct {
		ID string `json:"Id"`
	}
	if err := c.do("POST", proxyURL+"/api/reportserver/v2/categories", tok, map[string]any{"Name": "Demo"}, 0, &cat); err != nil {
		return err
	}
	if err := notified(); err != nil {
		return err
	}
	var reportID string
	if err := c.do("POST", proxyURL+"/api/reportserver/reports", tok, map[string]any{
		"Name": "Sales", "CategoryId": cat.ID,
		"ReportFile": map[string]any{"FileName": "Sales.trdp", "Buffer": "UEsDBBQAAAAIAA=="},
	}, 0, &reportID); err != nil {
		return err
	}
	if err := notified(); err != nil {
		return err
	}
	if err := c.do("PUT", proxyURL+"/api/reportserver/reports/"+reportID, tok, map[string]any{"Name": "Sales 2026", "CategoryId": cat.ID}, 0, nil); err != nil {
		return err
	}
	if err := notified(); err != nil {
		return err
	}
	if err := c.do("GET", proxyURL+"/api/reportserver/v2/reports", tok, nil, 0, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "  (a read: no event, no notification)\n")
	if err := c.do("DELETE", proxyURL+"/api/reportserver/reports/"+reportID, tok, nil, 0, nil); err != nil {
		return err
	}
	if err := notified(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "\n%d notifications delivered and verified (ms-signature and webhook-signature)\n", delivered)
	return nil
}

// Receiver is a webhook receiver: it answers the echo check and verifies
// each notification's ms-signature and webhook-signature with its secret,
// then prints one line per notification (or, while held, queues the lines
// for the demo script to print in order). Anything that fails verification
// is answered 400 and printed as rejected.
type Receiver struct {
	secret string
	out    io.Writer

	mu    sync.Mutex
	held  bool
	lines chan string
}

// NewReceiver returns a receiver that prints to out.
func NewReceiver(secret string, out io.Writer) *Receiver {
	return &Receiver{secret: secret, out: out, lines: make(chan string, 256)}
}

// Hold queues the lines of verified notifications instead of printing them.
func (r *Receiver) Hold() {
	r.mu.Lock()
	r.held = true
	r.mu.Unlock()
}

// Release prints the queued lines and every later one as it comes.
func (r *Receiver) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = false
	for {
		select {
		case l := <-r.lines:
			fmt.Fprint(r.out, l)
		default:
			return
		}
	}
}

func (r *Receiver) emit(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held {
		select {
		case r.lines <- line:
			return
		default: // nobody reads: print rather than block the sender
		}
	}
	fmt.Fprint(r.out, line)
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet {
		// The echo check's answer is the echo value as plain text: a
		// browser sent here with ?echo=<script>… gets text, never a page.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = io.WriteString(w, req.URL.Query().Get("echo")) //nolint:gosec // G705: echoing is the check; served as text/plain, nosniff
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	if err := signature.Verify(r.secret, req.Header.Get(signature.HeaderSignature), body); err != nil {
		http.Error(w, "bad ms-signature", http.StatusBadRequest)
		r.emit(fmt.Sprintf("  ✗ rejected a notification: ms-signature: %v\n", err))
		return
	}
	if err := signature.VerifyStandard(r.secret, req.Header, body, time.Now(), 0); err != nil {
		http.Error(w, "bad webhook-signature", http.StatusBadRequest)
		r.emit(fmt.Sprintf("  ✗ rejected a notification: webhook-signature: %v\n", err))
		return
	}
	var n struct {
		ID            string `json:"Id"`
		Attempt       int
		Notifications []struct {
			Action, EventType string
			ResourceID        string `json:"ResourceId"`
			ResourceName      string
			UserName          string
			Path, Method      string
		}
	}
	_ = json.Unmarshal(body, &n)
	var b strings.Builder
	for _, x := range n.Notifications {
		name := ""
		if x.ResourceName != "" {
			name = fmt.Sprintf(" name=%q", x.ResourceName)
		}
		fmt.Fprintf(&b, "  ✓ %-10s %-8s id=%s%s by %s (%s %s) delivery %s attempt %d, signatures verified\n",
			x.Action, x.EventType, x.ResourceID, name, x.UserName, x.Method, x.Path, n.ID, n.Attempt)
	}
	w.WriteHeader(http.StatusOK)
	r.emit(b.String())
}

// client makes the demo's API calls and prints them.
type client struct {
	http *http.Client
	out  io.Writer
}

func (c *client) token(proxyURL, user, pass string) (string, error) {
	resp, err := c.http.PostForm(proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("POST /Token as %s: status %d", user, resp.StatusCode)
	}
	fmt.Fprintf(c.out, "POST /Token as %s through the proxy → token\n", user)
	return t.AccessToken, nil
}

// do sends a JSON request; want 0 accepts any 2xx.
func (c *client) do(method, u, token string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	pu, _ := url.Parse(u)
	if !strings.HasPrefix(pu.Path, "/api/webhooks") {
		fmt.Fprintf(c.out, "%-6s %s → %d\n", method, pu.Path, resp.StatusCode)
	}
	if (want != 0 && resp.StatusCode != want) || resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d: %s", method, pu.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, pu.Path, err)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
