package simulator

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// The manager's own write routes: the report server's web UI is an ASP.NET
// MVC application whose grids and upload dialog post to routes the API
// reference does not list. Public evidence (exploit code for CVE-2024-4358)
// shows two of them; their shapes here are [I] from that evidence:
//
//   - POST Category/Create with a grid-style JSON body {Name, CanModify,
//     CanDelete, ReportsCount, …}; the answer is the grid's data-source
//     result {Data: [row], Total: 1, Errors: null}.
//   - POST api/reportserver/report with JSON {reportName, categoryName,
//     description, reportContent, extension}; reportContent is the base64
//     definition and the category is named, not identified. The answer is
//     the new ReportInfo.
//
// The manager authenticates with its sign-in cookie; the simulator accepts
// the bearer token instead, like every other route.

// managerRoutes registers the manager's routes.
func (s *Server) managerRoutes(b *routeBuilder) {
	b.add(&route{method: http.MethodPost, auth: true, h: s.managerCreateCategory}, "Category/Create")
	b.add(&route{method: http.MethodPost, auth: true, h: s.managerUploadReport, version: "v1"}, "api/reportserver/report")
	b.add(&route{method: http.MethodPost, auth: true, h: s.managerRenameCategory}, "Category/Rename/{categoryId}")
}

// POST Category/Rename/{categoryId} {Name}: 200 {Data: [categoryRow],
// Total: 1, Errors: null}. A manager route outside the built-in rule
// table [I: shaped like Category/Create; the id in the path], so tests can
// see an unmatched change turned into a rule.
func (s *Server) managerRenameCategory(c *call) *resp {
	var m categoryRow
	if res := c.bind(&m); res != nil {
		return res
	}
	cat, res := s.findCategory(c, c.param("categoryId"), AccessModify)
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
	row := categoryRow{Id: cat.Id, Name: cat.Name,
		CanModify: s.can(c.user, AccessModify, CategoryCategory, cat.Id, ""),
		CanDelete: s.can(c.user, AccessDelete, CategoryCategory, cat.Id, "")}
	return ok(gridResult{Data: []any{row}, Total: 1})
}

// categoryRow is one row of the manager's category grid.
type categoryRow struct {
	Id           string `json:"Id"`
	Name         string `json:"Name"`
	CanModify    bool   `json:"CanModify"`
	CanDelete    bool   `json:"CanDelete"`
	ReportsCount int    `json:"ReportsCount"`
}

// gridResult is the grid's data-source result.
type gridResult struct {
	Data   []any `json:"Data"`
	Total  int   `json:"Total"`
	Errors any   `json:"Errors"`
}

// POST Category/Create: 200 {Data: [categoryRow], Total: 1, Errors: null}.
func (s *Server) managerCreateCategory(c *call) *resp {
	var m categoryRow
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
	row := categoryRow{Id: cat.Id, Name: cat.Name,
		CanModify: s.can(c.user, AccessModify, CategoryCategory, cat.Id, ""),
		CanDelete: s.can(c.user, AccessDelete, CategoryCategory, cat.Id, "")}
	return ok(gridResult{Data: []any{row}, Total: 1})
}

// managerReport is the manager's upload body.
type managerReport struct {
	ReportName    string `json:"reportName"`
	CategoryName  string `json:"categoryName"`
	Description   string `json:"description"`
	ReportContent string `json:"reportContent"`
	Extension     string `json:"extension"`
}

// POST api/reportserver/report: 200 ReportInfo.
func (s *Server) managerUploadReport(c *call) *resp {
	var m managerReport
	if res := c.bind(&m); res != nil {
		return res
	}
	if strings.TrimSpace(m.ReportName) == "" {
		return badRequest("reportName is required.")
	}
	content, err := base64.StdEncoding.DecodeString(m.ReportContent)
	if err != nil || len(content) == 0 {
		return badRequest("reportContent must be the base64 report definition.")
	}
	var cat *Category
	for _, x := range s.st.categories {
		if strings.EqualFold(x.Name, m.CategoryName) {
			cat = x
		}
	}
	if cat == nil {
		return badRequest("categoryName: category '%s' does not exist.", m.CategoryName)
	}
	if !s.can(c.user, AccessCreate, CategoryReport, "", cat.Id) {
		return forbidden()
	}
	for _, r := range s.st.reports {
		if r.categoryID == cat.Id && strings.EqualFold(r.name, m.ReportName) {
			return badRequest("reportName: a report named '%s' already exists in this category.", m.ReportName)
		}
	}
	ext := "." + strings.TrimPrefix(strings.ToLower(m.Extension), ".")
	if ext != ".trdx" {
		ext = ".trdp"
	}
	r := s.newReport(m.ReportName, m.Description, cat.Id, ext, c.user.Id, content)
	return ok(s.wireReport(r, c.user))
}
