package reportserver_test

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

func setup(t *testing.T, o reportserver.Options) (*simulator.Server, *reportserver.Client, *testutil.Clock, *url.URL) {
	t.Helper()
	clk := testutil.NewClock(time.Now().UTC().Truncate(time.Second))
	sim := simulator.New(simulator.Options{Now: clk.Now, TokenTTL: time.Hour})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	o.BaseURL, o.Now = base, clk.Now
	c, err := reportserver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c, clk, base
}

func TestServiceAccountCalls(t *testing.T) {
	sim, c, _, _ := setup(t, reportserver.Options{User: "admin", Password: "admin"})
	if !c.Configured() {
		t.Fatal("not configured")
	}
	us, err := c.Users(t.Context())
	if err != nil || len(us) < 3 {
		t.Fatalf("Users: %v %v", us, err)
	}
	alice, err := c.UserByName(t.Context(), "ALICE")
	if err != nil || alice.Username != "alice" || alice.ID == "" || !alice.Enabled {
		t.Fatalf("UserByName: %+v %v", alice, err)
	}
	if _, err := c.UserByName(t.Context(), "nobody"); !errors.Is(err, reportserver.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	for name, want := range map[string]bool{"admin": true, "alice": false, "bob": false} {
		got, err := c.IsAdmin(t.Context(), name)
		if err != nil || got != want {
			t.Errorf("IsAdmin(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	adm, _ := c.UserByName(t.Context(), "admin")
	roles, err := c.UserRoles(t.Context(), adm.ID)
	if err != nil || !reportserver.HasAdminRole(roles) {
		t.Errorf("admin roles %+v %v", roles, err)
	}
	roles, err = c.UserRoles(t.Context(), alice.ID)
	if err != nil || reportserver.HasAdminRole(roles) {
		t.Errorf("alice roles %+v %v", roles, err)
	}
	if _, err := c.Permissions(t.Context(), alice.ID, reportserver.CategoryReport); err != nil {
		t.Errorf("Permissions: %v", err)
	}
	if n := sim.Count("POST", "/Token"); n != 1 {
		t.Errorf("service token fetched %d times, want 1 (cached)", n)
	}
}

func TestServiceTokenRenewal(t *testing.T) {
	sim, c, clk, _ := setup(t, reportserver.Options{User: "admin", Password: "admin"})
	if _, err := c.Users(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Add(59*time.Minute + 30*time.Second) // within the renewal margin of a 1 h token
	if _, err := c.Users(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := sim.Count("POST", "/Token"); n != 2 {
		t.Errorf("token fetched %d times, want 2 (renewed before expiry)", n)
	}
	// The server forgets the token (its clock jumps): one 401, one re-fetch.
	sim.SetClockSkew(3 * time.Hour)
	if _, err := c.Users(t.Context()); err != nil {
		t.Fatalf("after server-side expiry: %v", err)
	}
	if n := sim.Count("POST", "/Token"); n != 3 {
		t.Errorf("token fetched %d times, want 3 (re-fetched once on 401)", n)
	}
}

func TestErrors(t *testing.T) {
	sim, c, _, base := setup(t, reportserver.Options{User: "admin", Password: "admin"})
	unconf, err := reportserver.New(reportserver.Options{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unconf.Users(t.Context()); !errors.Is(err, reportserver.ErrNotConfigured) {
		t.Errorf("unconfigured: %v", err)
	}
	bad, _ := reportserver.New(reportserver.Options{BaseURL: base, User: "admin", Password: "wrong-password-42"})
	_, err = bad.Users(t.Context())
	if !errors.Is(err, reportserver.ErrBadCredentials) || strings.Contains(err.Error(), "wrong-password-42") {
		t.Errorf("bad service password: %v", err)
	}
	static, _ := reportserver.New(reportserver.Options{BaseURL: base, Token: "static-bogus-token"})
	_, err = static.Users(t.Context())
	var se *reportserver.StatusError
	if !errors.As(err, &se) || se.StatusCode != 401 || strings.Contains(err.Error(), "static-bogus-token") {
		t.Errorf("static bad token: %v", err)
	}
	sim.FailWith(500)
	_, err = c.Users(t.Context())
	if !errors.As(err, &se) || se.StatusCode != 500 {
		t.Errorf("failing server: %v", err)
	}
	sim.FailWith(0)
	for _, o := range []reportserver.Options{{}, {BaseURL: &url.URL{Scheme: "ftp", Host: "x"}}, {BaseURL: base, User: "a"}, {BaseURL: base, User: "a", Password: "b", Token: "c"}} {
		if _, err := reportserver.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestExchangeAndTokenValid(t *testing.T) {
	sim, c, _, _ := setup(t, reportserver.Options{})
	tok, err := c.Exchange(t.Context(), "alice", "alice")
	if err != nil || tok.AccessToken == "" || tok.ExpiresIn != time.Hour || tok.UserName != "alice" {
		t.Fatalf("Exchange: %+v %v", tok, err)
	}
	_, err = c.Exchange(t.Context(), "alice", "not-her-password")
	if !errors.Is(err, reportserver.ErrBadCredentials) || strings.Contains(err.Error(), "not-her-password") {
		t.Errorf("bad password: %v", err)
	}
	if ok, err := c.TokenValid(t.Context(), tok.AccessToken); !ok || err != nil {
		t.Errorf("valid token: %v %v", ok, err)
	}
	if ok, err := c.TokenValid(t.Context(), "garbage"); ok || err != nil {
		t.Errorf("garbage token: %v %v", ok, err)
	}
	admin, err := c.IsAdminWithToken(t.Context(), tok.AccessToken, "alice")
	if err != nil || admin {
		t.Errorf("IsAdminWithToken(alice) = %v %v", admin, err)
	}
	sim.FailWith(503)
	if _, err := c.TokenValid(t.Context(), tok.AccessToken); err == nil || strings.Contains(err.Error(), tok.AccessToken) {
		t.Errorf("failing server must be an error without the token: %v", err)
	}
	sim.FailWith(0)
	sim.RevokeToken(tok.AccessToken)
	if ok, err := c.TokenValid(t.Context(), tok.AccessToken); ok || err != nil {
		t.Errorf("revoked token: %v %v", ok, err)
	}
}

func TestParseTokenResponse(t *testing.T) {
	for body, want := range map[string]time.Duration{
		`{"access_token":"a","expires_in":3600,"userName":"u"}`: time.Hour,
		`{"accessToken":"a","expiresIn":"60"}`:                  time.Minute,
		`{"access_token":"a"}`:                                  0,
	} {
		tok, err := reportserver.ParseTokenResponse([]byte(body))
		if err != nil || tok.AccessToken != "a" || tok.ExpiresIn != want {
			t.Errorf("%s: %+v %v", body, tok, err)
		}
	}
	if _, err := reportserver.ParseTokenResponse([]byte(`{"error":"x"}`)); err == nil {
		t.Error("no token accepted")
	}
}
