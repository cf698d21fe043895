package simulator

import (
	"sort"
	"strconv"
	"strings"
)

// Users, roles and permissions. Only administrators may read other users,
// roles and permissions; a user may read itself. [I] The reference does not
// say who may call these endpoints.

func (s *Server) sortedUsers() []*user {
	out := make([]*user, 0, len(s.st.users))
	for _, u := range s.st.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return s.st.order[out[i].Id] < s.st.order[out[j].Id] })
	return out
}

func (s *Server) wireRole(r *role) UserRole {
	out := r.UserRole
	out.UserIds = []string{}
	for _, u := range s.sortedUsers() {
		for _, id := range u.roleIDs {
			if id == r.Id {
				out.UserIds = append(out.UserIds, u.Id)
			}
		}
	}
	return out
}

func (s *Server) sortedRoles() []*role {
	out := make([]*role, 0, len(s.st.roles))
	for _, r := range s.st.roles {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return s.st.order[out[i].Id] < s.st.order[out[j].Id] })
	return out
}

// selfOrAdmin loads the user with path parameter "userId" when the caller is
// that user or an administrator.
func (s *Server) selfOrAdmin(c *call, id string) (*user, *resp) {
	if !s.isAdmin(c.user) && !strings.EqualFold(c.user.Id, id) {
		return nil, forbidden()
	}
	u := s.st.users[strings.ToLower(id)]
	if u == nil {
		return nil, notFound("User", id)
	}
	return u, nil
}

// GET users.
func (s *Server) listUsers(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	out := []User{}
	for _, u := range s.sortedUsers() {
		out = append(out, u.User)
	}
	return ok(out)
}

// GET users/{userId}.
func (s *Server) getUser(c *call) *resp {
	u, res := s.selfOrAdmin(c, c.param("userId"))
	if res != nil {
		return res
	}
	return ok(u.User)
}

// GET v2 users/{username}/isadmin. The help page types the answer as a
// collection of strings, which is doubtful [U]; the simulator answers a
// JSON boolean (true/false). Callers may ask about themselves; only
// administrators may ask about others (403). Unknown user: 404.
func (s *Server) isAdminHandler(c *call) *resp {
	name := c.param("username")
	if !s.isAdmin(c.user) && !strings.EqualFold(c.user.Username, name) {
		return forbidden()
	}
	u := s.userByName(name)
	if u == nil {
		return notFound("User", name)
	}
	return ok(s.isAdmin(u))
}

// GET v1 users/{userId}/roles: role id strings.
func (s *Server) userRoleIDs(c *call) *resp {
	u, res := s.selfOrAdmin(c, c.param("userId"))
	if res != nil {
		return res
	}
	out := []string{}
	for _, r := range s.rolesOf(u) {
		out = append(out, r.Id)
	}
	return ok(out)
}

// GET v2 users/{userId}/userroles: UserRole objects.
func (s *Server) userRoles(c *call) *resp {
	u, res := s.selfOrAdmin(c, c.param("userId"))
	if res != nil {
		return res
	}
	out := []UserRole{}
	for _, r := range s.rolesOf(u) {
		out = append(out, s.wireRole(r))
	}
	return ok(out)
}

// GET userroles.
func (s *Server) listRoles(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	out := []UserRole{}
	for _, r := range s.sortedRoles() {
		out = append(out, s.wireRole(r))
	}
	return ok(out)
}

// GET userroles/{userRoleId}, v3 roles/{userRoleId}. Members of the role may
// read it too.
func (s *Server) getRole(c *call) *resp {
	id := c.param("userRoleId")
	r := s.st.roles[strings.ToLower(id)]
	if r == nil {
		if s.isAdmin(c.user) {
			return notFound("Role", id)
		}
		return forbidden()
	}
	if !s.isAdmin(c.user) && !hasRole(c.user, r.Id) {
		return forbidden()
	}
	return ok(s.wireRole(r))
}

func hasRole(u *user, roleID string) bool {
	for _, id := range u.roleIDs {
		if id == roleID {
			return true
		}
	}
	return false
}

// parseCategory accepts the integer or the enum name (v3 string segment),
// case-insensitively.
func parseCategory(v string) (int, bool) {
	if n, err := strconv.Atoi(v); err == nil {
		if n >= 0 && n < len(categoryNames) {
			return n, true
		}
		return 0, false
	}
	for i, name := range categoryNames {
		if strings.EqualFold(name, v) {
			return i, true
		}
	}
	return 0, false
}

// GET users/{userId}/permissions/{category} and
// userroles/{userRoleId}/permissions/{category}. For a user id the answer is
// the user's effective permissions (its own plus its roles'); for a role id,
// the role's own. [U] The reference says the endpoint takes "a user or role
// ID"; whether role permissions are merged into a user's answer is not
// documented.
func (s *Server) listPermissions(c *call) *resp {
	id := c.param("userId")
	if id == "" {
		id = c.param("userRoleId")
	}
	cat, okc := parseCategory(c.param("category"))
	if !okc {
		return badRequest("The value '%s' is not valid for PermissionCategory.", c.param("category"))
	}
	id = strings.ToLower(id)
	var ps []*permission
	switch {
	case s.st.users[id] != nil:
		u := s.st.users[id]
		if !s.isAdmin(c.user) && c.user.Id != u.Id {
			return forbidden()
		}
		ps = s.effectivePerms(u)
	case s.st.roles[id] != nil:
		if !s.isAdmin(c.user) && !hasRole(c.user, id) {
			return forbidden()
		}
		for _, p := range s.st.perms {
			if p.owner == id {
				ps = append(ps, p)
			}
		}
		s.sortPerms(ps)
	default:
		if !s.isAdmin(c.user) {
			return forbidden()
		}
		return notFound("User or role", id)
	}
	out := []Permission{}
	for _, p := range ps {
		if p.PermissionCategory == cat {
			out = append(out, p.Permission)
		}
	}
	return ok(out)
}

