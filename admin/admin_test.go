package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestJavaScriptClientSample follows the documented client: POST /Token
// (through the proxy), then POST the registration with the bearer token.
func TestJavaScriptClientSample(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	body := hookBody(e.recv.URL+"/api/webhooks/incoming/custom?x=1", map[string]any{"Filters": []string{"reports", "tasks", "alerts"}, "Id": "client-chosen"})
	res := e.do("POST", "/api/webhooks/registrations", tok, body)
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	var w rswebhooks.Webhook
	res.json(t, &w)
	if !hex32.MatchString(w.ID) {
		t.Errorf("Id = %q, want 32 hex characters (client Id ignored)", w.ID)
	}
	if got, want := res.header.Get("Location"), e.admin.URL+"/api/webhooks/registrations/"+w.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if fmt.Sprint(w.Filters) != "[reports tasks alerts]" || w.Secret != body["Secret"] || w.User.Name != "alice" || w.User.ID == "" || w.User.ID == "alice" {
		t.Errorf("stored %+v", w)
	}
	if !w.CreatedUTC.Equal(e.clock.Now()) || !w.UpdatedUTC.Equal(e.clock.Now()) {
		t.Errorf("CreatedUtc %v UpdatedUtc %v, want %v", w.CreatedUTC, w.UpdatedUTC, e.clock.Now())
	}
	_, qs := e.recv.calls()
	if len(qs) != 1 || len(qs[0]) != 1 || !hex32.MatchString(qs[0].Get("echo")) {
		t.Errorf("echo requests: %v, want one with only echo=<32 hex> (query replaced)", qs)
	}
	got := e.do("GET", "/api/webhooks/registrations/"+w.ID, tok, nil)
	var back rswebhooks.Webhook
	got.json(t, &back)
	if got.status != 200 || back.ID != w.ID || back.URI != w.URI || back.Secret != w.Secret {
		t.Errorf("GET back: %d %s", got.status, got.body)
	}
}

