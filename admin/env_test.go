package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/access"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

const operatorToken = "operator-token-0123456789abcdef"

// env is the whole registrations stack on loopback: the simulator as the
// report server, the real proxy in front of it (tapped by the resolver), a
// real Badger store, the admin handler and an echo receiver.
type env struct {
	t        testing.TB
	clock    *testutil.Clock
	upstream *httptest.Server // simulator
	proxy    *httptest.Server
	admin    *httptest.Server
	recv     *receiver
	db       *store.DB
	sim      *simulator.Server
	resolver *identity.Resolver
}

type envOptions struct {
	noServiceAccount bool
	denyLoopback     bool // use the delivery client's default address policy
	userRate         int  // admin.Options.UserRatePerMinute
	showResponses    bool // admin.Options.ShowResponses
	maxPerUser       int
	deliveries       admin.Deliveries
	maxReplay        int
	unmatched        admin.Unmatched
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: testutil.NewClock(time.Now().UTC().Truncate(time.Second))}
	log := testLogger()
	sim := simulator.New(simulator.Options{Logger: log, Now: e.clock.Now, TokenTTL: time.Hour})
	e.sim = sim
	e.upstream = httptest.NewServer(sim)
	t.Cleanup(e.upstream.Close)
	base, _ := url.Parse(e.upstream.URL)
	copts := reportserver.Options{BaseURL: base, Logger: log, Now: e.clock.Now}
	if !o.noServiceAccount {
		copts.User, copts.Password = "admin", "admin"
	}
	client, err := reportserver.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	e.resolver, err = identity.New(identity.Options{Client: client, OperatorToken: operatorToken, TTL: time.Minute, Logger: log, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Upstream: base, Tap: e.resolver, Logger: log, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = httptest.NewServer(p)
	t.Cleanup(e.proxy.Close)
	e.db, err = store.Open(store.Options{Dir: t.TempDir(), Logger: log, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.db.Close() })
	copt := deliver.ClientOptions{Timeout: 5 * time.Second}
	if !o.denyLoopback {
		copt.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	var perms access.Permissions
	if !o.noServiceAccount {
		perms = access.ReportServer{C: client}
	}
	h, err := admin.New(admin.Options{
		Store: e.db, Identity: e.resolver, Logger: log, Now: e.clock.Now,
		Access:            access.New(access.Options{Perms: perms, Now: e.clock.Now}),
		Deliveries:        o.deliveries,
		MaxReplay:         o.maxReplay,
		Unmatched:         o.unmatched,
		UserRatePerMinute: o.userRate, ShowResponses: o.showResponses, MaxWebhooksPerUser: o.maxPerUser,
		Verifier: &admin.EchoVerifier{HTTP: deliver.NewHTTPClient(copt), Timeout: 5 * time.Second, Policy: deliver.NewAddressPolicy(copt.Allow, copt.Deny)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = httptest.NewServer(h)
	t.Cleanup(e.admin.Close)
	e.recv = newReceiver(t)
	sensitive.add(operatorToken)
	return e
}

// receiver answers the echo check and records what it got.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	mode    string // "echo" (default), "wrong", "500", "hang"
	headers []http.Header
	queries []url.Values
	release chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{mode: "echo", release: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.queries = append(r.queries, req.URL.Query())
		mode := r.mode
		r.mu.Unlock()
		switch mode {
		case "wrong":
			_, _ = io.WriteString(w, "not-the-echo")
		case "500":
			w.WriteHeader(500)
			_, _ = io.WriteString(w, req.URL.Query().Get("echo"))
		case "hang":
			select {
			case <-r.release:
			case <-req.Context().Done():
			}
		default:
			_, _ = io.WriteString(w, req.URL.Query().Get("echo"))
		}
	}))
	t.Cleanup(func() { close(r.release); r.Close() })
	return r
}

func (r *receiver) setMode(m string) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

func (r *receiver) calls() ([]http.Header, []url.Values) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...), append([]url.Values(nil), r.queries...)
}

// token logs in at the report server's /Token through the proxy, like the
// documented JavaScript client.
func (e *env) token(user string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {user}}
	res, err := http.PostForm(e.proxy.URL+"/Token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != 200 || v.AccessToken == "" {
		e.t.Fatalf("POST /Token as %s: %d %v", user, res.StatusCode, err)
	}
	sensitive.add(v.AccessToken)
	return v.AccessToken
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	req := testutil.NewRequest(e.t, method, e.admin.URL+path, token, body)
	res, b := testutil.Do(e.t, e.admin.Client(), req)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// hookBody is a registration request; the secret is remembered for the log scan.
func hookBody(uri string, extra map[string]any) map[string]any {
	b := map[string]any{"WebHookUri": uri, "Secret": newSecret(), "Description": "test hook", "Filters": []string{"reports"}}
	for k, v := range extra {
		b[k] = v
	}
	if s, ok := b["Secret"].(string); ok {
		sensitive.add(s)
	}
	return b
}

var secretN struct {
	sync.Mutex
	n int
}

func newSecret() string {
	secretN.Lock()
	secretN.n++
	n := secretN.n
	secretN.Unlock()
	return fmt.Sprintf("ssssssssssssssssssss-secret-xxxx%04d-zz", n)
}
