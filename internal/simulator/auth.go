package simulator

import (
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Seeded role names.
const (
	RoleSystemAdministrator = "System Administrator"
	RoleUsers               = "Users"
)

// tokenResponse is the OWIN/ASP.NET Identity token shape. [U] Only
// access_token is confirmed (S5, S7, S12); the other fields come from a
// third-party DTO (S15) and match the standard OWIN template.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	UserName    string `json:"userName"`
	Issued      string `json:".issued"`
	Expires     string `json:".expires"`
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (s *Server) seedUsers() {
	st := s.st
	adminRole := &role{UserRole: UserRole{Id: st.remember(newGUID()), Name: RoleSystemAdministrator,
		Description: "Has all permissions.", IsSystemRole: true}, admin: true}
	usersRole := &role{UserRole: UserRole{Id: st.remember(newGUID()), Name: RoleUsers,
		Description: "Default role for new users."}} // [I] not a system role
	st.roles[adminRole.Id] = adminRole
	st.roles[usersRole.Id] = usersRole
	// Administrators hold every permission explicitly, so permission reads
	// show what they can do. [I]
	for _, sc := range []int{ScopeAnyReport, ScopeAnyCategory, ScopeAnyDataConnection, ScopeAnyScheduledTask, ScopeAnyDataAlert} {
		s.addPermission(adminRole.Id, AccessUnrestricted, sc, "")
	}
	s.addPermission(usersRole.Id, AccessRead, ScopeAnyReport, "")
	s.addPermission(usersRole.Id, AccessRead, ScopeAnyCategory, "")

	s.addUser("admin", "admin", "Ada", "Admin", true)
	s.addUser("alice", "alice", "Alice", "Smith", false)
	s.addUser("bob", "bob", "Bob", "Jones", false)
}

func (s *Server) roleByName(name string) *role {
	for _, r := range s.st.roles {
		if strings.EqualFold(r.Name, name) {
			return r
		}
	}
	return nil
}

func (s *Server) addUser(username, password, first, last string, admin bool) *user {
	rn := RoleUsers
	if admin {
		rn = RoleSystemAdministrator
	}
	r := s.roleByName(rn)
	u := &user{User: User{Id: s.st.remember(userID(username)), Username: username, FirstName: first, LastName: last,
		Email: username + "@example.com", Enabled: true}, password: password, roleIDs: []string{r.Id}}
	s.st.users[u.Id] = u
	return u
}

func (s *Server) addPermission(owner string, access, scope int, resourceID string) *permission {
	p := &permission{Permission: Permission{Id: s.st.remember(newID()), PermissionCategory: scopeCategory(scope),
		Access: access, ResourceId: resourceID, Scope: scope}, owner: owner}
	s.st.perms[p.Id] = p
	return p
}

func (s *Server) userByName(name string) *user {
	for _, u := range s.st.users {
		if strings.EqualFold(u.Username, name) {
			return u
		}
	}
	return nil
}

func (s *Server) isAdmin(u *user) bool {
	for _, id := range u.roleIDs {
		if r := s.st.roles[id]; r != nil && r.admin {
			return true
		}
	}
	return false
}

func (s *Server) rolesOf(u *user) []*role {
	var out []*role
	for _, id := range u.roleIDs {
		if r := s.st.roles[id]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) issueToken(u *user) (string, *token) {
	now := s.clock()
	t := &token{userID: u.Id, issued: now, expires: now.Add(s.ttl)}
	tok := newToken()
	s.st.tokens[tok] = t
	return tok, t
}

// handleToken serves POST /Token (OWIN OAuthAuthorizationServer).
func (s *Server) handleToken(c *call) *resp {
	// Katana's ReadFormAsync reads the body as a form whatever the
	// Content-Type says (a JSON body is read as form pairs too).
	raw, err := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	if err != nil {
		return jsonResp(http.StatusBadRequest, oauthError{Error: "invalid_request"})
	}
	c.r.PostForm, _ = url.ParseQuery(string(raw)) // like Katana: a bad pair does not fail the form
	if c.r.PostForm.Get("grant_type") != "password" {
		return jsonResp(http.StatusBadRequest, oauthError{Error: "unsupported_grant_type"})
	}
	name, pw := c.r.PostForm.Get("username"), c.r.PostForm.Get("password")
	u := s.userByName(name)
	// Empty credentials are refused with 400 (S5); Guest needs no token.
	if name == "" || pw == "" || u == nil || u.password != pw {
		return jsonResp(http.StatusBadRequest, oauthError{Error: "invalid_grant",
			Description: "The user name or password is incorrect."})
	}
	if u.disabled {
		// [I] wording; the status follows the OWIN convention.
		return jsonResp(http.StatusBadRequest, oauthError{Error: "invalid_grant",
			Description: "The user account is disabled."})
	}
	tok, t := s.issueToken(u)
	res := ok(tokenResponse{
		AccessToken: tok, TokenType: "bearer", ExpiresIn: int64(s.ttl / time.Second),
		UserName: u.Username,
		Issued:   t.issued.Format(http.TimeFormat), Expires: t.expires.Format(http.TimeFormat),
	})
	res.header = http.Header{"Cache-Control": {"no-cache"}, "Pragma": {"no-cache"}, "Expires": {"-1"}}
	return res
}

// authenticate resolves the bearer token; nil means go on.
func (s *Server) authenticate(c *call) *resp {
	h := c.r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return unauthorized()
	}
	t := s.st.tokens[tok]
	if t == nil {
		return unauthorized()
	}
	if !s.clock().Before(t.expires) {
		delete(s.st.tokens, tok)
		return unauthorized()
	}
	u := s.st.users[t.userID]
	if u == nil || u.disabled {
		return unauthorized()
	}
	c.user, c.token = u, tok
	return nil
}

func unauthorized() *resp {
	r := errResp(http.StatusUnauthorized, "Authorization has been denied for this request.")
	r.header = http.Header{"Www-Authenticate": {"Bearer"}}
	return r
}

// handleLogout serves POST api/reportserver[/v1|/v2]/logout: the token is
// revoked. [I] 200 with an empty body (IHttpActionResult Ok()).
func (s *Server) handleLogout(c *call) *resp {
	delete(s.st.tokens, c.token)
	return &resp{status: http.StatusOK}
}

// ---------------------------------------------------------------------------
// Permissions

// effectivePerms returns the permissions of u and its roles.
func (s *Server) effectivePerms(u *user) []*permission {
	owners := map[string]bool{u.Id: true}
	for _, id := range u.roleIDs {
		owners[id] = true
	}
	var out []*permission
	for _, p := range s.st.perms {
		if owners[p.owner] {
			out = append(out, p)
		}
	}
	s.sortPerms(out)
	return out
}

func (s *Server) sortPerms(ps []*permission) {
	sort.Slice(ps, func(i, j int) bool { return s.st.order[ps[i].Id] < s.st.order[ps[j].Id] })
}

// can reports whether u holds access on the resource (category, id). The
// access bits may come from different permissions (e.g. Read from a role's
// Any* permission and Modify from a Specific* one). For reports,
// reportCategory enables the ReportsInCategory scope. Administrators can do
// everything.
func (s *Server) can(u *user, access, category int, id, reportCategory string) bool {
	if s.isAdmin(u) {
		return true
	}
	granted := 0
	for _, p := range s.st.perms {
		held := p.owner == u.Id || hasRole(u, p.owner)
		if p.PermissionCategory != category || !held {
			continue
		}
		switch p.Scope {
		case ScopeAnyReport, ScopeAnyCategory, ScopeAnyDataConnection, ScopeAnyScheduledTask, ScopeAnyDataAlert:
			granted |= p.Access
		case ScopeSpecificReport, ScopeSpecificCategory, ScopeSpecificDataConnection, ScopeSpecificScheduledTask, ScopeSpecificDataAlert:
			if id != "" && strings.EqualFold(p.ResourceId, id) {
				granted |= p.Access
			}
		case ScopeReportsInCategory:
			if reportCategory != "" && strings.EqualFold(p.ResourceId, reportCategory) {
				granted |= p.Access
			}
		}
	}
	return granted&access == access
}
