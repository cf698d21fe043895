package simulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestToken(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	if err := e.sim.DisableUser("bob"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		ctype string
		form  url.Values
		code  int
		err   string
	}{
		{"admin", "", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin"}}, 200, ""},
		{"user name is case-insensitive", "", url.Values{"grant_type": {"password"}, "username": {"ALICE"}, "password": {"alice"}}, 200, ""},
		{"wrong password", "", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"nope"}}, 400, "invalid_grant"},
		{"unknown user", "", url.Values{"grant_type": {"password"}, "username": {"zed"}, "password": {"zed"}}, 400, "invalid_grant"},
		{"empty credentials (guest)", "", url.Values{"grant_type": {"password"}, "username": {""}, "password": {""}}, 400, "invalid_grant"},
		{"disabled user", "", url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}}, 400, "invalid_grant"},
		{"other grant type", "", url.Values{"grant_type": {"client_credentials"}}, 400, "unsupported_grant_type"},
		// Katana reads the body as a form whatever the Content-Type says.
		{"form body labelled json", "application/json", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin"}}, 200, ""},
		{"empty json body", "application/json", nil, 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ctype
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			res, err := http.Post(e.srv.URL+"/Token", ct, strings.NewReader(tc.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			r := readResult(t, res)
			want(t, r, tc.code)
			var body map[string]any
			r.decode(t, &body)
			if tc.err != "" {
				if body["error"] != tc.err {
					t.Fatalf("error %v, want %s", body["error"], tc.err)
				}
				return
			}
			for _, k := range []string{"access_token", "token_type", "expires_in", "userName", ".issued", ".expires"} {
				if _, ok := body[k]; !ok {
					t.Errorf("token response lacks %q: %s", k, r.body)
				}
			}
			if body["token_type"] != "bearer" || body["expires_in"] != float64(3600) {
				t.Errorf("token_type/expires_in = %v/%v", body["token_type"], body["expires_in"])
			}
			if _, err := time.Parse(http.TimeFormat, body[".expires"].(string)); err != nil {
				t.Errorf(".expires: %v", err)
			}
		})
	}
}

