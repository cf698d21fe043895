package simulator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// env is a simulator behind a real loopback HTTP server.
type env struct {
	t   *testing.T
	sim *simulator.Server
	srv *httptest.Server
}

func newEnv(t *testing.T, opts simulator.Options) *env {
	t.Helper()
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv}
}

// token logs username in at POST /Token (through HTTP).
func (e *env) token(username string) string {
	e.t.Helper()
	var pw string
	for _, c := range e.sim.Users() {
		if c.Username == username {
			pw = c.Password
		}
	}
	res := e.form("/Token", url.Values{"grant_type": {"password"}, "username": {username}, "password": {pw}})
	if res.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", username, res.status, res.body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	res.decode(e.t, &tr)
	return tr.AccessToken
}

func (e *env) userID(username string) string {
	e.t.Helper()
	c, err := e.sim.User(username)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// id reads a create response: a bare JSON string or an object with Id.
func (r result) id(t *testing.T) string {
	t.Helper()
	var s string
	if json.Unmarshal(r.body, &s) == nil {
		return s
	}
	var o struct{ ID string }
	r.decode(t, &o)
	if o.ID == "" {
		t.Fatalf("no Id in %s", r.body)
	}
	return o.ID
}

func (e *env) form(path string, v url.Values) result {
	e.t.Helper()
	res, err := http.Post(e.srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	return readResult(e.t, res)
}

// do sends method path with a JSON body (string, []byte or value; nil for
// none) and the bearer token (if any).
func (e *env) do(token, method, path string, body any, hdr ...string) result {
	e.t.Helper()
	req := testutil.NewRequest(e.t, method, e.srv.URL+path, token, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
	if err != nil {
		e.t.Fatal(err)
	}
	return readResult(e.t, res)
}

func readResult(t *testing.T, res *http.Response) result {
	t.Helper()
	b := testutil.ReadBody(t, res, true)
	return result{status: res.StatusCode, header: res.Header, body: b}
}

// want fails unless r has status.
func want(t *testing.T, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

// fixture creates a category and a report as admin and returns their ids.
func (e *env) fixture() (categoryID, reportID string) {
	e.t.Helper()
	cat, err := e.sim.CreateCategory("Cat " + simulatorID(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	rep, err := e.sim.CreateReport(cat, "Report", "")
	if err != nil {
		e.t.Fatal(err)
	}
	return cat, rep
}

var seq atomic.Int64

func simulatorID(*testing.T) string {
	return strconv.FormatInt(seq.Add(1), 10)
}
