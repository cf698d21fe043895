package simulator

import (
	"sort"
	"strconv"
	"strings"
)

// Categories and data connections: v1 (unversioned and /v1), v2 and v3.

func (s *Server) sortedCategories() []*Category {
	out := make([]*Category, 0, len(s.st.categories))
	for _, c := range s.st.categories {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return s.st.order[out[i].Id] < s.st.order[out[j].Id] })
	return out
}

func (s *Server) findCategory(c *call, id string, access int) (*Category, *resp) {
	cat := s.st.categories[strings.ToLower(id)]
	if cat == nil {
		return nil, notFound("Category", id)
	}
	if !s.can(c.user, AccessRead|access, CategoryCategory, cat.Id, "") {
		return nil, forbidden()
	}
	return cat, nil
}

// GET categories.
func (s *Server) listCategories(c *call) *resp {
	out := []Category{}
	for _, cat := range s.sortedCategories() {
		if s.can(c.user, AccessRead, CategoryCategory, cat.Id, "") {
			out = append(out, *cat)
		}
	}
	return ok(out)
}

// GET categories/{categoryId}.
func (s *Server) getCategory(c *call) *resp {
	cat, res := s.findCategory(c, c.param("categoryId"), 0)
	if res != nil {
		return res
	}
	return ok(*cat)
}

// GET categories/{categoryId}/reports: the readable reports of a category.
func (s *Server) categoryReports(c *call) *resp {
	cat, res := s.findCategory(c, c.param("categoryId"), 0)
	if res != nil {
		return res
	}
	out := []ReportInfo{}
	for _, r := range s.sortedReports() {
		if r.categoryID == cat.Id && s.can(c.user, AccessRead, CategoryReport, r.id, r.categoryID) {
			out = append(out, s.wireReport(r, c.user))
		}
	}
	return ok(out)
}

// GET categories/reportaccess/{accessPermission}: categories in which the
// caller holds that access on reports [I].
func (s *Server) categoriesByReportAccess(c *call) *resp {
	acc, err := strconv.Atoi(c.param("accessPermission"))
	if err != nil || acc < 1 || acc > AccessUnrestricted {
		return badRequest("accessPermission must be an AccessPermission value between 1 and 15.")
	}
	out := []Category{}
	for _, cat := range s.sortedCategories() {
		if s.can(c.user, acc, CategoryReport, "", cat.Id) {
			out = append(out, *cat)
		}
	}
	return ok(out)
}

// categoryBody is Category / CreateCategoryData (2016 v1 sent an Id on
// create too; it is ignored).
type categoryBody struct {
	Id   string `json:"Id"`
	Name string `json:"Name"`
}

func (s *Server) categoryNameTaken(name, except string) bool {
	for _, cat := range s.st.categories {
		if cat.Id != except && strings.EqualFold(cat.Name, name) {
			return true
		}
	}
	return false
}

// POST categories: v1 200 "id"; v2 200 Category; v3 201 Category + Location.
func (s *Server) createCategory(c *call) *resp {
	var m categoryBody
	if res := c.bind(&m); res != nil {
		return res
	}
	if strings.TrimSpace(m.Name) == "" {
		return badRequest("Name is required.")
	}
	if !s.can(c.user, AccessCreate, CategoryCategory, "", "") {
		return forbidden()
	}
	if s.categoryNameTaken(m.Name, "") {
		return badRequest("Name: a category named '%s' already exists.", m.Name)
	}
	cat := &Category{Id: s.st.remember(newID()), Name: m.Name}
	s.st.categories[cat.Id] = cat
	switch c.version {
	case "v1":
		return ok(cat.Id)
	case "v3":
		return c.created(*cat, "api/reportserver/v3/categories/"+cat.Id)
	}
	return ok(*cat)
}

// PUT categories (v1/v2, body Id) and v3 PUT categories/{categoryId}: 200 Category.
func (s *Server) updateCategory(c *call) *resp {
	var m categoryBody
	if res := c.bind(&m); res != nil {
		return res
	}
	id := c.param("categoryId")
	if id == "" {
		id = m.Id
	}
	if id == "" {
		return badRequest("Id is required.")
	}
	cat, res := s.findCategory(c, id, AccessModify)
	if res != nil {
		return res
	}
	if strings.TrimSpace(m.Name) == "" {
		return badRequest("Name is required.")
	}
	if s.categoryNameTaken(m.Name, cat.Id) {
		return badRequest("Name: a category named '%s' already exists.", m.Name)
	}
	cat.Name = m.Name
	return ok(*cat)
}

