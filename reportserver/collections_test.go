package reportserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestCollectionEveryFilterAndVersion(t *testing.T) {
	sim := simulator.New(simulator.Options{SeedSamples: true})
	c := simClient(t, sim)
	ctx := context.Background()
	for _, v := range []string{APIv2, APIv3} {
		for _, f := range []string{"reports", "categories", "connections", "tasks", "alerts"} {
			items, st, err := c.Collection(ctx, v, f)
			if err != nil {
				t.Fatalf("%s %s: %v", v, f, err)
			}
			if len(items) == 0 || st.Date.IsZero() {
				t.Fatalf("%s %s: %d items, date %v", v, f, len(items), st.Date)
			}
			var first struct{ ID string }
			if err := json.Unmarshal(items[0], &first); err != nil || first.ID == "" {
				t.Fatalf("%s %s: first item %s", v, f, items[0])
			}
		}
	}
	if _, _, err := c.Collection(ctx, "v1", "reports"); err == nil || !strings.Contains(err.Error(), "API version") {
		t.Errorf("v1: %v", err)
	}
	if _, _, err := c.Collection(ctx, APIv2, "widgets"); err == nil || !strings.Contains(err.Error(), `"widgets"`) {
		t.Errorf("unknown collection: %v", err)
	}
}

func TestServiceIsAdmin(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	ctx := context.Background()
	aliceTok, err := sim.IssueToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	adminTok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want bool
	}{
		{"admin by password", Options{BaseURL: u, User: "admin", Password: "admin"}, true},
		{"alice by password", Options{BaseURL: u, User: "alice", Password: "alice"}, false},
		{"admin by token", Options{BaseURL: u, Token: adminTok}, true},
		{"alice by token", Options{BaseURL: u, Token: aliceTok}, false},
	} {
		c, err := New(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.ServiceIsAdmin(ctx)
		if err != nil || got != tc.want {
			t.Errorf("%s: ServiceIsAdmin = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	sim.FailWith(500)
	c, _ := New(Options{BaseURL: u, Token: adminTok})
	if _, err := c.ServiceIsAdmin(ctx); err == nil {
		t.Error("a failing server must be an error, not a verdict")
	}
}
