package admin_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// send is e.do with a chosen Content-Type ("" sends none).
func (e *env) send(method, path, token, contentType, body string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.admin.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.admin.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestContentType: the stock controller reads application/json and
// text/json only; anything else is 415 and stores nothing. A missing
// Content-Type is read as JSON (scripts often omit it).
func TestContentType(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	body := `{"WebHookUri":"` + e.recv.URL + `/in?noecho=1"}`
	cases := []struct {
		ct     string
		status int
	}{
		{"application/json", 201},
		{"application/json; charset=utf-8", 201},
		{"text/json", 201},
		{"application/merge-patch+json", 201},
		{"", 201},
		{"text/plain", 415},
		{"application/x-www-form-urlencoded", 415},
		{"application/xml", 415},
		{"multipart/form-data; boundary=x", 415},
		{"nonsense;;", 415},
		{"application/json; charset=utf-16", 415},
		{"application/json; charset=iso-8859-1", 415},
		{"application/json; charset=UTF-8", 201},
	}
	for _, c := range cases {
		for _, method := range []string{"POST", "PUT"} {
			path := "/api/webhooks/registrations"
			b := body
			if method == "PUT" {
				var w rswebhooks.Webhook
				res := e.do("POST", path, tok, map[string]any{"WebHookUri": e.recv.URL + "/in?noecho=1"})
				res.json(t, &w)
				path += "/" + w.ID
				b = `{"Id":"` + w.ID + `","WebHookUri":"` + e.recv.URL + `/in?noecho=1","Description":"changed"}`
			}
			before := countHooks(t, e)
			res := e.send(method, path, tok, c.ct, b)
			want := c.status
			if method == "PUT" && want == 201 {
				want = 200
			}
			if res.status != want {
				t.Errorf("%s Content-Type %q: %d %s, want %d", method, c.ct, res.status, res.body, want)
				continue
			}
			if want == 415 {
				var m struct{ Message string }
				res.json(t, &m)
				if !strings.HasPrefix(m.Message, "Content-Type: ") || !strings.Contains(m.Message, "application/json") {
					t.Errorf("%s %q: message %q should name Content-Type and application/json", method, c.ct, m.Message)
				}
				if countHooks(t, e) != before {
					t.Errorf("%s %q: a refused request stored a webhook", method, c.ct)
				}
			}
		}
	}
	var all []rswebhooks.Webhook
	e.do("GET", "/api/webhooks/registrations", tok, nil).json(t, &all)
	for _, w := range all {
		if w.Description != "" && w.Description != "changed" {
			t.Errorf("unexpected description %q", w.Description)
		}
	}
}

// TestStrictParameters: the limit query parameter and the login body are
// read only in the forms the API documents; anything else is refused, not
// guessed at.
func TestStrictParameters(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	var w rswebhooks.Webhook
	e.do("POST", "/api/webhooks/registrations", tok, hookBody(e.recv.URL+"/in?noecho=1", nil)).json(t, &w)
	for q, want := range map[string]int{"": 200, "?limit=5": 200, "?limit=500": 200, "?limit=": 400, "?limit=%2B5": 400,
		"?limit=-1": 400, "?limit=0": 400, "?limit=501": 400, "?limit=5&limit=6": 400, "?limit=5.0": 400} {
		if res := e.do("GET", "/api/webhooks/registrations/"+w.ID+"/deliveries"+q, tok, nil); res.status != want ||
			want == 400 && !strings.Contains(string(res.body), "limit: must be an integer between 1 and 500") {
			t.Errorf("deliveries%s: %d %s, want %d", q, res.status, res.body, want)
		}
	}
	for ct, want := range map[string]int{
		"text/plain":                        415,
		"application/json; charset=utf-16":  415,
		"application/xml":                   415,
		"application/x-www-form-urlencoded": 200,
		"":                                  200,
	} {
		res := e.send("POST", "/api/webhooks/login", "", ct, "username=alice&password=alice")
		if res.status != want || want == 415 && !strings.Contains(string(res.body), "Content-Type: must be") {
			t.Errorf("login with Content-Type %q: %d %s, want %d", ct, res.status, res.body, want)
		}
	}
}

// TestUnknownRoutesAnswerJSON: 404 and 405 under /api/webhooks/ carry the
// {"Message"} body like every other error.
func TestUnknownRoutesAnswerJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/api/webhooks/nothing", 404, ""},
		{"GET", "/api/webhooks/registrations/a/b", 404, ""},
		{"PATCH", "/api/webhooks/registrations", 405, "DELETE, GET, HEAD, POST"},
		{"POST", "/api/webhooks/registrations/abc", 405, "DELETE, GET, HEAD, PUT"},
		{"GET", "/api/webhooks/login", 405, "POST"},
	}
	for _, c := range cases {
		res := e.send(c.method, c.path, tok, "", "")
		var m struct{ Message string }
		res.json(t, &m)
		if res.status != c.status || m.Message == "" || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %q %s", c.method, c.path, res.status, res.header.Get("Content-Type"), res.body)
		}
		if res.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, res.header.Get("Allow"), c.allow)
		}
	}
}