// DELETE categories/{categoryId}: 204; 400 while the category holds reports
// [U: the status of the refusal is not documented].
func (s *Server) deleteCategory(c *call) *resp {
	cat, res := s.findCategory(c, c.param("categoryId"), AccessDelete)
	if res != nil {
		return res
	}
	for _, r := range s.st.reports {
		if r.categoryID == cat.Id {
			return badRequest("The category '%s' contains reports and cannot be deleted.", cat.Name)
		}
	}
	delete(s.st.categories, cat.Id)
	s.removePermsFor(CategoryCategory, cat.Id)
	for pid, p := range s.st.perms {
		if p.Scope == ScopeReportsInCategory && p.ResourceId == cat.Id {
			delete(s.st.perms, pid)
		}
	}
	return noContent()
}

// ---------------------------------------------------------------------------
// Data connections

func (s *Server) sortedConnections() []*DataConnection {
	out := make([]*DataConnection, 0, len(s.st.connections))
	for _, d := range s.st.connections {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return s.st.order[out[i].Id] < s.st.order[out[j].Id] })
	return out
}

func (s *Server) findConnection(c *call, id string, access int) (*DataConnection, *resp) {
	d := s.st.connections[strings.ToLower(id)]
	if d == nil {
		return nil, notFound("Data connection", id)
	}
	if !s.can(c.user, AccessRead|access, CategoryDataConnection, d.Id, "") {
		return nil, forbidden()
	}
	return d, nil
}

// GET dataconnections / v3 data-connections.
func (s *Server) listConnections(c *call) *resp {
	out := []DataConnection{}
	for _, d := range s.sortedConnections() {
		if s.can(c.user, AccessRead, CategoryDataConnection, d.Id, "") {
			out = append(out, *d)
		}
	}
	return ok(out)
}

// GET dataconnections/{dataConnectionId}.
func (s *Server) getConnection(c *call) *resp {
	d, res := s.findConnection(c, c.param("dataConnectionId"), 0)
	if res != nil {
		return res
	}
	return ok(*d)
}

// Provider is one data-connection provider.
type Provider struct {
	Name        string `json:"Name"`
	Description string `json:"Description"`
}

// GET dataconnectionproviders (v1/v2), v3 data-connections/providers.
func (s *Server) listProviders(*call) *resp {
	return ok([]Provider{
		{Name: "System.Data.SqlClient", Description: "SqlClient Data Provider"},
		{Name: "System.Data.OleDb", Description: "OleDb Data Provider"},
		{Name: "System.Data.Odbc", Description: "Odbc Data Provider"},
		{Name: "Npgsql", Description: "Npgsql Data Provider"},
	})
}

// POST dataconnections: v1 200 "id"; v2 200 DataConnection; v3 201 + Location.
func (s *Server) createConnection(c *call) *resp {
	var m DataConnection
	if res := c.bind(&m); res != nil {
		return res
	}
	if res := validateConnection(&m); res != nil {
		return res
	}
	if !s.can(c.user, AccessCreate, CategoryDataConnection, "", "") {
		return forbidden()
	}
	if s.connectionNameTaken(m.Name, "") {
		return badRequest("Name: a data connection named '%s' already exists.", m.Name)
	}
	m.Id = s.st.remember(newID())
	d := m
	s.st.connections[d.Id] = &d
	switch c.version {
	case "v1":
		return ok(d.Id)
	case "v3":
		return c.created(d, "api/reportserver/v3/data-connections/"+d.Id)
	}
	return ok(d)
}

func validateConnection(m *DataConnection) *resp {
	switch {
	case strings.TrimSpace(m.Name) == "":
		return badRequest("Name is required.")
	case strings.TrimSpace(m.Provider) == "":
		return badRequest("Provider is required.")
	case strings.TrimSpace(m.ConnectionString) == "":
		return badRequest("ConnectionString is required.")
	}
	return nil
}

func (s *Server) connectionNameTaken(name, except string) bool {
	for _, d := range s.st.connections {
		if d.Id != except && strings.EqualFold(d.Name, name) {
			return true
		}
	}
	return false
}

// PUT dataconnections (v1/v2, body Id) and v3 PUT
// data-connections/{dataConnectionId} (no Id in the body): 200 DataConnection.
func (s *Server) updateConnection(c *call) *resp {
	var m DataConnection
	if res := c.bind(&m); res != nil {
		return res
	}
	id := c.param("dataConnectionId")
	if id == "" {
		id = m.Id
	}
	if id == "" {
		return badRequest("Id is required.")
	}
	d, res := s.findConnection(c, id, AccessModify)
	if res != nil {
		return res
	}
	if res := validateConnection(&m); res != nil {
		return res
	}
	if s.connectionNameTaken(m.Name, d.Id) {
		return badRequest("Name: a data connection named '%s' already exists.", m.Name)
	}
	m.Id = d.Id
	*d = m
	return ok(*d)
}

// DELETE dataconnections/{dataConnectionId}: 204.
func (s *Server) deleteConnection(c *call) *resp {
	d, res := s.findConnection(c, c.param("dataConnectionId"), AccessDelete)
	if res != nil {
		return res
	}
	delete(s.st.connections, d.Id)
	s.removePermsFor(CategoryDataConnection, d.Id)
	return noContent()
}
