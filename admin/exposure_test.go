package admin_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// TestEchoErrorsAreUniformForNonAdmins: a non-administrator cannot tell a
// closed port from a wrong answer or an error status, so the echo check is
// no port scanner; an administrator gets the detail.
func TestEchoErrorsAreUniformForNonAdmins(t *testing.T) {
	e := newEnv(t, envOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/in"
	_ = ln.Close()
	alice, admin := e.token("alice"), e.token("admin")
	var answers []string
	for _, c := range []struct{ mode, uri string }{{"500", e.recv.URL + "/in"}, {"wrong", e.recv.URL + "/in"}, {"echo", dead}} {
		e.recv.setMode(c.mode)
		res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(c.uri, nil))
		if res.status != 400 {
			t.Fatalf("%s: %d %s", c.mode, res.status, res.body)
		}
		answers = append(answers, string(res.body))
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Fatalf("non-administrator answers differ:\n%s", strings.Join(answers, "\n"))
	}
	e.recv.setMode("500")
	if res := e.do("POST", "/api/webhooks/registrations", admin, hookBody(e.recv.URL+"/in", nil)); res.status != 400 || !strings.Contains(string(res.body), "status 500") {
		t.Fatalf("administrator: %d %s, want the detail", res.status, res.body)
	}
}

// TestReceiverAnswersOnlyForAdmins: the receiver's recorded headers, body
// and transport error are shown to administrators, not to the owner,
// unless ShowResponses is set.
func TestReceiverAnswersOnlyForAdmins(t *testing.T) {
	for _, show := range []bool{false, true} {
		e := newEnv(t, envOptions{showResponses: show})
		alice, admin := e.token("alice"), e.token("admin")
		res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/in?noecho", nil))
		var w rswebhooks.Webhook
		res.json(t, &w)
		res = e.do("POST", "/api/webhooks/registrations/"+w.ID+"/ping", alice, nil)
		var d rswebhooks.Delivery
		res.json(t, &d)
		d.State, d.Attempts = rswebhooks.DeliveryFailed, 1
		a := &rswebhooks.Attempt{N: 1, StartedUTC: e.clock.Now(), StatusCode: 200, Error: "dial tcp 10.0.0.5:22: connect: connection refused",
			ResponseHeaders: map[string][]string{"Server": {"internal-admin/1.0"}}, ResponseBody: "internal secret page"}
		if err := e.db.Complete(t.Context(), &d, a); err != nil {
			t.Fatal(err)
		}
		for _, who := range []struct {
			tok  string
			full bool
		}{{alice, show}, {admin, true}} {
			res := e.do("GET", "/api/webhooks/deliveries/"+d.ID, who.tok, nil)
			body := string(res.body)
			if res.status != 200 || !strings.Contains(body, `"StatusCode":200`) {
				t.Fatalf("%d %s", res.status, body)
			}
			leaked := strings.Contains(body, "internal secret page") || strings.Contains(body, "internal-admin") || strings.Contains(body, "10.0.0.5")
			if leaked != who.full {
				t.Errorf("show=%v full=%v: answer %s", show, who.full, body)
			}
		}
	}
}

// TestUserRateLimit: ping, redeliver and registration are limited per user
// (429 with Retry-After); one user's limit is not another's, and
// administrators are not limited.
func TestUserRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{userRate: 2})
	alice, bob, admin := e.token("alice"), e.token("bob"), e.token("admin")
	hook := func(tok string) string {
		res := e.do("POST", "/api/webhooks/registrations", tok, hookBody(e.recv.URL+"/in?noecho", nil))
		var w rswebhooks.Webhook
		res.json(t, &w)
		if res.status != 201 {
			t.Fatalf("register: %d %s", res.status, res.body)
		}
		return w.ID
	}
	aw := hook(alice) // 1 of alice's 2
	if res := e.do("POST", "/api/webhooks/registrations/"+aw+"/ping", alice, nil); res.status != 202 {
		t.Fatalf("ping 2: %d %s", res.status, res.body)
	}
	res := e.do("POST", "/api/webhooks/registrations/"+aw+"/ping", alice, nil)
	if res.status != 429 || res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), "ping") {
		t.Fatalf("ping 3: %d %v %s, want 429 with Retry-After", res.status, res.header, res.body)
	}
	if res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/in?noecho", nil)); res.status != 429 {
		t.Fatalf("registration over the limit: %d %s", res.status, res.body)
	}
	bw := hook(bob) // bob has his own bucket
	for range 5 {
		if res := e.do("POST", "/api/webhooks/registrations/"+bw+"/ping", admin, nil); res.status != 202 {
			t.Fatalf("administrator ping: %d %s", res.status, res.body)
		}
	}
	e.clock.Add(time.Minute)
	if res := e.do("POST", "/api/webhooks/registrations/"+aw+"/ping", alice, nil); res.status != 202 {
		t.Fatalf("ping after a minute: %d %s", res.status, res.body)
	}
}