// TestIDsAreCaseInsensitive: the stock store normalises ids, and PUT compares
// the body Id without case; the path id is looked up the same way.
func TestIDsAreCaseInsensitive(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	uri := e.recv.URL + "/in?noecho=1"
	var w rswebhooks.Webhook
	e.do("POST", "/api/webhooks/registrations", tok, hookBody(uri, nil)).json(t, &w)
	up := strings.ToUpper(w.ID)
	if res := e.do("GET", "/api/webhooks/registrations/"+up, tok, nil); res.status != 200 {
		t.Errorf("GET upper-case id: %d %s", res.status, res.body)
	}
	if res := e.do("PUT", "/api/webhooks/registrations/"+up, tok, map[string]any{"Id": w.ID, "WebHookUri": uri, "Description": "via upper"}); res.status != 200 {
		t.Errorf("PUT upper-case id: %d %s", res.status, res.body)
	}
	var got rswebhooks.Webhook
	e.do("GET", "/api/webhooks/registrations/"+w.ID, tok, nil).json(t, &got)
	if got.Description != "via upper" || got.ID != w.ID {
		t.Errorf("after PUT: %+v", got)
	}
	if res := e.do("GET", "/api/webhooks/registrations/"+up+"/deliveries", tok, nil); res.status != 200 {
		t.Errorf("deliveries upper-case id: %d %s", res.status, res.body)
	}
	if res := e.do("DELETE", "/api/webhooks/registrations/"+up, tok, nil); res.status != 200 {
		t.Errorf("DELETE upper-case id: %d %s", res.status, res.body)
	}
	if countHooks(t, e) != 0 {
		t.Errorf("webhook not deleted")
	}
}

// TestNoEchoStillAppliesAddressPolicy: noecho skips the echo request, not
// the receiver address policy; a webhook that could never be delivered is
// refused when it is registered.
func TestNoEchoStillAppliesAddressPolicy(t *testing.T) {
	e := newEnv(t, envOptions{denyLoopback: true})
	tok := e.token("alice")
	for _, uri := range []string{
		e.recv.URL + "/in?noecho=1",
		"http://169.254.169.254/latest/meta-data?noecho=1",
		"http://[::1]:9/x?noecho",
		"http://localhost:9/x?NoEcho=1",
	} {
		res := e.do("POST", "/api/webhooks/registrations", tok, hookBody(uri, nil))
		if res.status != 400 || !strings.Contains(string(res.body), "refused by deny rule") || !strings.Contains(string(res.body), "WebHookUri") {
			t.Errorf("%s: %d %s", uri, res.status, res.body)
		}
	}
	if n := countHooks(t, e); n != 0 {
		t.Errorf("%d webhooks stored", n)
	}
	// A name that does not resolve is accepted with noecho: the receiver
	// may not exist yet, and the dialer checks the address at delivery.
	if res := e.do("POST", "/api/webhooks/registrations", tok, hookBody("http://receiver.invalid/x?noecho=1", nil)); res.status != 201 {
		t.Errorf("unresolvable noecho: %d %s", res.status, res.body)
	}
	if hs, _ := e.recv.calls(); len(hs) != 0 {
		t.Errorf("receiver was contacted despite noecho")
	}
}

// TestRevokedTokenMessagePointsAtLogin: a token the report server no
// longer accepts is 401 with a way forward.
func TestRevokedTokenMessagePointsAtLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	if res := e.do("GET", "/api/webhooks/me", tok, nil); res.status != 200 {
		t.Fatal(res.status)
	}
	e.sim.RevokeToken(tok)
	e.clock.Add(61 * time.Second)
	res := e.do("GET", "/api/webhooks/me", tok, nil)
	if res.status != 401 || !strings.Contains(string(res.body), "POST /api/webhooks/login") {
		t.Errorf("%d %s", res.status, res.body)
	}
}

// TestEchoRequestIdentifiesItself: the echo request says who sends it, like
// the notifications (deliver package doc, "Wire format"), and carries only echo in its query.
func TestEchoRequestIdentifiesItself(t *testing.T) {
	e := newEnv(t, envOptions{})
	res := e.do("POST", "/api/webhooks/registrations", e.token("alice"), hookBody(e.recv.URL+"/in?a=1&b=2", map[string]any{"Headers": map[string]string{"X-Api-Key": "k2"}}))
	if res.status != 201 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	hs, qs := e.recv.calls()
	if len(hs) != 1 || !strings.HasPrefix(hs[0].Get("User-Agent"), "rswebhooks") || hs[0].Get("X-Api-Key") != "k2" {
		t.Errorf("echo request headers: %v", hs)
	}
	if len(qs) != 1 || len(qs[0]) != 1 || qs[0].Get("echo") == "" {
		t.Errorf("echo request query: %v", qs)
	}
}

// TestJSONIsNotHTMLEscaped: URIs come back as sent (a=1&b=2, not
// a=1\u0026b=2), as the report server's serializer writes them.
func TestJSONIsNotHTMLEscaped(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	res := e.do("POST", "/api/webhooks/registrations", tok, hookBody(e.recv.URL+"/in?a=1&b=%3C2%3E&noecho=1", nil))
	if res.status != 201 || !strings.Contains(string(res.body), `/in?a=1&b=%3C2%3E&noecho=1"`) {
		t.Errorf("%d %s", res.status, res.body)
	}
	if res := e.do("GET", "/api/webhooks/registrations", tok, nil); !strings.Contains(string(res.body), "a=1&b=%3C2%3E") || strings.HasSuffix(string(res.body), "\n") {
		t.Errorf("%d %q", res.status, res.body)
	}
}