func TestStatusCodes(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	uri := e.recv.URL + "/hook"

	t.Run("401 without token", func(t *testing.T) {
		res := e.do("GET", "/api/webhooks/registrations", "", nil)
		if res.status != 401 || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%d %q", res.status, res.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("401 unknown token advises login", func(t *testing.T) {
		res := e.do("GET", "/api/webhooks/registrations", "nonsense-token-value", nil)
		if res.status != 401 || !strings.Contains(string(res.body), "/api/webhooks/login") {
			t.Errorf("%d %s", res.status, res.body)
		}
	})
	t.Run("401 for a token issued upstream but not seen", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}}
		r, err := http.PostForm(e.upstream.URL+"/Token", form) // bypasses the proxy
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			AccessToken string `json:"access_token"`
		}
		decode(t, r, &v)
		sensitive.add(v.AccessToken)
		if res := e.do("GET", "/api/webhooks/registrations", v.AccessToken, nil); res.status != 401 {
			t.Errorf("%d %s", res.status, res.body)
		}
	})

	var w rswebhooks.Webhook
	res := e.do("POST", "/api/webhooks/registrations", tok, hookBody(uri, nil))
	res.json(t, &w)
	if res.status != 201 {
		t.Fatalf("POST %d %s", res.status, res.body)
	}
	t.Run("PUT with a different Id is 400", func(t *testing.T) {
		res := e.do("PUT", "/api/webhooks/registrations/"+w.ID, tok, hookBody(uri, map[string]any{"Id": "other"}))
		if res.status != 400 || !strings.Contains(string(res.body), "Id") {
			t.Errorf("%d %s", res.status, res.body)
		}
	})
	t.Run("PUT matching Id (any case) is 200 with empty body", func(t *testing.T) {
		e.clock.Add(time.Minute)
		res := e.do("PUT", "/api/webhooks/registrations/"+w.ID, tok, map[string]any{"Id": strings.ToUpper(w.ID), "WebHookUri": uri, "IsPaused": true, "Filters": []string{"ALERTS", "reports", "Alerts"}})
		if res.status != 200 || len(res.body) != 0 {
			t.Fatalf("%d %q", res.status, res.body)
		}
		var got rswebhooks.Webhook
		e.do("GET", "/api/webhooks/registrations/"+w.ID, tok, nil).json(t, &got)
		if !got.IsPaused || fmt.Sprint(got.Filters) != "[reports alerts]" || got.Secret != w.Secret ||
			!got.CreatedUTC.Equal(w.CreatedUTC) || !got.UpdatedUTC.Equal(e.clock.Now()) || got.User != w.User {
			t.Errorf("after PUT: %+v", got)
		}
	})
	t.Run("PUT unknown id is 404", func(t *testing.T) {
		res := e.do("PUT", "/api/webhooks/registrations/0123456789abcdef0123456789abcdef", tok, hookBody(uri, map[string]any{"Id": "0123456789abcdef0123456789abcdef"}))
		if res.status != 404 {
			t.Errorf("%d %s", res.status, res.body)
		}
	})
	t.Run("GET filters", func(t *testing.T) {
		var fs []map[string]string
		res := e.do("GET", "/api/webhooks/filters", tok, nil)
		res.json(t, &fs)
		if res.status != 200 || len(fs) != 5 || fs[0]["Name"] != "reports" || fs[4]["Name"] != "alerts" || fs[2]["Description"] == "" {
			t.Errorf("%d %s", res.status, res.body)
		}
	})
	t.Run("413 for a body over 64 KiB", func(t *testing.T) {
		big := hookBody(uri, map[string]any{"Description": strings.Repeat("d", 70<<10)})
		if res := e.do("POST", "/api/webhooks/registrations", tok, big); res.status != 413 {
			t.Errorf("%d %s", res.status, res.body)
		}
	})
	t.Run("ping 202, deliveries, delivery, redeliver", func(t *testing.T) {
		res := e.do("POST", "/api/webhooks/registrations/"+w.ID+"/ping", tok, nil)
		var d rswebhooks.Delivery
		res.json(t, &d)
		if res.status != 202 || !d.Ping || d.WebhookID != w.ID || d.State != rswebhooks.DeliveryPending {
			t.Fatalf("%d %s", res.status, res.body)
		}
		var ds []rswebhooks.Delivery
		res = e.do("GET", "/api/webhooks/registrations/"+w.ID+"/deliveries?limit=10", tok, nil)
		res.json(t, &ds)
		if res.status != 200 || len(ds) != 1 || ds[0].ID != d.ID {
			t.Errorf("%d %s", res.status, res.body)
		}
		if res := e.do("GET", "/api/webhooks/registrations/"+w.ID+"/deliveries?limit=0", tok, nil); res.status != 400 {
			t.Errorf("limit=0: %d", res.status)
		}
		res = e.do("GET", "/api/webhooks/deliveries/"+d.ID, tok, nil)
		var detail map[string]any
		res.json(t, &detail)
		if res.status != 200 || detail["Id"] != d.ID || detail["Attempts"] == nil {
			t.Errorf("%d %s", res.status, res.body)
		}
		if res := e.do("POST", "/api/webhooks/deliveries/"+d.ID+"/redeliver", tok, nil); res.status != 202 {
			t.Errorf("redeliver: %d %s", res.status, res.body)
		}
		if res := e.do("GET", "/api/webhooks/deliveries/NOPE", tok, nil); res.status != 404 {
			t.Errorf("unknown delivery: %d", res.status)
		}
		t.Run("409 redeliver after the webhook is deleted (administrator)", func(t *testing.T) {
			if res := e.do("DELETE", "/api/webhooks/registrations/"+w.ID, tok, nil); res.status != 200 || len(res.body) != 0 {
				t.Fatalf("DELETE %d %q", res.status, res.body)
			}
			if res := e.do("DELETE", "/api/webhooks/registrations/"+w.ID, tok, nil); res.status != 404 {
				t.Errorf("second DELETE %d", res.status)
			}
			if res := e.do("POST", "/api/webhooks/deliveries/"+d.ID+"/redeliver", tok, nil); res.status != 404 {
				t.Errorf("owner after delete: %d (the webhook is gone, so only administrators see it)", res.status)
			}
			if res := e.do("POST", "/api/webhooks/deliveries/"+d.ID+"/redeliver", operatorToken, nil); res.status != 409 {
				t.Errorf("operator: %d %s", res.status, res.body)
			}
		})
	})
	t.Run("DELETE all is 200 and removes only the caller's", func(t *testing.T) {
		bob := e.token("bob")
		e.do("POST", "/api/webhooks/registrations", tok, hookBody(uri, nil))
		e.do("POST", "/api/webhooks/registrations", bob, hookBody(uri, nil))
		if res := e.do("DELETE", "/api/webhooks/registrations", tok, nil); res.status != 200 || len(res.body) != 0 {
			t.Fatalf("%d %q", res.status, res.body)
		}
		var mine, bobs []rswebhooks.Webhook
		e.do("GET", "/api/webhooks/registrations", tok, nil).json(t, &mine)
		e.do("GET", "/api/webhooks/registrations", bob, nil).json(t, &bobs)
		if len(mine) != 0 || len(bobs) != 1 {
			t.Errorf("alice %d, bob %d", len(mine), len(bobs))
		}
	})
	t.Run("405 for an unsupported method", func(t *testing.T) {
		if res := e.do("PATCH", "/api/webhooks/registrations", tok, nil); res.status != 405 {
			t.Errorf("%d", res.status)
		}
	})
}

