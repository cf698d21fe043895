package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
)

// TestAuthorisationMatrix runs every endpoint as every kind of caller and
// asserts the exact status, and that callers who may not see alice's
// webhook learn nothing about it (id, secret, delivery id, owner, count).
func TestAuthorisationMatrix(t *testing.T) {
	e := newEnv(t, envOptions{})
	expired := e.token("alice")
	revoked := e.token("bob")
	e.clock.Add(2 * time.Hour) // the simulator's tokens live 1 h
	if !e.sim.RevokeToken(revoked) {
		t.Fatal("revoke failed")
	}
	// A revoked token whose last check is older than the TTL is refused.
	callers := map[string]string{
		"anonymous": "", "bad": "not-a-token-at-all", "expired": expired,
		"alice": e.token("alice"), "bob": e.token("bob"), "admin": e.token("admin"), "operator": operatorToken,
	}
	// revoked was seen but never verified since issue, two hours ago.
	callers["revoked"] = revoked
	uri := e.recv.URL + "/hook"
	newAliceHook := func() (rswebhooks.Webhook, rswebhooks.Delivery) {
		var w rswebhooks.Webhook
		res := e.do("POST", "/api/webhooks/registrations", callers["alice"], hookBody(uri, nil))
		res.json(t, &w)
		var d rswebhooks.Delivery
		e.do("POST", "/api/webhooks/registrations/"+w.ID+"/ping", callers["alice"], nil).json(t, &d)
		if w.ID == "" || d.ID == "" {
			t.Fatalf("setup: %s", res.body)
		}
		return w, d
	}
	type endpoint struct {
		name   string
		call   func(tok string, w rswebhooks.Webhook, d rswebhooks.Delivery) response
		expect map[string]int // alice, bob, admin, operator; unauthenticated callers always 401
	}
	all := func(alice, bob, admin, op int) map[string]int {
		return map[string]int{"alice": alice, "bob": bob, "admin": admin, "operator": op}
	}
	eps := []endpoint{
		{"GET registrations", func(tok string, _ rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("GET", "/api/webhooks/registrations", tok, nil)
		}, all(200, 200, 200, 200)},
		{"POST registrations", func(tok string, _ rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("POST", "/api/webhooks/registrations", tok, hookBody(uri, nil))
		}, all(201, 201, 201, 201)},
		{"GET registration", func(tok string, w rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("GET", "/api/webhooks/registrations/"+w.ID, tok, nil)
		}, all(200, 404, 200, 200)},
		{"PUT registration", func(tok string, w rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("PUT", "/api/webhooks/registrations/"+w.ID, tok, hookBody(uri, map[string]any{"Id": w.ID}))
		}, all(200, 404, 200, 200)},
		{"DELETE registration", func(tok string, w rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("DELETE", "/api/webhooks/registrations/"+w.ID, tok, nil)
		}, all(200, 404, 200, 200)},
		{"DELETE registrations", func(tok string, _ rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("DELETE", "/api/webhooks/registrations", tok, nil)
		}, all(200, 200, 200, 200)},
		{"GET deliveries", func(tok string, w rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("GET", "/api/webhooks/registrations/"+w.ID+"/deliveries", tok, nil)
		}, all(200, 404, 200, 200)},
		{"POST ping", func(tok string, w rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("POST", "/api/webhooks/registrations/"+w.ID+"/ping", tok, nil)
		}, all(202, 404, 202, 202)},
		{"GET delivery", func(tok string, _ rswebhooks.Webhook, d rswebhooks.Delivery) response {
			return e.do("GET", "/api/webhooks/deliveries/"+d.ID, tok, nil)
		}, all(200, 404, 200, 200)},
		{"POST redeliver", func(tok string, _ rswebhooks.Webhook, d rswebhooks.Delivery) response {
			return e.do("POST", "/api/webhooks/deliveries/"+d.ID+"/redeliver", tok, nil)
		}, all(202, 404, 202, 202)},
		{"GET filters", func(tok string, _ rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("GET", "/api/webhooks/filters", tok, nil)
		}, all(200, 200, 200, 200)},
		{"GET me", func(tok string, _ rswebhooks.Webhook, _ rswebhooks.Delivery) response {
			return e.do("GET", "/api/webhooks/me", tok, nil)
		}, all(200, 200, 200, 200)},
	}
	for _, ep := range eps {
		for _, who := range []string{"anonymous", "bad", "expired", "revoked", "bob", "admin", "operator", "alice"} {
			t.Run(ep.name+"/"+who, func(t *testing.T) {
				w, d := newAliceHook()
				res := ep.call(callers[who], w, d)
				want, ok := ep.expect[who]
				if !ok {
					want = http.StatusUnauthorized
				}
				if res.status != want {
					t.Fatalf("status %d, want %d: %s", res.status, want, res.body)
				}
				if want == 401 && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer")
				}
				if who != "alice" && who != "admin" && who != "operator" {
					for _, secret := range []string{w.ID, w.Secret, d.ID, w.User.ID, `"alice"`} {
						if strings.Contains(string(res.body), secret) {
							t.Errorf("response to %s leaks %q: %s", who, secret, res.body)
						}
					}
				}
				if who == "bob" && ep.name == "GET registrations" && strings.Count(string(res.body), `"Id"`) != strings.Count(string(res.body), `"Name":"bob"`) {
					t.Errorf("bob's list holds other users' webhooks: %s", res.body)
				}
				if (who == "admin" || who == "operator") && ep.name == "PUT registration" {
					var got rswebhooks.Webhook
					e.do("GET", "/api/webhooks/registrations/"+w.ID, callers["alice"], nil).json(t, &got)
					if got.User != w.User {
						t.Errorf("PUT by %s changed the owner to %+v", who, got.User)
					}
				}
				if (who == "admin" || who == "operator") && ep.name == "DELETE registrations" {
					if res := e.do("GET", "/api/webhooks/registrations/"+w.ID, callers["alice"], nil); res.status != 200 {
						t.Errorf("DELETE all by %s removed alice's webhook", who)
					}
				}
				if (who == "admin" || who == "operator") && ep.name == "GET registrations" && !strings.Contains(string(res.body), w.ID) {
					t.Errorf("%s does not see alice's webhook", who)
				}
			})
		}
	}
	t.Run("me names the caller", func(t *testing.T) {
		for who, want := range map[string]admin.Me{
			"alice":    {Name: "alice"},
			"admin":    {Name: "admin", IsAdministrator: true},
			"operator": {ID: "operator", Name: "operator", IsAdministrator: true, IsOperator: true},
		} {
			var got admin.Me
			e.do("GET", "/api/webhooks/me", callers[who], nil).json(t, &got)
			if want.ID == "" {
				want.ID = got.ID // a report-server user id
			}
			if got != want || got.ID == "" {
				t.Errorf("%s: me = %+v, want %+v", who, got, want)
			}
		}
	})
	t.Run("anonymous endpoints", func(t *testing.T) {
		if res := e.do("GET", "/api/webhooks/openapi.json", "", nil); res.status != 200 {
			t.Errorf("openapi: %d", res.status)
		}
		if res := e.do("POST", "/api/webhooks/login", "", map[string]string{"username": "alice"}); res.status != 400 || !strings.Contains(string(res.body), "password") {
			t.Errorf("login without password: %d %s", res.status, res.body)
		}
	})
}

