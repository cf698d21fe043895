package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// A user may register MaxWebhooksPerUser webhooks; the next is refused with
// a 400 naming the limit and nothing is stored. Administrators are exempt.
func TestWebhookLimitPerUser(t *testing.T) {
	e := newEnv(t, envOptions{maxPerUser: 2})
	alice := e.token("alice")
	for i := range 2 {
		if res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/?noecho=1", nil)); res.status != http.StatusCreated {
			t.Fatalf("POST %d: %d %s", i, res.status, res.body)
		}
	}
	res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/?noecho=1", nil))
	if res.status != http.StatusBadRequest || !strings.Contains(string(res.body), "at most 2") || !strings.Contains(string(res.body), "--max-webhooks-per-user") {
		t.Fatalf("third POST = %d %s; want 400 naming the limit", res.status, res.body)
	}
	var mine []rswebhooks.Webhook
	e.do("GET", "/api/webhooks/registrations", alice, nil).json(t, &mine)
	if len(mine) != 2 {
		t.Fatalf("alice has %d webhooks, want 2", len(mine))
	}
	for range 3 {
		if res := e.do("POST", "/api/webhooks/registrations", operatorToken, hookBody(e.recv.URL+"/?noecho=1", nil)); res.status != http.StatusCreated {
			t.Fatalf("operator POST: %d %s", res.status, res.body)
		}
	}
}

// An administrator gives a webhook to another user with PUT and User; the
// owner-missing flag clears; a user's own PUT cannot change the owner.
func TestAdministratorReassignsWebhook(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice, bob := e.token("alice"), e.token("bob")
	res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/?noecho=1", nil))
	var w rswebhooks.Webhook
	res.json(t, &w)
	var bobID string
	{
		b := e.do("POST", "/api/webhooks/registrations", bob, hookBody(e.recv.URL+"/?noecho=1", nil))
		var bw rswebhooks.Webhook
		b.json(t, &bw)
		bobID = bw.User.ID
	}
	// Alice cannot give it away.
	body := hookBody(e.recv.URL+"/?noecho=1", map[string]any{"Id": w.ID, "User": map[string]string{"Id": bobID, "Name": "bob"}})
	if res := e.do("PUT", "/api/webhooks/registrations/"+w.ID, alice, body); res.status != http.StatusOK {
		t.Fatalf("alice PUT: %d %s", res.status, res.body)
	}
	var got rswebhooks.Webhook
	e.do("GET", "/api/webhooks/registrations/"+w.ID, alice, nil).json(t, &got)
	if got.User.ID != w.User.ID {
		t.Fatalf("a user's PUT changed the owner to %+v", got.User)
	}
	if _, err := e.db.SetOwnerMissing(t.Context(), w.User.ID, true); err != nil {
		t.Fatal(err)
	}
	noName := hookBody(e.recv.URL+"/?noecho=1", map[string]any{"Id": w.ID, "User": map[string]string{"Id": bobID}})
	if res := e.do("PUT", "/api/webhooks/registrations/"+w.ID, operatorToken, noName); res.status != http.StatusBadRequest || !strings.Contains(string(res.body), "User.Name") {
		t.Fatalf("PUT without User.Name = %d %s", res.status, res.body)
	}
	if res := e.do("PUT", "/api/webhooks/registrations/"+w.ID, operatorToken, body); res.status != http.StatusOK {
		t.Fatalf("operator PUT: %d %s", res.status, res.body)
	}
	e.do("GET", "/api/webhooks/registrations/"+w.ID, bob, nil).json(t, &got)
	if got.User.ID != bobID || got.User.Name != "bob" || got.OwnerMissing {
		t.Fatalf("after reassignment: %+v", got)
	}
	if res := e.do("GET", "/api/webhooks/registrations/"+w.ID, alice, nil); res.status != http.StatusNotFound {
		t.Fatalf("old owner GET = %d, want 404", res.status)
	}
}

// A delivery whose access is still undecided may tell of an event its owner
// may not read: only administrators see it.
func TestUndecidedDeliveriesHiddenFromOwner(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice := e.token("alice")
	res := e.do("POST", "/api/webhooks/registrations", alice, hookBody(e.recv.URL+"/?noecho=1", nil))
	var w rswebhooks.Webhook
	res.json(t, &w)
	now := e.clock.Now()
	ev := rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: "reports", Type: "Created", Time: now}
	for i, pending := range []bool{true, false} {
		d := &rswebhooks.Delivery{ID: rswebhooks.NewID(now.Add(time.Duration(i) * time.Millisecond)), WebhookID: w.ID, EventID: ev.ID, Event: ev,
			State: rswebhooks.DeliveryPending, NextUTC: now.Add(time.Hour), CreatedUTC: now, UpdatedUTC: now, AccessPending: pending}
		if err := e.db.PutDelivery(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	var mine, all []rswebhooks.Delivery
	e.do("GET", "/api/webhooks/registrations/"+w.ID+"/deliveries", alice, nil).json(t, &mine)
	e.do("GET", "/api/webhooks/registrations/"+w.ID+"/deliveries", operatorToken, nil).json(t, &all)
	if len(mine) != 1 || mine[0].AccessPending || len(all) != 2 {
		t.Fatalf("owner sees %d (%+v), operator %d; want 1 decided and 2", len(mine), mine, len(all))
	}
	for _, d := range all {
		if d.AccessPending {
			if res := e.do("GET", "/api/webhooks/deliveries/"+d.ID, alice, nil); res.status != http.StatusNotFound {
				t.Fatalf("owner GET of an undecided delivery = %d, want 404", res.status)
			}
		}
	}
}
