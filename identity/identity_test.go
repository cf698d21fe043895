package identity_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/tap"
)

const opToken = "operator-token-for-tests-0001"

type fixture struct {
	sim    *simulator.Server
	client *reportserver.Client
	res    *identity.Resolver
	clk    *testutil.Clock
	logs   *testutil.SyncBuffer
}

func setup(t *testing.T, serviceAccount bool) *fixture {
	t.Helper()
	f := &fixture{clk: testutil.NewClock(time.Now().UTC().Truncate(time.Second)), logs: &testutil.SyncBuffer{}}
	log := zerolog.New(f.logs).Level(zerolog.DebugLevel)
	f.sim = simulator.New(simulator.Options{Now: f.clk.Now, TokenTTL: time.Hour})
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	o := reportserver.Options{BaseURL: base, Now: f.clk.Now, Logger: log}
	if serviceAccount {
		o.User, o.Password = "admin", "admin"
	}
	var err error
	if f.client, err = reportserver.New(o); err != nil {
		t.Fatal(err)
	}
	if f.res, err = identity.New(identity.Options{Client: f.client, OperatorToken: opToken, Logger: log, Now: f.clk.Now}); err != nil {
		t.Fatal(err)
	}
	return f
}

// observe feeds the resolver a /Token exchange as the proxy would, with the
// token really issued by the simulator.
func (f *fixture) observe(t *testing.T, user string, gz bool) string {
	t.Helper()
	tok, err := f.client.Exchange(t.Context(), user, strings.ToLower(user))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"access_token":"` + tok.AccessToken + `","token_type":"bearer","expires_in":3599}`)
	h := http.Header{"Content-Type": {"application/json;charset=UTF-8"}}
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = b.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	f.res.Observe(t.Context(), &tap.Exchange{
		Method: "POST", Path: "/reporting/Token", Status: 200, Time: f.clk.Now(),
		RequestHeader:  http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		RequestBody:    []byte("grant_type=password&username=" + user + "&password=" + user),
		ResponseHeader: h, ResponseBody: body,
	})
	return tok.AccessToken
}

func TestWants(t *testing.T) {
	f := setup(t, true)
	for _, c := range []struct {
		m, p string
		want bool
	}{{"POST", "/Token", true}, {"POST", "/token", true}, {"POST", "/reporting/Token/", true}, {"GET", "/Token", false},
		{"POST", "/api/reportserver/v2/reports", false}, {"POST", "/PersonalToken", false}} {
		if got := f.res.Wants(c.m, c.p); got != c.want {
			t.Errorf("Wants(%s %s) = %v", c.m, c.p, got)
		}
	}
}

func TestResolveLearnedTokens(t *testing.T) {
	f := setup(t, true)
	alice := f.observe(t, "alice", true)
	admin := f.observe(t, "Admin", false)
	id, err := f.res.Resolve(t.Context(), alice)
	if err != nil || id.Name != "alice" || id.ID == "" || id.ID == "alice" || id.Admin || id.Operator {
		t.Fatalf("alice: %+v %v", id, err)
	}
	ad, err := f.res.Resolve(t.Context(), admin)
	if err != nil || ad.Name != "admin" || !ad.Admin {
		t.Fatalf("admin: %+v %v", ad, err)
	}
	if p, ok := f.res.Peek(alice); !ok || p.ID != id.ID || p.Name != "alice" {
		t.Errorf("Peek: %+v %v", p, ok)
	}
	op, err := f.res.Resolve(t.Context(), opToken)
	if err != nil || !op.Operator || !op.Admin || op.ID != identity.OperatorID {
		t.Errorf("operator: %+v %v", op, err)
	}
	if _, err := f.res.Resolve(t.Context(), "unknown-token"); !errors.Is(err, identity.ErrUnknownToken) || !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("unknown: %v", err)
	}
	if _, ok := f.res.Peek("unknown-token"); ok {
		t.Error("Peek knows an unknown token")
	}
	// A non-200 answer or another path teaches nothing.
	f.res.Observe(t.Context(), &tap.Exchange{Method: "POST", Path: "/Token", Status: 400, RequestBody: []byte("username=bob"),
		ResponseBody: []byte(`{"access_token":"forged"}`), RequestHeader: http.Header{}, ResponseHeader: http.Header{}})
	if _, err := f.res.Resolve(t.Context(), "forged"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("token from a 400 answer accepted: %v", err)
	}
	if strings.Contains(f.logs.String(), alice) || strings.Contains(f.logs.String(), admin) || strings.Contains(f.logs.String(), opToken) {
		t.Error("a token reached the logs")
	}
}

func TestRevocationAndExpiryWithinTTL(t *testing.T) {
	f := setup(t, true)
	tok := f.observe(t, "bob", false)
	if _, err := f.res.Resolve(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	probes := f.sim.Count("GET", "/api/reportserver/v2/categories")
	f.clk.Add(30 * time.Second)
	if _, err := f.res.Resolve(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if n := f.sim.Count("GET", "/api/reportserver/v2/categories"); n != probes {
		t.Errorf("token re-checked within TTL (%d -> %d)", probes, n)
	}
	f.sim.RevokeToken(tok)
	if _, err := f.res.Resolve(t.Context(), tok); err != nil {
		t.Errorf("within TTL a revoked token still resolves (documented latency): %v", err)
	}
	f.clk.Add(31 * time.Second)
	if _, err := f.res.Resolve(t.Context(), tok); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("revoked token after TTL: %v", err)
	}
	tok2 := f.observe(t, "bob", false)
	f.clk.Add(3600 * time.Second)
	if _, err := f.res.Resolve(t.Context(), tok2); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}
	if _, ok := f.res.Peek(tok2); ok {
		t.Error("Peek returns an expired token")
	}
	tok3 := f.observe(t, "alice", false)
	f.clk.Add(2 * time.Minute)
	f.sim.FailWith(502)
	if _, err := f.res.Resolve(t.Context(), tok3); err == nil || errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("failing server must be an error, not a verdict: %v", err)
	}
	f.sim.FailWith(0)
}

func TestDisabledUserForbidden(t *testing.T) {
	f := setup(t, true)
	if _, err := f.sim.AddUser("erin", "erin", false); err != nil {
		t.Fatal(err)
	}
	tok := f.observe(t, "erin", false)
	if err := f.sim.DisableUser("erin"); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(2 * time.Minute)
	_, err := f.res.Resolve(t.Context(), tok)
	if !errors.Is(err, identity.ErrUnauthenticated) && !errors.Is(err, identity.ErrForbidden) {
		t.Errorf("disabled user: %v", err)
	}
}

func TestWithoutServiceAccount(t *testing.T) {
	f := setup(t, false)
	tok := f.observe(t, "ALICE", false)
	id, err := f.res.Resolve(t.Context(), tok)
	if err != nil || id.ID != "alice" || id.Admin {
		t.Errorf("alice: %+v %v", id, err)
	}
	ad := f.observe(t, "admin", false)
	id, err = f.res.Resolve(t.Context(), ad)
	if err != nil || id.ID != "admin" || !id.Admin {
		t.Errorf("admin via own token: %+v %v", id, err)
	}
	if p, ok := f.res.Peek(tok); !ok || p.ID != "alice" {
		t.Errorf("Peek: %+v", p)
	}
}

func TestLogin(t *testing.T) {
	f := setup(t, true)
	lr, err := f.res.Login(t.Context(), "alice", "alice")
	if err != nil || lr.AccessToken == "" || lr.ExpiresIn != time.Hour || lr.UserName != "alice" || lr.TokenType != "bearer" {
		t.Fatalf("%+v %v", lr, err)
	}
	if id, err := f.res.Resolve(t.Context(), lr.AccessToken); err != nil || id.Name != "alice" {
		t.Errorf("login token: %+v %v", id, err)
	}
	if _, err := f.res.Login(t.Context(), "alice", "bad-password"); !errors.Is(err, identity.ErrBadCredentials) {
		t.Errorf("bad password: %v", err)
	}
	if strings.Contains(f.logs.String(), "bad-password") {
		t.Error("password in logs")
	}
}

func TestOptions(t *testing.T) {
	f := setup(t, true)
	for _, o := range []identity.Options{{}, {Client: f.client, OperatorToken: "short"}, {Client: f.client, TTL: -1}} {
		if _, err := identity.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestMaxTokensBound(t *testing.T) {
	f := setup(t, true)
	res, err := identity.New(identity.Options{Client: f.client, MaxTokens: 4, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for i := range 10 {
		tok, err := res.Login(t.Context(), "alice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok.AccessToken)
		f.clk.Add(time.Duration(i+1) * time.Second)
	}
	known := 0
	for _, tok := range toks {
		if _, ok := res.Peek(tok); ok {
			known++
		}
	}
	if known > 4 || known == 0 {
		t.Errorf("%d tokens remembered with MaxTokens 4", known)
	}
	if _, ok := res.Peek(toks[len(toks)-1]); !ok {
		t.Error("the newest token was dropped")
	}
}

// TestAmbiguousTokenRequestsAreNotLearned: a /Token request naming the user
// more than once (HTTP parameter pollution: servers differ on which value
// wins), or an answer whose userName contradicts the form, teaches nothing;
// otherwise a caller could log in as one user and be known as another.
func TestAmbiguousTokenRequestsAreNotLearned(t *testing.T) {
	f := setup(t, true)
	up := httptest.NewServer(f.sim)
	t.Cleanup(up.Close)
	base, _ := url.Parse(up.URL)
	p, err := proxy.New(proxy.Options{Upstream: base, Tap: f.res, Logger: zerolog.Nop(), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	t.Cleanup(px.Close)
	for _, form := range []string{
		"grant_type=password&username=bob&password=bob&username=admin",
		"grant_type=password&username=bob&password=bob&UserName=admin",
	} {
		res, err := http.Post(px.URL+"/Token", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := reportserver.ParseTokenResponse(readAll(t, res))
		if res.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %v (the simulator should issue a token for the first user)", form, res.StatusCode, err)
		}
		if id, err := f.res.Resolve(t.Context(), tok.AccessToken); !errors.Is(err, identity.ErrUnknownToken) {
			t.Errorf("%s: learned as %+v, %v; want ErrUnknownToken", form, id, err)
		}
	}
	// The answer names another user than the form: not learned either.
	tok, err := f.client.Exchange(t.Context(), "bob", "bob")
	if err != nil {
		t.Fatal(err)
	}
	f.res.Observe(t.Context(), &tap.Exchange{
		Method: "POST", Path: "/Token", Status: 200, Time: f.clk.Now(),
		RequestHeader:  http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		RequestBody:    []byte("grant_type=password&username=admin&password=x"),
		ResponseHeader: http.Header{"Content-Type": {"application/json"}},
		ResponseBody:   []byte(`{"access_token":"` + tok.AccessToken + `","token_type":"bearer","expires_in":3599,"userName":"bob"}`),
	})
	if id, err := f.res.Resolve(t.Context(), tok.AccessToken); !errors.Is(err, identity.ErrUnknownToken) {
		t.Errorf("contradicting userName: learned as %+v, %v", id, err)
	}
	// The same user in another case is one user.
	tok2 := f.observe(t, "Bob", false)
	if id, err := f.res.Resolve(t.Context(), tok2); err != nil || id.Name != "bob" {
		t.Errorf("Bob: %+v %v", id, err)
	}
}

func readAll(t *testing.T, res *http.Response) []byte {
	t.Helper()
	defer res.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(res.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPeekLearnsTheUserIDInTheBackground: after a token is learned at /Token
// (with a service account), the user's id is looked up without waiting for
// a Resolve, so events caused with that token name the user's id.
func TestPeekLearnsTheUserIDInTheBackground(t *testing.T) {
	f := setup(t, true)
	tok := f.observe(t, "bob", true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, ok := f.res.Peek(tok)
		if !ok {
			t.Fatal("Peek does not know a learned token")
		}
		if p.ID != "" {
			if p.ID == "bob" || p.Name != "bob" {
				t.Fatalf("Peek: %+v, want bob's report-server id", p)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the user id was not looked up within 10s")
		}
		<-time.After(5 * time.Millisecond)
	}
}

// withStore opens a store in dir (the caller closes it) and returns it with
// a constructor of resolvers keeping tokens there: a restarted process, or
// another node of a cluster. Store and resolvers share the fixture's clock,
// as in the daemon.
func (f *fixture) withStore(t *testing.T, dir string) (*store.DB, func() *identity.Resolver) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return db, func() *identity.Resolver {
		r, err := identity.New(identity.Options{Client: f.client, Tokens: db, Now: f.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// TestTokensSurviveARestart: a resolver on the same store after a restart
// knows the tokens learned before it, checks them with the report server
// first, forgets revoked ones, and never writes a token itself to disk.
func TestTokensSurviveARestart(t *testing.T) {
	f := setup(t, true)
	dir := t.TempDir()
	db, newResolver := f.withStore(t, dir)
	f.res = newResolver()
	alice := f.observe(t, "alice", false)
	bob := f.observe(t, "bob", true)

	restarted := newResolver()
	if _, ok := restarted.Peek(alice); ok {
		t.Fatal("Peek restored a token without checking it") // Peek stays cache-only
	}
	id, err := restarted.Resolve(t.Context(), alice)
	if err != nil || id.Name != "alice" {
		t.Fatalf("alice after a restart: %+v, %v", id, err)
	}
	if !f.sim.RevokeToken(bob) {
		t.Fatal("revoke failed")
	}
	if _, err := restarted.Resolve(t.Context(), bob); !errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrUnknownToken) {
		t.Fatalf("revoked bob after a restart: %v, want refused by the report server", err)
	}
	if _, err := newResolver().Resolve(t.Context(), bob); !errors.Is(err, identity.ErrUnknownToken) {
		t.Fatalf("a revoked token was not forgotten: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(alice)) || bytes.Contains(b, []byte(bob)) {
			t.Errorf("%s holds a token in clear", path)
		}
		return nil
	})
}

// TestActorFromAnotherNode: a token learned by one node (one resolver) names
// the actor of events on another that shares the store — a cluster's client
// signs in through one sidecar and changes things through the next — without
// waiting for the report server (the user id follows in the background).
// Unknown tokens stay unknown, and Actor does not make a
// token authenticate without the report server's check.
func TestActorFromAnotherNode(t *testing.T) {
	f := setup(t, true)
	db, node := f.withStore(t, t.TempDir())
	t.Cleanup(func() { _ = db.Close() })
	f.res = node()
	alice := f.observe(t, "alice", false)
	other := node()
	if _, ok := other.Peek(alice); ok {
		t.Fatal("the other node's cache knows alice's token before any use")
	}
	id, ok := other.Actor(t.Context(), alice)
	if !ok || id.Name != "alice" {
		t.Fatalf("Actor on the other node: %+v, %v; want alice", id, ok)
	}
	if _, ok := other.Actor(t.Context(), "never-issued"); ok {
		t.Fatal("Actor names the user of a token nobody learned")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p, ok := other.Peek(alice); ok && p.ID != "" && p.ID != "alice" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the user id was not looked up in the background within 10s")
		}
		<-time.After(5 * time.Millisecond)
	}
	if !f.sim.RevokeToken(alice) {
		t.Fatal("revoke failed")
	}
	if _, err := other.Resolve(t.Context(), alice); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("a token restored for naming authenticated without the report server's check: %v", err)
	}
}

// TestTokenRequestReadAsTheServerReadsIt: the report server's OWIN host reads
// a /Token body as a form whatever its Content-Type, so a JSON body that
// names one user to a JSON reader and another to a form reader gets the
// form reader's user's token; the resolver must learn it as that user or
// not at all, never as the JSON reader's user.
func TestTokenRequestReadAsTheServerReadsIt(t *testing.T) {
	f := setup(t, true)
	// Whether the real token answer names the user is unconfirmed: assume
	// it does not, so the request alone must decide.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		r.Header.Del("Accept-Encoding")
		f.sim.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			delete(m, "userName")
			body, _ = json.Marshal(m)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	t.Cleanup(up.Close)
	base, _ := url.Parse(up.URL)
	p, err := proxy.New(proxy.Options{Upstream: base, Tap: f.res, Logger: zerolog.Nop(), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	t.Cleanup(px.Close)
	for _, tc := range []struct {
		ctype, body string
		want        string // the user the token is learned for; "" = not learned
	}{
		{"application/json", `{"username":"admin","x":"&username=alice&password=alice&grant_type=password&y="}`, "alice"},
		{"text/plain", `{"username":"admin"}&username=alice&password=alice&grant_type=password`, "alice"},
		{"application/x-www-form-urlencoded", "grant_type=password&username=%61lice&password=alice", "alice"},
		// Read differently by readers that also split on ';': not learned.
		{"application/x-www-form-urlencoded", "grant_type=password&username=alice;username=admin&password=alice", ""},
	} {
		res, err := http.Post(px.URL+"/Token", tc.ctype, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		raw := readAll(t, res)
		tok, err := reportserver.ParseTokenResponse(raw)
		if res.StatusCode != 200 || err != nil {
			if tc.want != "" {
				t.Fatalf("%s %q: %d %s, want a token for %s", tc.ctype, tc.body, res.StatusCode, raw, tc.want)
			}
			continue // refused upstream: nothing issued, nothing to learn
		}
		id, err := f.res.Resolve(t.Context(), tok.AccessToken)
		switch {
		case tc.want == "" && !errors.Is(err, identity.ErrUnknownToken):
			t.Errorf("%s %q: learned as %+v, %v; want not learned", tc.ctype, tc.body, id, err)
		case tc.want != "" && (err != nil || id.Name != tc.want):
			t.Errorf("%s %q: learned as %+v, %v; want %s", tc.ctype, tc.body, id, err, tc.want)
		}
	}
	// Direct: what formUser would accept, fed as the proxy would.
	for _, body := range []string{
		`{"username":"admin","password":"admin","grant_type":"password"}`, // no form pair names a user
		"grant_type=password&username=&password=x",
		"grant_type=client_credentials&username=alice&password=alice",
		"grant_type=password&grant_type=password&username=alice&password=alice",
		"grant_type=password&username=%ff&password=x",
	} {
		tok, err := f.client.Exchange(t.Context(), "alice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		f.res.Observe(t.Context(), &tap.Exchange{
			Method: "POST", Path: "/Token", Status: 200, Time: f.clk.Now(),
			RequestHeader:  http.Header{"Content-Type": {"application/json"}},
			RequestBody:    []byte(body),
			ResponseHeader: http.Header{"Content-Type": {"application/json"}},
			ResponseBody:   []byte(`{"access_token":"` + tok.AccessToken + `","token_type":"bearer","expires_in":3599}`),
		})
		if id, err := f.res.Resolve(t.Context(), tok.AccessToken); !errors.Is(err, identity.ErrUnknownToken) {
			t.Errorf("%q: learned as %+v, %v; want not learned", body, id, err)
		}
	}
}

// TestUserNamedOperatorIsNotTheOperator: without a service account a user's
// id comes from its name; a user named "operator" (any case) must not get
// the operator's id, or it would see the operator's webhooks.
func TestUserNamedOperatorIsNotTheOperator(t *testing.T) {
	f := setup(t, false)
	for _, name := range []string{"operator", "OPERATOR", "Operator"} {
		if _, err := f.sim.AddUser(name, strings.ToLower(name), false); err != nil && !strings.Contains(err.Error(), "exist") {
			t.Fatal(err)
		}
		tok := f.observe(t, name, false)
		id, err := f.res.Resolve(t.Context(), tok)
		if err != nil || id.ID == identity.OperatorID || id.Operator || id.Admin {
			t.Fatalf("%s: %+v %v, want a plain user with an id other than %q", name, id, err, identity.OperatorID)
		}
		if p, ok := f.res.Peek(tok); !ok || p.ID != id.ID {
			t.Fatalf("Peek %s: %+v, want id %q", name, p, id.ID)
		}
	}
	op, err := f.res.Resolve(t.Context(), opToken)
	if err != nil || op.ID != identity.OperatorID {
		t.Fatalf("operator: %+v %v", op, err)
	}
	// The mapping is one-to-one: no two names share an id.
	seen := map[string]string{}
	for _, n := range []string{"operator", "~operator", "~~operator", "alice", "~alice", "Alice~", "op"} {
		id := identity.NameID(n)
		if other, dup := seen[id]; dup || id == identity.OperatorID {
			t.Fatalf("NameID(%q) = %q collides with %q or the operator", n, id, other)
		}
		seen[id] = n
	}
}

// TestLogoutThroughTheProxyForgetsTheToken: a sign-out through the proxy
// ends the token's life at the admin API at once, within the re-check
// interval, even though the resolver verified it moments before.
func TestLogoutThroughTheProxyForgetsTheToken(t *testing.T) {
	f := setup(t, true)
	up := httptest.NewServer(f.sim)
	t.Cleanup(up.Close)
	base, _ := url.Parse(up.URL)
	p, err := proxy.New(proxy.Options{Upstream: base, Tap: f.res, Logger: zerolog.Nop(), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	t.Cleanup(px.Close)
	alice := f.observe(t, "alice", false)
	bob := f.observe(t, "bob", false)
	for _, tok := range []string{alice, bob} {
		if _, err := f.res.Resolve(t.Context(), tok); err != nil { // verified now: fresh for the TTL
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, px.URL+"/api/reportserver/v2/logout", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if id, err := f.res.Resolve(t.Context(), alice); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("alice after logout: %+v %v, want unauthenticated", id, err)
	}
	if _, ok := f.res.Peek(alice); ok {
		t.Fatal("Peek still knows alice's token after logout")
	}
	if id, err := f.res.Resolve(t.Context(), bob); err != nil || id.Name != "bob" {
		t.Fatalf("bob is unaffected: %+v %v", id, err)
	}
}