// createPermissionModel is CreatePermissionModel.
type createPermissionModel struct {
	Access     *int   `json:"Access"`
	ResourceId string `json:"ResourceId"`
	Scope      *int   `json:"Scope"`
}

// POST users/{userId}/permissions, userroles/{userRoleId}/permissions.
// v1 answers the new id as a JSON string, v2/v3 the Permission. Admin only.
func (s *Server) createPermission(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	owner := strings.ToLower(c.param("userId") + c.param("userRoleId"))
	if s.st.users[owner] == nil && s.st.roles[owner] == nil {
		return notFound("User or role", owner)
	}
	var m createPermissionModel
	if res := c.bind(&m); res != nil {
		return res
	}
	if m.Access == nil || *m.Access < 1 || *m.Access > AccessUnrestricted {
		return badRequest("Access is required and must be a combination of Read=1, Modify=2, Delete=4, Create=8.")
	}
	if m.Scope == nil || scopeCategory(*m.Scope) < 0 {
		return badRequest("Scope is required and must be between 0 and 10.")
	}
	specific := map[int]bool{ScopeSpecificReport: true, ScopeReportsInCategory: true, ScopeSpecificCategory: true,
		ScopeSpecificDataConnection: true, ScopeSpecificScheduledTask: true, ScopeSpecificDataAlert: true}
	if specific[*m.Scope] && m.ResourceId == "" {
		return badRequest("ResourceId is required for scope %d.", *m.Scope)
	}
	p := s.addPermission(owner, *m.Access, *m.Scope, m.ResourceId)
	if c.version == "v1" {
		return ok(p.Id)
	}
	return ok(p.Permission)
}

// DELETE permissions/{category}/{permissionId}: 204. Admin only.
func (s *Server) deletePermission(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	p, res := s.findPermission(c)
	if res != nil {
		return res
	}
	delete(s.st.perms, p.Id)
	return noContent()
}

// GET v3 permissions/{category}/{permissionId}. Admin only.
func (s *Server) getPermission(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	p, res := s.findPermission(c)
	if res != nil {
		return res
	}
	return ok(p.Permission)
}

func (s *Server) findPermission(c *call) (*permission, *resp) {
	cat, okc := parseCategory(c.param("category"))
	if !okc {
		return nil, badRequest("The value '%s' is not valid for PermissionCategory.", c.param("category"))
	}
	id := c.param("permissionId")
	p := s.st.perms[strings.ToLower(id)]
	if p == nil || p.PermissionCategory != cat {
		return nil, notFound("Permission", id)
	}
	return p, nil
}

// createLocalUserData is CreateLocalUserData (v1/v2 users/local, v3 users).
type createLocalUserData struct {
	Type            string   `json:"Type"`
	Username        string   `json:"Username"`
	Password        string   `json:"Password"`
	ConfirmPassword string   `json:"ConfirmPassword"`
	Email           string   `json:"Email"`
	FirstName       string   `json:"FirstName"`
	LastName        string   `json:"LastName"`
	Enabled         *bool    `json:"Enabled"`
	RoleIds         []string `json:"RoleIds"`
}

// POST users/local (v1/v2: id string), v3 POST users (201 User). Admin only.
func (s *Server) createUser(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	var m createLocalUserData
	if res := c.bind(&m); res != nil {
		return res
	}
	switch {
	case strings.TrimSpace(m.Username) == "":
		return badRequest("Username is required.")
	case m.Password == "":
		return badRequest("Password is required.")
	case m.ConfirmPassword != "" && m.ConfirmPassword != m.Password:
		return badRequest("ConfirmPassword does not match Password.")
	case s.userByName(m.Username) != nil:
		return badRequest("Username '%s' is already taken.", m.Username)
	}
	var roles []string
	for _, id := range m.RoleIds {
		if s.st.roles[strings.ToLower(id)] == nil {
			return badRequest("RoleIds: role '%s' does not exist.", id)
		}
		roles = append(roles, strings.ToLower(id))
	}
	u := s.addUser(m.Username, m.Password, m.FirstName, m.LastName, false)
	if len(roles) > 0 {
		u.roleIDs = roles
	}
	if m.Email != "" {
		u.Email = m.Email
	}
	if m.Enabled != nil && !*m.Enabled {
		u.Enabled, u.disabled = false, true
	}
	if c.version == "v3" {
		return c.created(u.User, "api/reportserver/v3/users/"+u.Id)
	}
	return ok(u.Id)
}

// DELETE users/local/{userId}: 204; the user's tokens stop working. Admin only.
func (s *Server) deleteUser(c *call) *resp {
	if !s.isAdmin(c.user) {
		return forbidden()
	}
	id := strings.ToLower(c.param("userId"))
	if s.st.users[id] == nil {
		return notFound("User", id)
	}
	s.removeUser(id)
	return noContent()
}

func (s *Server) removeUser(id string) {
	delete(s.st.users, id)
	for tok, t := range s.st.tokens {
		if t.userID == id {
			delete(s.st.tokens, tok)
		}
	}
	for pid, p := range s.st.perms {
		if p.owner == id {
			delete(s.st.perms, pid)
		}
	}
}
