package adminclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/adminclient"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

// TestAgainstRealAdmin runs the client against the real admin handler over a
// real Badger store, authenticated with the operator token.
func TestAgainstRealAdmin(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, _ := url.Parse(dead.URL)
	dead.Close()
	rs, err := reportserver.New(reportserver.Options{BaseURL: deadURL})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.New(identity.Options{Client: rs, OperatorToken: token})
	if err != nil {
		t.Fatal(err)
	}
	h, err := admin.New(admin.Options{Store: db, Identity: ids, Logger: zerolog.Nop(),
		Verifier: admin.VerifierFunc(func(ctx context.Context, w *rswebhooks.Webhook) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := adminclient.New(adminclient.Options{BaseURL: srv.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctx(t)

	fs, err := c.Filters(ctx)
	if err != nil || len(fs) != 5 || fs[0].Name != rswebhooks.FilterReports || fs[0].Description == "" {
		t.Fatalf("Filters = %+v, %v", fs, err)
	}
	w, err := c.CreateWebhook(ctx, &rswebhooks.Webhook{URI: "http://127.0.0.1:9/h", Filters: []string{"Reports"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Secret) < 32 || w.Filters[0] != "reports" || w.User.ID != identity.OperatorID {
		t.Fatalf("created %+v", w)
	}
	w.Description = "x"
	if u, err := c.UpdateWebhook(ctx, w); err != nil || u.Description != "x" {
		t.Fatalf("UpdateWebhook = %+v, %v", u, err)
	}
	if p, err := c.SetPaused(ctx, w.ID, true); err != nil || !p.IsPaused {
		t.Fatalf("SetPaused = %+v, %v", p, err)
	}
	d, err := c.Ping(ctx, w.ID)
	if err != nil || d == nil || !d.Ping {
		t.Fatalf("Ping = %+v, %v", d, err)
	}
	det, err := c.Delivery(ctx, d.ID)
	if err != nil || det.ID != d.ID || det.WebhookID != w.ID || det.AttemptLog == nil {
		t.Fatalf("Delivery = %+v, %v", det, err)
	}
	if ds, err := c.Deliveries(ctx, w.ID, 1); err != nil || len(ds) != 1 {
		t.Fatalf("Deliveries = %v, %v", ds, err)
	}
	now := time.Now().UTC()
	for i := 0; i < 3; i++ {
		at := now.Add(time.Duration(i-3) * time.Minute)
		if err := db.AppendEvent(ctx, &rswebhooks.Event{ID: rswebhooks.NewID(at), Filter: "reports", Type: "Created", Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.Events(ctx, adminclient.EventsQuery{Limit: 2, Filters: []string{"reports"}, Since: now.Add(-time.Hour)})
	if err != nil || len(page.Events) != 2 || page.NextCursor == "" {
		t.Fatalf("Events page 1 = %+v, %v", page, err)
	}
	page, err = c.Events(ctx, adminclient.EventsQuery{Limit: 2, Filters: []string{"reports"}, Since: now.Add(-time.Hour), Cursor: page.NextCursor})
	if err != nil || len(page.Events) != 1 || page.NextCursor != "" {
		t.Fatalf("Events page 2 = %+v, %v", page, err)
	}
	if _, err := c.Events(ctx, adminclient.EventsQuery{Types: []string{"Pinged"}}); adminclient.StatusCode(err) != 400 {
		t.Fatalf("Events with a bad type: %v", err)
	}
	if err := c.DeleteAllWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, err := c.ListWebhooks(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("after DeleteAllWebhooks: %v, %v", ws, err)
	}
	if _, err := c.GetWebhook(ctx, w.ID); !adminclient.IsNotFound(err) {
		t.Fatalf("GetWebhook after delete: %v", err)
	}
	bad, _ := adminclient.New(adminclient.Options{BaseURL: srv.URL, Token: "wrong-token-wrong-token"})
	if _, err := bad.ListWebhooks(ctx); adminclient.StatusCode(err) != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := c.CreateWebhook(ctx, &rswebhooks.Webhook{URI: "ftp://x"}); adminclient.StatusCode(err) != 400 {
		t.Fatalf("bad URI: %v", err)
	}
}
