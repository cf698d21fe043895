package simulator

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func post(t *testing.T, base, path string) int {
	t.Helper()
	res, err := http.Post(base+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func getAs(t *testing.T, base, path, tok string) (int, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// The control endpoints make the everyday changes; user ids derive from the
// name, so a new simulator gives alice the same id.
func TestControlEndpoints(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	alice, _ := s.User("alice")
	if again, _ := New(Options{}).User("alice"); again.ID != alice.ID {
		t.Fatalf("alice's id changed across simulators: %s, %s", alice.ID, again.ID)
	}
	admin, _ := s.IssueToken("admin")
	user := "/api/reportserver/v2/users/" + alice.ID
	if st, _ := getAs(t, srv.URL, user, admin); st != 200 {
		t.Fatalf("GET alice = %d", st)
	}
	// Permission reads fail, other calls do not.
	if st := post(t, srv.URL, "/_sim/control/permissions/fail?status=503&seconds=60"); st != 204 {
		t.Fatalf("fail control = %d", st)
	}
	if st, _ := getAs(t, srv.URL, user, admin); st != 503 {
		t.Fatalf("GET alice while permission reads fail = %d, want 503", st)
	}
	if st, _ := getAs(t, srv.URL, "/api/reportserver/v2/categories", admin); st != 200 {
		t.Fatalf("GET categories while permission reads fail = %d, want 200", st)
	}
	if st := post(t, srv.URL, "/_sim/control/permissions/fail?status=503&seconds=0"); st != 204 {
		t.Fatalf("end fail = %d", st)
	}
	// Delete: the id is unknown.
	if st := post(t, srv.URL, "/_sim/control/users/alice/delete"); st != 204 {
		t.Fatalf("delete = %d", st)
	}
	if st, _ := getAs(t, srv.URL, user, admin); st != 404 {
		t.Fatalf("GET deleted alice = %d, want 404", st)
	}
	if st := post(t, srv.URL, "/_sim/control/users/alice/delete"); st != 404 {
		t.Fatalf("second delete = %d, want 404", st)
	}
	// Demote: admin is no administrator any more.
	if st := post(t, srv.URL, "/_sim/control/users/admin/demote"); st != 204 {
		t.Fatalf("demote = %d", st)
	}
	if c, _ := s.User("admin"); c.Admin {
		t.Fatal("admin still an administrator after demote")
	}
	// Password: old tokens are revoked, the new password logs in.
	if st := post(t, srv.URL, "/_sim/control/users/bob/password?value=n3w"); st != 204 {
		t.Fatalf("password = %d", st)
	}
	res, err := http.PostForm(srv.URL+"/Token", url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}})
	if err != nil || res.StatusCode == 200 {
		t.Fatalf("old password still works: %v %v", err, res.Status)
	}
	res.Body.Close()
	// Role delete.
	if st := post(t, srv.URL, "/_sim/control/roles/"+url.PathEscape(RoleUsers)+"/delete"); st != 204 {
		t.Fatalf("role delete = %d", st)
	}
	// Outage: connections are dropped; control routes still answer.
	if st := post(t, srv.URL, "/_sim/control/outage?seconds=60"); st != 204 {
		t.Fatalf("outage = %d", st)
	}
	if _, err := getAs(t, srv.URL, "/api/reportserver/v2/categories", admin); err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("request during outage: %v, want a dropped connection", err)
	}
	if st := post(t, srv.URL, "/_sim/control/outage?seconds=0"); st != 204 {
		t.Fatalf("end outage = %d", st)
	}
	if st := post(t, srv.URL, "/_sim/control/nothing"); st != 404 {
		t.Fatalf("unknown control = %d", st)
	}
}
