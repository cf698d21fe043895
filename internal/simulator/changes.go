package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Everyday changes a real report server goes through — people leave, are
// demoted, roles are removed, passwords change, the server fails or
// restarts — as Go methods and as control endpoints under /_sim/control/
// (for the demo and tests driving the binary), answered 204 or 404:
//
//	POST /_sim/control/users/{name}/delete
//	POST /_sim/control/users/{name}/disable
//	POST /_sim/control/users/{name}/enable
//	POST /_sim/control/users/{name}/demote
//	POST /_sim/control/users/{name}/password?value=NEW
//	POST /_sim/control/roles/{name}/delete
//	POST /_sim/control/permissions/fail?status=500&seconds=N
//	POST /_sim/control/permissions/hang?seconds=N
//	POST /_sim/control/outage?seconds=N
//
// Windows (fail, hang, outage) run on the wall clock, whatever Options.Now.

// userID derives a user's id from its name, so ids stay the same across
// simulator restarts, as they do on a real server.
func userID(username string) string {
	h := sha256.Sum256([]byte("user/" + strings.ToLower(username)))
	return hex.EncodeToString(h[:16])
}

// DeleteUser removes username, its role memberships, own permissions and
// tokens. Its id answers 404 afterwards.
func (s *Server) DeleteUser(username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil {
		return fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	delete(s.st.users, strings.ToLower(u.Id))
	for id, p := range s.st.perms {
		if strings.EqualFold(p.owner, u.Id) {
			delete(s.st.perms, id)
		}
	}
	s.dropTokensLocked(u.Id)
	return nil
}

// DemoteUser takes username out of the System Administrator role (into
// Users); its tokens stay valid.
func (s *Server) DemoteUser(username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil {
		return fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	var kept []string
	for _, id := range u.roleIDs {
		if r := s.st.roles[id]; r == nil || !r.admin {
			kept = append(kept, id)
		}
	}
	if users := s.roleByName(RoleUsers); users != nil && len(kept) == 0 {
		kept = append(kept, users.Id)
	}
	u.roleIDs = kept
	return nil
}

// DeleteRole removes a role, its permissions and every membership.
func (s *Server) DeleteRole(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.roleByName(name)
	if r == nil {
		return fmt.Errorf("role %q: %w", name, ErrNotFound)
	}
	delete(s.st.roles, strings.ToLower(r.Id))
	for id, p := range s.st.perms {
		if strings.EqualFold(p.owner, r.Id) {
			delete(s.st.perms, id)
		}
	}
	for _, u := range s.st.users {
		var kept []string
		for _, id := range u.roleIDs {
			if id != r.Id {
				kept = append(kept, id)
			}
		}
		u.roleIDs = kept
	}
	return nil
}

// SetPassword changes username's password and revokes its tokens (the
// service account's too: a daemon must log in afresh).
func (s *Server) SetPassword(username, password string) error {
	if password == "" {
		return errors.New("simulator: SetPassword: password must not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil {
		return fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	u.password = password
	s.dropTokensLocked(u.Id)
	return nil
}

func (s *Server) dropTokensLocked(userID string) {
	for tok, t := range s.st.tokens {
		if t.userID == userID {
			delete(s.st.tokens, tok)
		}
	}
}

// FailPermissionReads makes reads of users, roles and permissions (GET
// …/users…, …/userroles…) answer status for d.
func (s *Server) FailPermissionReads(status int, d time.Duration) {
	s.mu.Lock()
	s.permFail, s.permFailUntil = status, time.Now().Add(d)
	s.mu.Unlock()
}

// HangPermissionReads makes those reads wait d (or until the client gives
// up) before being answered.
func (s *Server) HangPermissionReads(d time.Duration) {
	s.mu.Lock()
	s.permHangUntil = time.Now().Add(d)
	s.mu.Unlock()
}

// StopAnswering makes every request except /_sim/ routes lose its
// connection without an answer for d, as a server that is down.
func (s *Server) StopAnswering(d time.Duration) {
	s.mu.Lock()
	s.outageUntil = time.Now().Add(d)
	s.mu.Unlock()
}

// isPermissionRead reports whether a request reads users, roles or
// permissions.
func isPermissionRead(method string, segs []string) bool {
	if method != http.MethodGet {
		return false
	}
	for _, sg := range segs {
		if strings.EqualFold(sg, "users") || strings.EqualFold(sg, "userroles") || strings.EqualFold(sg, "roles") {
			return true
		}
	}
	return false
}

// changeFault applies the windows to one request; true means it was
// answered (or dropped) here.
func (s *Server) changeFault(w http.ResponseWriter, r *http.Request, segs []string) bool {
	s.mu.Lock()
	now := time.Now()
	outage := now.Before(s.outageUntil)
	perm := isPermissionRead(r.Method, segs)
	fail := 0
	if perm && now.Before(s.permFailUntil) {
		fail = s.permFail
	}
	var hang time.Duration
	if perm && now.Before(s.permHangUntil) {
		hang = s.permHangUntil.Sub(now)
	}
	s.mu.Unlock()
	if hang > 0 {
		t := time.NewTimer(hang)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
		s.mu.Lock()
		outage = time.Now().Before(s.outageUntil) // went down meanwhile
		s.mu.Unlock()
	}
	if outage {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return true
			}
		}
		s.write(w, r, errResp(http.StatusServiceUnavailable, "Service Unavailable"))
		return true
	}
	if fail != 0 {
		s.write(w, r, errResp(fail, "An error has occurred."))
		return true
	}
	return false
}

// control serves POST /_sim/control/….
func (s *Server) control(w http.ResponseWriter, r *http.Request, segs []string) {
	if r.Method != http.MethodPost {
		s.write(w, r, errResp(http.StatusMethodNotAllowed, "control endpoints take POST"))
		return
	}
	q := r.URL.Query()
	seconds := func() time.Duration {
		f, _ := strconv.ParseFloat(q.Get("seconds"), 64)
		return time.Duration(f * float64(time.Second))
	}
	var err error
	switch {
	case len(segs) == 5 && segs[2] == "users":
		name := segs[3]
		switch segs[4] {
		case "delete":
			err = s.DeleteUser(name)
		case "disable":
			err = s.DisableUser(name)
		case "enable":
			err = s.EnableUser(name)
		case "demote":
			err = s.DemoteUser(name)
		case "password":
			err = s.SetPassword(name, q.Get("value"))
		default:
			err = ErrNotFound
		}
	case len(segs) == 5 && segs[2] == "roles" && segs[4] == "delete":
		err = s.DeleteRole(segs[3])
	case len(segs) == 4 && segs[2] == "permissions" && segs[3] == "fail":
		status, _ := strconv.Atoi(q.Get("status"))
		if status < 400 || status > 599 {
			s.write(w, r, errResp(http.StatusBadRequest, "status: must be an HTTP error status (400-599)"))
			return
		}
		s.FailPermissionReads(status, seconds())
	case len(segs) == 4 && segs[2] == "permissions" && segs[3] == "hang":
		s.HangPermissionReads(seconds())
	case len(segs) == 3 && segs[2] == "outage":
		s.StopAnswering(seconds())
	default:
		err = ErrNotFound
	}
	switch {
	case errors.Is(err, ErrNotFound):
		s.write(w, r, errResp(http.StatusNotFound, "%s", err.Error()))
	case err != nil:
		s.write(w, r, errResp(http.StatusBadRequest, "%s", err.Error()))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