func decode(t *testing.T, r *http.Response, v any) {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	response{status: r.StatusCode, body: b}.json(t, v)
}

func TestEchoVerification(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	cases := []struct {
		name, mode, query string
		status            int
		msg               string
	}{
		// A non-administrator gets one answer whatever failed.
		{"wrong body", "wrong", "", 400, "must answer 2xx with exactly the value"},
		{"non-2xx", "500", "", 400, "must answer 2xx with exactly the value"},
		{"noecho skips the check", "wrong", "?noecho=1", 201, ""},
		{"bare noecho skips too", "wrong", "?a=b&noecho", 201, ""},
		{"ok", "echo", "?keep=me", 201, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.recv.setMode(c.mode)
			before := countHooks(t, e)
			res := e.do("POST", "/api/webhooks/registrations", tok, hookBody(e.recv.URL+"/in"+c.query, map[string]any{"Headers": map[string]string{"X-Api-Key": "k1"}}))
			if res.status != c.status || !strings.Contains(string(res.body), c.msg) {
				t.Errorf("%d %s", res.status, res.body)
			}
			if c.status == 400 && strings.Contains(string(res.body), "WebHookUri") == false {
				t.Errorf("message should name WebHookUri: %s", res.body)
			}
			want := before
			if c.status == 201 {
				want++
			}
			if got := countHooks(t, e); got != want {
				t.Errorf("stored %d webhooks, want %d", got, want)
			}
		})
	}
	hs, _ := e.recv.calls()
	if len(hs) == 0 || hs[0].Get("X-Api-Key") != "k1" {
		t.Errorf("echo request did not carry the webhook's headers: %v", hs)
	}
	t.Run("address policy applies", func(t *testing.T) {
		e2 := newEnv(t, envOptions{denyLoopback: true})
		res := e2.do("POST", "/api/webhooks/registrations", e2.token("alice"), hookBody(e2.recv.URL+"/in", nil))
		if res.status != 400 || !strings.Contains(string(res.body), "refused") {
			t.Errorf("%d %s", res.status, res.body)
		}
		if hs, _ := e2.recv.calls(); len(hs) != 0 {
			t.Errorf("receiver on a denied address was reached")
		}
	})
}

func countHooks(t *testing.T, e *env) int {
	t.Helper()
	ws, err := e.db.ListWebhooks(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(ws)
}
