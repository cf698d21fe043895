package adminclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/adminclient"
)

const token = "operator-token-0123456789"

// fakeAdmin is a minimal stand-in for the admin API contract (README "Manage webhooks"; admin/openapi.json):
// enough state to exercise every client call and its error paths.
type fakeAdmin struct {
	mu         sync.Mutex
	webhooks   map[string]*rswebhooks.Webhook
	deliveries map[string]*rswebhooks.Delivery
	attempts   map[string][]rswebhooks.Attempt
	n          int
	emptyPut   bool // answer PUT with 200 and no body, as the report server does
	lastAuth   string
}

func newFake() *fakeAdmin {
	return &fakeAdmin{
		webhooks:   map[string]*rswebhooks.Webhook{},
		deliveries: map[string]*rswebhooks.Delivery{},
		attempts:   map[string][]rswebhooks.Attempt{},
	}
}

func msg(w http.ResponseWriter, status int, m string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Message": m})
}

func ok(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastAuth = r.Header.Get("Authorization")
	if f.lastAuth != "Bearer "+token {
		msg(w, http.StatusUnauthorized, "Authorization: a valid bearer token is required")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/api/webhooks/")
	parts := strings.Split(p, "/")
	switch {
	case p == "filters" && r.Method == http.MethodGet:
		var out []adminclient.Filter
		for _, n := range rswebhooks.Filters() {
			out = append(out, adminclient.Filter{Name: n, Description: n + " changes"})
		}
		ok(w, 200, out)
	case p == "registrations" && r.Method == http.MethodGet:
		out := []*rswebhooks.Webhook{}
		for _, wh := range f.webhooks {
			out = append(out, wh)
		}
		ok(w, 200, out)
	case p == "registrations" && r.Method == http.MethodPost:
		var wh rswebhooks.Webhook
		if err := json.NewDecoder(r.Body).Decode(&wh); err != nil {
			msg(w, 400, "body: "+err.Error())
			return
		}
		if wh.URI == "" {
			msg(w, 400, "WebHookUri: is required")
			return
		}
		f.n++
		wh.ID = strings.Repeat("a", 31) + string(rune('0'+f.n))
		if wh.Secret == "" {
			wh.Secret = strings.Repeat("s", 32)
		}
		if len(wh.Filters) == 0 {
			wh.Filters = []string{"*"}
		}
		f.webhooks[wh.ID] = &wh
		w.Header().Set("Location", "/api/webhooks/registrations/"+wh.ID)
		ok(w, 201, wh)
	case p == "registrations" && r.Method == http.MethodDelete:
		clear(f.webhooks)
		w.WriteHeader(200)
	case len(parts) == 2 && parts[0] == "registrations":
		wh, found := f.webhooks[parts[1]]
		if !found {
			msg(w, 404, "Id: no webhook "+parts[1])
			return
		}
		switch r.Method {
		case http.MethodGet:
			ok(w, 200, wh)
		case http.MethodDelete:
			delete(f.webhooks, wh.ID)
			w.WriteHeader(200)
		case http.MethodPut:
			var in rswebhooks.Webhook
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				msg(w, 400, "body: "+err.Error())
				return
			}
			if in.ID != wh.ID {
				msg(w, 400, "Id: must match the path")
				return
			}
			f.webhooks[wh.ID] = &in
			if f.emptyPut {
				w.WriteHeader(200)
				return
			}
			ok(w, 200, in)
		}
	case len(parts) == 3 && parts[0] == "registrations":
		wh, found := f.webhooks[parts[1]]
		if !found {
			msg(w, 404, "Id: no webhook "+parts[1])
			return
		}
		switch {
		case parts[2] == "deliveries" && r.Method == http.MethodGet:
			out := []*rswebhooks.Delivery{}
			for _, d := range f.deliveries {
				if d.WebhookID == wh.ID {
					out = append(out, d)
				}
			}
			ok(w, 200, out)
		case parts[2] == "ping" && r.Method == http.MethodPost:
			d := &rswebhooks.Delivery{ID: "ping-" + wh.ID, WebhookID: wh.ID, Ping: true, State: rswebhooks.DeliveryPending}
			f.deliveries[d.ID] = d
			ok(w, 202, d)
		default:
			msg(w, 405, "method not allowed")
		}
	case len(parts) == 2 && parts[0] == "deliveries" && r.Method == http.MethodGet:
		d, found := f.deliveries[parts[1]]
		if !found {
			msg(w, 404, "Id: no delivery "+parts[1])
			return
		}
		ok(w, 200, struct {
			*rswebhooks.Delivery
			Attempts []rswebhooks.Attempt
		}{d, f.attempts[d.ID]})
	case len(parts) == 3 && parts[0] == "deliveries" && parts[2] == "redeliver" && r.Method == http.MethodPost:
		d, found := f.deliveries[parts[1]]
		if !found {
			msg(w, 404, "Id: no delivery "+parts[1])
			return
		}
		if d.State == rswebhooks.DeliveryPending {
			msg(w, 409, "State: the delivery is still pending")
			return
		}
		d.State = rswebhooks.DeliveryPending
		ok(w, 200, d)
	default:
		http.NotFound(w, r)
	}
}