func TestAuthRequired(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	e := newEnv(t, simulator.Options{Now: clock, TokenTTL: 10 * time.Minute})

	const path = "/api/reportserver/v2/categories"
	valid := e.token("alice")
	want(t, e.do(valid, "GET", path, nil), 200)

	t.Run("no header", func(t *testing.T) {
		r := e.do("", "GET", path, nil)
		want(t, r, 401)
		if r.header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("basic scheme", func(t *testing.T) {
		want(t, e.do("", "GET", path, nil, "Authorization", "Basic YWRtaW46YWRtaW4="), 401)
	})
	t.Run("unknown token", func(t *testing.T) { want(t, e.do("nope", "GET", path, nil), 401) })
	t.Run("every api generation", func(t *testing.T) {
		for _, p := range []string{"/api/reportserver/reports", "/api/reportserver/v1/reports", "/api/reportserver/v2/reports", "/api/reportserver/v3/reports"} {
			want(t, e.do("", "GET", p, nil), 401)
			want(t, e.do(valid, "GET", p, nil), 200)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		tok := e.token("alice")
		if !e.sim.RevokeToken(tok) {
			t.Fatal("RevokeToken: token not live")
		}
		want(t, e.do(tok, "GET", path, nil), 401)
	})
	t.Run("logout", func(t *testing.T) {
		for _, p := range []string{"/api/reportserver/logout", "/api/reportserver/v1/logout", "/api/reportserver/v2/logout"} {
			tok := e.token("alice")
			want(t, e.do(tok, "POST", p, nil), 200)
			want(t, e.do(tok, "GET", path, nil), 401)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		tok := e.token("bob")
		if err := e.sim.DisableUser("bob"); err != nil {
			t.Fatal(err)
		}
		want(t, e.do(tok, "GET", path, nil), 401)
		if err := e.sim.EnableUser("bob"); err != nil {
			t.Fatal(err)
		}
		want(t, e.do(e.token("bob"), "GET", path, nil), 200)
	})
	t.Run("expired", func(t *testing.T) {
		tok := e.token("alice")
		advance(9 * time.Minute)
		want(t, e.do(tok, "GET", path, nil), 200)
		advance(time.Minute)
		want(t, e.do(tok, "GET", path, nil), 401)
	})
	t.Run("clock skew expires tokens early", func(t *testing.T) {
		tok := e.token("alice")
		e.sim.SetClockSkew(11 * time.Minute)
		defer e.sim.SetClockSkew(0)
		want(t, e.do(tok, "GET", path, nil), 401)
	})
}

func TestUsersAndRoles(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice := e.token("admin"), e.token("alice")
	adminID, aliceID, bobID := e.userID("admin"), e.userID("alice"), e.userID("bob")
	if len(adminID) != 32 {
		t.Fatalf("user id %q is not a 32-hex GUID", adminID)
	}

	tests := []struct {
		name, token, method, path string
		code                      int
		body                      string // substring expected in the body
	}{
		{"admin lists users v1", admin, "GET", "/api/reportserver/users", 200, `"Username":"bob"`},
		{"admin lists users v1 prefix", admin, "GET", "/api/reportserver/v1/users", 200, `"Username":"alice"`},
		{"admin lists users v2", admin, "GET", "/api/reportserver/v2/users", 200, `"Username":"admin"`},
		{"admin lists users v3", admin, "GET", "/api/reportserver/v3/users", 200, `"Enabled":true`},
		{"user may not list users", alice, "GET", "/api/reportserver/v2/users", 403, `"Message"`},
		{"user reads self", alice, "GET", "/api/reportserver/v2/users/" + aliceID, 200, `"Id":"` + aliceID + `"`},
		{"user reads self v3", alice, "GET", "/api/reportserver/v3/users/" + aliceID, 200, `"Username":"alice"`},
		{"user may not read others", alice, "GET", "/api/reportserver/v2/users/" + bobID, 403, ""},
		{"unknown user", admin, "GET", "/api/reportserver/v2/users/0123456789abcdef0123456789abcdef", 404, ""},
		{"isadmin admin", admin, "GET", "/api/reportserver/v2/users/admin/isadmin", 200, "true"},
		{"isadmin of alice asked by admin", admin, "GET", "/api/reportserver/v2/users/alice/isadmin", 200, "false"},
		{"isadmin self", alice, "GET", "/api/reportserver/v2/users/alice/isadmin", 200, "false"},
		{"isadmin of another", alice, "GET", "/api/reportserver/v2/users/admin/isadmin", 403, ""},
		{"isadmin unknown", admin, "GET", "/api/reportserver/v2/users/zed/isadmin", 404, ""},
		{"isadmin is v2 only", admin, "GET", "/api/reportserver/users/admin/isadmin", 404, ""},
		{"v1 role ids", admin, "GET", "/api/reportserver/users/" + adminID + "/roles", 200, `["`},
		{"v2 userroles", admin, "GET", "/api/reportserver/v2/users/" + adminID + "/userroles", 200, `"IsSystemRole":true`},
		{"v2 userroles self", alice, "GET", "/api/reportserver/v2/users/" + aliceID + "/userroles", 200, `"Name":"Users"`},
		{"v1 userroles", admin, "GET", "/api/reportserver/userroles", 200, `"Name":"System Administrator"`},
		{"v1 userroles non-admin", alice, "GET", "/api/reportserver/userroles", 403, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.token, tc.method, tc.path, nil)
			want(t, r, tc.code)
			if !strings.Contains(string(r.body), tc.body) {
				t.Fatalf("body %s lacks %s", r.body, tc.body)
			}
		})
	}

	t.Run("isadmin is a bare boolean", func(t *testing.T) {
		var b bool
		e.do(admin, "GET", "/api/reportserver/v2/users/admin/isadmin", nil).decode(t, &b)
		if !b {
			t.Fatal("admin is not admin")
		}
	})
	t.Run("role lookup v1 and v3", func(t *testing.T) {
		var ids []string
		e.do(admin, "GET", "/api/reportserver/users/"+aliceID+"/roles", nil).decode(t, &ids)
		if len(ids) != 1 {
			t.Fatalf("alice roles %v", ids)
		}
		for _, p := range []string{"/api/reportserver/userroles/" + ids[0], "/api/reportserver/v3/roles/" + ids[0]} {
			var role simulator.UserRole
			r := e.do(alice, "GET", p, nil)
			want(t, r, 200)
			r.decode(t, &role)
			if role.Name != simulator.RoleUsers || role.IsSystemRole || !contains(role.UserIds, aliceID) {
				t.Fatalf("role %+v", role)
			}
		}
	})
	t.Run("Users hook", func(t *testing.T) {
		us := e.sim.Users()
		if len(us) != 3 || us[0].Username != "admin" || !us[0].Admin || us[1].Admin || us[2].Password != "bob" {
			t.Fatalf("Users() = %+v", us)
		}
	})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestPermissions(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice, bob := e.token("admin"), e.token("alice"), e.token("bob")
	aliceID, bobID := e.userID("alice"), e.userID("bob")

	t.Run("seeded role permissions show in a user's answer", func(t *testing.T) {
		for _, p := range []string{
			"/api/reportserver/users/" + aliceID + "/permissions/0",
			"/api/reportserver/v2/users/" + aliceID + "/permissions/0",
			"/api/reportserver/v3/users/" + aliceID + "/permissions/Report",
		} {
			var ps []simulator.Permission
			r := e.do(alice, "GET", p, nil)
			want(t, r, 200)
			r.decode(t, &ps)
			if len(ps) != 1 || ps[0].Access != simulator.AccessRead || ps[0].Scope != simulator.ScopeAnyReport || ps[0].PermissionCategory != 0 {
				t.Fatalf("%s: %+v", p, ps)
			}
		}
		var ps []simulator.Permission
		e.do(admin, "GET", "/api/reportserver/v2/users/"+bobID+"/permissions/2", nil).decode(t, &ps)
		if len(ps) != 0 {
			t.Fatalf("bob has data-connection permissions: %+v", ps)
		}
	})
	t.Run("others' permissions are admin only", func(t *testing.T) {
		want(t, e.do(bob, "GET", "/api/reportserver/v2/users/"+aliceID+"/permissions/0", nil), 403)
	})
	t.Run("bad category", func(t *testing.T) {
		want(t, e.do(admin, "GET", "/api/reportserver/v2/users/"+aliceID+"/permissions/9", nil), 400)
		want(t, e.do(admin, "GET", "/api/reportserver/v3/users/"+aliceID+"/permissions/Nope", nil), 400)
	})

	var v1ID string
	t.Run("create v1 answers a string, v2 and v3 a Permission", func(t *testing.T) {
		body := map[string]any{"access": 1, "scope": simulator.ScopeAnyDataConnection}
		r := e.do(admin, "POST", "/api/reportserver/users/"+bobID+"/permissions", body)
		want(t, r, 200)
		if r.body[0] != '"' {
			t.Fatalf("v1 body %s", r.body)
		}
		v1ID = r.id(t)
		for _, p := range []string{"/api/reportserver/v2/users/" + bobID + "/permissions", "/api/reportserver/v3/users/" + bobID + "/permissions"} {
			var perm simulator.Permission
			r := e.do(admin, "POST", p, body)
			want(t, r, 200)
			r.decode(t, &perm)
			if perm.Id == "" || perm.PermissionCategory != simulator.CategoryDataConnection {
				t.Fatalf("%s: %+v", p, perm)
			}
		}
		var ps []simulator.Permission
		e.do(bob, "GET", "/api/reportserver/v2/users/"+bobID+"/permissions/2", nil).decode(t, &ps)
		if len(ps) != 3 {
			t.Fatalf("bob permissions %+v", ps)
		}
	})
	t.Run("create refusals", func(t *testing.T) {
		want(t, e.do(alice, "POST", "/api/reportserver/v2/users/"+bobID+"/permissions", map[string]any{"Access": 1, "Scope": 0}), 403)
		want(t, e.do(admin, "POST", "/api/reportserver/v2/users/"+bobID+"/permissions", map[string]any{"Access": 1, "Scope": 11}), 400)
		want(t, e.do(admin, "POST", "/api/reportserver/v2/users/"+bobID+"/permissions", map[string]any{"Access": 0, "Scope": 0}), 400)
		want(t, e.do(admin, "POST", "/api/reportserver/v2/users/"+bobID+"/permissions", map[string]any{"Access": 1, "Scope": 1}), 400)
		want(t, e.do(admin, "POST", "/api/reportserver/v2/users/"+bobID+"/permissions", "{"), 400)
	})
	t.Run("role permissions v1", func(t *testing.T) {
		var ids []string
		e.do(admin, "GET", "/api/reportserver/users/"+aliceID+"/roles", nil).decode(t, &ids)
		var ps []simulator.Permission
		e.do(admin, "GET", "/api/reportserver/userroles/"+ids[0]+"/permissions/1", nil).decode(t, &ps)
		if len(ps) != 1 || ps[0].Scope != simulator.ScopeAnyCategory {
			t.Fatalf("Users role category permissions %+v", ps)
		}
		r := e.do(admin, "POST", "/api/reportserver/userroles/"+ids[0]+"/permissions", map[string]any{"Access": 1, "Scope": simulator.ScopeAnyScheduledTask})
		want(t, r, 200)
	})
	t.Run("get and delete", func(t *testing.T) {
		want(t, e.do(admin, "GET", "/api/reportserver/v3/permissions/DataConnection/"+v1ID, nil), 200)
		want(t, e.do(admin, "GET", "/api/reportserver/v3/permissions/Report/"+v1ID, nil), 404)
		want(t, e.do(bob, "DELETE", "/api/reportserver/permissions/2/"+v1ID, nil), 403)
		want(t, e.do(admin, "DELETE", "/api/reportserver/permissions/2/"+v1ID, nil), 204)
		want(t, e.do(admin, "DELETE", "/api/reportserver/permissions/2/"+v1ID, nil), 404)
	})
}
