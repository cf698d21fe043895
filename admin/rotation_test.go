package admin_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks"
)

// rotated is the answer of POST …/rotate and …/rotate/promote.
type rotated struct {
	rswebhooks.Webhook
}

func TestRotateSecret(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice, bob := e.token("alice"), e.token("bob")
	const reg = "/api/webhooks/registrations"
	res := e.do("POST", reg, alice, hookBody(e.recv.URL+"/h", nil))
	var w rswebhooks.Webhook
	res.json(t, &w)
	old := w.Secret
	path := reg + "/" + w.ID + "/rotate"

	if res := e.do("POST", path, bob, nil); res.status != 404 {
		t.Fatalf("another user's rotate: %d %s, want 404", res.status, res.body)
	}
	if res := e.do("POST", path+"/promote", alice, nil); res.status != 409 || !strings.Contains(string(res.body), "no secret rotation") {
		t.Fatalf("promote without rotation: %d %s, want 409", res.status, res.body)
	}

	// No body: a generated secret and the default grace period.
	res = e.do("POST", path, alice, nil)
	if res.status != 200 {
		t.Fatalf("rotate: %d %s", res.status, res.body)
	}
	var r rotated
	res.json(t, &r)
	sensitive.add(r.Secret)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(r.Secret) || r.Secret == old {
		t.Fatalf("generated secret %q (old %q)", r.Secret, old)
	}
	if r.Rotation == nil || !r.Rotation.GraceUntilUTC.Equal(e.clock.Now().Add(rswebhooks.DefaultRotationGrace)) || r.Rotation.Promoted {
		t.Fatalf("Rotation = %+v, want grace until now+24h, not promoted", r.Rotation)
	}
	if strings.Contains(string(res.body), old) || strings.Contains(string(res.body), "PreviousSecret") {
		t.Fatalf("the answer shows the previous secret: %s", res.body)
	}
	get := e.do("GET", reg+"/"+w.ID, alice, nil)
	if strings.Contains(string(get.body), old) || !strings.Contains(string(get.body), `"GraceUntilUtc"`) {
		t.Fatalf("GET during the rotation: %s", get.body)
	}

	// A second rotation with a grace period waits for the first to end.
	if res := e.do("POST", path, alice, map[string]any{"GraceSeconds": 60}); res.status != 409 || !strings.Contains(string(res.body), "GraceSeconds 0") {
		t.Fatalf("second rotation: %d %s, want 409 naming the way out", res.status, res.body)
	}

	// A client of the report server's own API that PUTs what it read
	// keeps the rotation.
	put := hookBody(e.recv.URL+"/h", map[string]any{"Id": w.ID, "Secret": r.Secret, "Description": "edited", "Rotation": nil})
	if res := e.do("PUT", reg+"/"+w.ID, alice, put); res.status != 200 {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	stored, err := e.db.GetWebhook(context.Background(), w.ID)
	if err != nil || stored.Rotation == nil || stored.Rotation.PreviousSecret != old || stored.Description != "edited" {
		t.Fatalf("after PUT with the same secret: %+v %v", stored, err)
	}

	// Promote, moving the webhook in the same write; the new address is
	// verified first, and a failed check changes nothing.
	e.recv.setMode("wrong")
	if res := e.do("POST", path+"/promote", alice, map[string]any{"WebHookUri": e.recv.URL + "/b"}); res.status != 400 {
		t.Fatalf("promote to a receiver failing the echo check: %d %s", res.status, res.body)
	}
	if s, _ := e.db.GetWebhook(context.Background(), w.ID); s.Rotation.Promoted || s.URI != e.recv.URL+"/h" {
		t.Fatalf("a refused promotion changed the webhook: %+v", s)
	}
	e.recv.setMode("echo")
	res = e.do("POST", path+"/promote", alice, map[string]any{"WebHookUri": e.recv.URL + "/b"})
	res.json(t, &r)
	if res.status != 200 || !r.Rotation.Promoted || r.URI != e.recv.URL+"/b" {
		t.Fatalf("promote: %d %s", res.status, res.body)
	}

	// After the grace period the API shows no rotation and the store
	// erases the previous secret.
	e.clock.Add(rswebhooks.DefaultRotationGrace)
	alice = e.token("alice") // the earlier token has expired
	if get := e.do("GET", reg+"/"+w.ID, alice, nil); strings.Contains(string(get.body), "Rotation") {
		t.Fatalf("GET after the grace period: %s", get.body)
	}
	if _, err := e.db.EndRotations(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.db.GetWebhook(context.Background(), w.ID); s.Rotation != nil || s.Secret != r.Secret {
		t.Fatalf("stored after the grace period: rotation %+v", s.Rotation)
	}

	// Given secret, no grace: replaced at once.
	given := newSecret()
	sensitive.add(given)
	res = e.do("POST", path, alice, map[string]any{"Secret": given, "GraceSeconds": 0, "Unknown": true})
	r = rotated{}
	res.json(t, &r)
	if res.status != 200 || r.Secret != given || r.Rotation != nil {
		t.Fatalf("rotate without grace: %d %s", res.status, res.body)
	}
}

func TestRotateRefusesBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice := e.token("alice")
	const reg = "/api/webhooks/registrations"
	res := e.do("POST", reg, alice, hookBody(e.recv.URL+"/h", nil))
	var w rswebhooks.Webhook
	res.json(t, &w)
	path := reg + "/" + w.ID + "/rotate"
	for _, c := range []struct {
		name, body, want string
	}{
		{"negative grace", `{"GraceSeconds": -1}`, "GraceSeconds: must be a whole number of seconds from 0"},
		{"grace over 7 days", `{"GraceSeconds": 604801}`, "to 604800 (7 days), got 604801"},
		{"fractional grace", `{"GraceSeconds": 1.5}`, "GraceSeconds: must be a whole number"},
		{"grace as a string", `{"GraceSeconds": "60"}`, "GraceSeconds: must be a whole number"},
		{"short secret", `{"Secret": "short"}`, "Secret: must be between 32 and 128 characters long, got 5"},
		{"control character", `{"Secret": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u0007"}`, "Secret: must not contain control characters"},
		{"current secret", `{"Secret": "` + w.Secret + `"}`, "Secret: must differ from the current secret"},
		{"secret as a number", `{"Secret": 12}`, "Secret: must be a string"},
		{"not an object", `[1]`, "request body: must be a JSON object"},
		{"malformed", `{"Secret":`, "request body: malformed JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := e.do("POST", path, alice, c.body)
			if res.status != 400 || !strings.Contains(string(res.body), c.want) {
				t.Fatalf("%d %s, want 400 with %q", res.status, res.body, c.want)
			}
		})
	}
	if s, _ := e.db.GetWebhook(context.Background(), w.ID); s.Secret != w.Secret || s.Rotation != nil {
		t.Fatalf("refused rotations changed the webhook: %+v", s)
	}
}

func TestTraceHeadersAreReserved(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice := e.token("alice")
	for _, name := range []string{"traceparent", "TraceParent", "tracestate"} {
		res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/h", map[string]any{"Headers": map[string]string{name: "00-x"}}))
		if res.status != 400 || !strings.Contains(string(res.body), "is set by the sender and cannot be overridden") {
			t.Errorf("Headers %q: %d %s, want 400", name, res.status, res.body)
		}
	}
}