func setup(t *testing.T, tok string) (*fakeAdmin, *adminclient.Client) {
	t.Helper()
	f := newFake()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := adminclient.New(adminclient.Options{BaseURL: srv.URL + "/", Token: tok, HTTP: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestWebhookLifecycle(t *testing.T) {
	f, c := setup(t, token)
	ctx := ctx(t)

	created, err := c.CreateWebhook(ctx, &rswebhooks.Webhook{URI: "http://127.0.0.1:9/hook?noecho=1", Description: "d", Headers: map[string]string{"X-A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.Secret == "" || len(created.Filters) != 1 || created.Filters[0] != "*" {
		t.Fatalf("created = %+v: want an Id, a generated Secret and filters [*]", created)
	}
	if f.lastAuth != "Bearer "+token {
		t.Fatalf("Authorization = %q", f.lastAuth)
	}

	got, err := c.GetWebhook(ctx, created.ID)
	if err != nil || got.URI != created.URI || got.Headers["X-A"] != "1" {
		t.Fatalf("GetWebhook = %+v, %v", got, err)
	}

	list, err := c.ListWebhooks(ctx)
	if err != nil || len(list) != 1 || list[0].ID != created.ID {
		t.Fatalf("ListWebhooks = %v, %v", list, err)
	}

	got.Description = "changed"
	upd, err := c.UpdateWebhook(ctx, got)
	if err != nil || upd.Description != "changed" {
		t.Fatalf("UpdateWebhook = %+v, %v", upd, err)
	}

	// An empty PUT answer (the report server's behaviour) is read back.
	f.emptyPut = true
	paused, err := c.SetPaused(ctx, created.ID, true)
	if err != nil || !paused.IsPaused || paused.Description != "changed" {
		t.Fatalf("SetPaused(true) = %+v, %v", paused, err)
	}
	resumed, err := c.SetPaused(ctx, created.ID, false)
	if err != nil || resumed.IsPaused {
		t.Fatalf("SetPaused(false) = %+v, %v", resumed, err)
	}

	filters, err := c.Filters(ctx)
	if err != nil || len(filters) != 5 || filters[0].Name != "reports" {
		t.Fatalf("Filters = %v, %v", filters, err)
	}

	ping, err := c.Ping(ctx, created.ID)
	if err != nil || ping == nil || !ping.Ping || ping.WebhookID != created.ID {
		t.Fatalf("Ping = %+v, %v", ping, err)
	}
	ds, err := c.Deliveries(ctx, created.ID, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != ping.ID {
		t.Fatalf("Deliveries = %v, %v", ds, err)
	}

	// A pending delivery cannot be redelivered: the server's 409 message comes through.
	_, err = c.Redeliver(ctx, ping.ID)
	var ae *adminclient.Error
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Message != "State: the delivery is still pending" {
		t.Fatalf("Redeliver(pending) err = %v", err)
	}
	f.mu.Lock()
	f.deliveries[ping.ID].State = rswebhooks.DeliveryFailed
	f.deliveries[ping.ID].Attempts = 2
	f.attempts[ping.ID] = []rswebhooks.Attempt{{DeliveryID: ping.ID, N: 1, StatusCode: 500}, {DeliveryID: ping.ID, N: 2, Error: "timeout"}}
	f.mu.Unlock()

	det, err := c.Delivery(ctx, ping.ID)
	if err != nil || det.ID != ping.ID || det.Attempts != 2 || len(det.AttemptLog) != 2 || det.AttemptLog[1].Error != "timeout" || det.State != rswebhooks.DeliveryFailed {
		t.Fatalf("Delivery = %+v, %v", det, err)
	}
	re, err := c.Redeliver(ctx, ping.ID)
	if err != nil || re.State != rswebhooks.DeliveryPending {
		t.Fatalf("Redeliver = %+v, %v", re, err)
	}

	if err := c.DeleteWebhook(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhook(ctx, created.ID); !adminclient.IsNotFound(err) {
		t.Fatalf("GetWebhook after delete: err = %v, want 404", err)
	}
	if _, err := c.CreateWebhook(ctx, &rswebhooks.Webhook{URI: "http://x/?noecho=1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteAllWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _ := c.ListWebhooks(ctx); len(list) != 0 {
		t.Fatalf("after DeleteAllWebhooks: %d left", len(list))
	}
}

func TestErrors(t *testing.T) {
	t.Run("401 carries the server message", func(t *testing.T) {
		_, c := setup(t, "wrong")
		_, err := c.ListWebhooks(ctx(t))
		var ae *adminclient.Error
		if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Message, "bearer token") {
			t.Fatalf("err = %#v", err)
		}
		if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "bearer token") {
			t.Fatalf("Error() = %q", err.Error())
		}
	})
	t.Run("400 message names the field", func(t *testing.T) {
		_, c := setup(t, token)
		_, err := c.CreateWebhook(ctx(t), &rswebhooks.Webhook{})
		if adminclient.StatusCode(err) != 400 || !strings.Contains(err.Error(), "WebHookUri: is required") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("404 on unknown ids", func(t *testing.T) {
		_, c := setup(t, token)
		ctx := ctx(t)
		for name, call := range map[string]func() error{
			"get":        func() error { _, err := c.GetWebhook(ctx, "nope"); return err },
			"delete":     func() error { return c.DeleteWebhook(ctx, "nope") },
			"update":     func() error { _, err := c.UpdateWebhook(ctx, &rswebhooks.Webhook{ID: "nope"}); return err },
			"pause":      func() error { _, err := c.SetPaused(ctx, "nope", true); return err },
			"deliveries": func() error { _, err := c.Deliveries(ctx, "nope", 0); return err },
			"ping":       func() error { _, err := c.Ping(ctx, "nope"); return err },
			"delivery":   func() error { _, err := c.Delivery(ctx, "nope"); return err },
			"redeliver":  func() error { _, err := c.Redeliver(ctx, "nope"); return err },
		} {
			if err := call(); !adminclient.IsNotFound(err) {
				t.Errorf("%s: err = %v, want 404", name, err)
			}
		}
	})
	t.Run("empty ids are refused locally", func(t *testing.T) {
		_, c := setup(t, token)
		if _, err := c.GetWebhook(ctx(t), " "); err == nil || !strings.Contains(err.Error(), "webhook id: must not be empty") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("non-JSON error bodies", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream exploded\nstack", http.StatusBadGateway)
		}))
		defer srv.Close()
		c, err := adminclient.New(adminclient.Options{BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListWebhooks(ctx(t))
		var ae *adminclient.Error
		if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "upstream exploded" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		c, _ := adminclient.New(adminclient.Options{BaseURL: u})
		if _, err := c.ListWebhooks(ctx(t)); err == nil || adminclient.StatusCode(err) != 0 {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"ftp://h", "scheme must be http or https"},
		{"http://", "a host is required"},
		{"http://u:p@h", "must not carry user info"},
		{"http://h/?q=1", "must not carry user info, a query"},
		{"://", "BaseURL"},
	} {
		_, err := adminclient.New(adminclient.Options{BaseURL: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) err = %v, want %q", tc.url, err, tc.want)
		}
	}
	if _, err := adminclient.New(adminclient.Options{}); err != nil {
		t.Fatalf("default URL: %v", err)
	}
}

func TestBasePathPrefixIsKept(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		ok(w, 200, []any{})
	}))
	defer srv.Close()
	c, _ := adminclient.New(adminclient.Options{BaseURL: srv.URL + "/admin/"})
	if _, err := c.ListWebhooks(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if path != "/admin/api/webhooks/registrations" {
		t.Fatalf("path = %q", path)
	}
}

func TestDeliveryDetailShapes(t *testing.T) {
	for name, body := range map[string]string{
		"flat with list Attempts": `{"Id":"d1","State":"failed","Attempts":[{"Attempt":1,"StatusCode":500}]}`,
		"nested":                  `{"Delivery":{"Id":"d1","State":"failed","Attempts":1},"Attempts":[{"Attempt":1,"StatusCode":500}]}`,
		"AttemptLog":              `{"Id":"d1","State":"failed","Attempts":1,"AttemptLog":[{"Attempt":1,"StatusCode":500}]}`,
		"admin API":               `{"Id":"d1","State":"failed","AttemptCount":1,"Attempts":[{"Attempt":1,"StatusCode":500}]}`,
	} {
		var d adminclient.DeliveryDetail
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.ID != "d1" || d.State != "failed" || d.Attempts != 1 || len(d.AttemptLog) != 1 || d.AttemptLog[0].StatusCode != 500 {
			t.Errorf("%s: %+v", name, d)
		}
	}
}