// TestIdentityLifecycle covers login, revocation latency (TTL), expiry and
// the 403 for a disabled user.
func TestIdentityLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.sim.AddUser("carol", "carol-long-password-123", false); err != nil {
		t.Fatal(err)
	}
	sensitive.add("carol-long-password-123")
	req, _ := http.NewRequest("POST", e.admin.URL+"/api/webhooks/login", strings.NewReader("username=carol&password=carol-long-password-123"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		UserName    string `json:"userName"`
	}
	decode(t, r, &login)
	sensitive.add(login.AccessToken)
	if r.StatusCode != 200 || login.AccessToken == "" || login.TokenType != "bearer" || login.ExpiresIn != 3600 || login.UserName != "carol" {
		t.Fatalf("form login: %d %+v", r.StatusCode, login)
	}
	if res := e.do("GET", "/api/webhooks/registrations", login.AccessToken, nil); res.status != 200 {
		t.Fatalf("token from login: %d %s", res.status, res.body)
	}
	if res := e.do("POST", "/api/webhooks/login", "", map[string]string{"UserName": "carol", "Password": "wrong-password-xyz"}); res.status != 400 {
		t.Errorf("bad password: %d %s", res.status, res.body)
	}
	sensitive.add("wrong-password-xyz")

	t.Run("revoked token works until the TTL, then 401", func(t *testing.T) {
		tok := e.token("alice")
		if res := e.do("GET", "/api/webhooks/registrations", tok, nil); res.status != 200 {
			t.Fatal(res.status)
		}
		e.sim.RevokeToken(tok)
		if res := e.do("GET", "/api/webhooks/registrations", tok, nil); res.status != 200 {
			t.Errorf("within TTL: %d (cached check)", res.status)
		}
		e.clock.Add(61 * time.Second)
		if res := e.do("GET", "/api/webhooks/registrations", tok, nil); res.status != 401 {
			t.Errorf("after TTL: %d", res.status)
		}
	})
	t.Run("disabled user is locked out after the TTL", func(t *testing.T) {
		tok := login.AccessToken
		if err := e.sim.DisableUser("carol"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(61 * time.Second)
		res := e.do("GET", "/api/webhooks/registrations", tok, nil)
		// The simulator also refuses a disabled user's token (401): either
		// way the caller is locked out within the TTL.
		if res.status != 401 && res.status != 403 {
			t.Errorf("disabled user: %d %s", res.status, res.body)
		}
	})
}
