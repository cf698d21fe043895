package simulator

import (
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
)

// Reports: v1 (unversioned and /v1), v2 and v3.
//
// Status codes are [I] throughout: the help pages print none. Web API 2
// answers 200 for actions returning a value and 204 for void actions (S14);
// v3 (ASP.NET Core) creates answer 201 + Location here [I].

const (
	errLocked = "The report is locked by another user."
)

func (s *Server) wireReport(r *report, u *user) ReportInfo {
	info := ReportInfo{
		Id: r.id, CategoryId: r.categoryID, Description: r.description, Name: r.name,
		CreatedBy: r.createdBy, LockedBy: r.lockedBy, Extension: r.ext, IsDraft: r.isDraft,
		IsFavorite:          r.favorites[u.Id],
		LastModifiedDate:    r.modified.In(s.loc).Format(localLayout),
		LastModifiedDateUtc: r.modified,
		CanEdit:             s.can(u, AccessModify, CategoryReport, r.id, r.categoryID),
		CanView:             s.can(u, AccessRead, CategoryReport, r.id, r.categoryID),
	}
	if n := len(r.revisions); n > 0 {
		info.LastRevisionId = r.revisions[n-1].id
	}
	if cu := s.st.users[r.createdBy]; cu != nil {
		info.CreatedByName = cu.Username
	}
	if lu := s.st.users[r.lockedBy]; lu != nil {
		info.LockedByName = lu.Username
	}
	return info
}

// localLayout formats the obsolete server-local date fields the way .NET
// serialises a local DateTime ("2026-08-12T14:15:59.9960979+00:00").
const localLayout = "2006-01-02T15:04:05.9999999-07:00"

func (s *Server) sortedReports() []*report {
	out := make([]*report, 0, len(s.st.reports))
	for _, r := range s.st.reports {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return s.st.order[out[i].id] < s.st.order[out[j].id] })
	return out
}

// findReport loads {reportId} and checks access (Read is checked too, so a
// caller without Read gets 403 rather than learning anything else).
func (s *Server) findReport(c *call, access int) (*report, *resp) {
	id := c.param("reportId")
	r := s.st.reports[strings.ToLower(id)]
	if r == nil {
		return nil, notFound("Report", id)
	}
	if !s.can(c.user, AccessRead|access, CategoryReport, r.id, r.categoryID) {
		return nil, forbidden()
	}
	return r, nil
}

// GET reports: the reports the caller can read.
func (s *Server) listReports(c *call) *resp {
	out := []ReportInfo{}
	for _, r := range s.sortedReports() {
		if s.can(c.user, AccessRead, CategoryReport, r.id, r.categoryID) {
			out = append(out, s.wireReport(r, c.user))
		}
	}
	return ok(out)
}

// GET reports/{reportId}.
func (s *Server) getReport(c *call) *resp {
	r, res := s.findReport(c, 0)
	if res != nil {
		return res
	}
	return ok(s.wireReport(r, c.user))
}

// uploadReport is UploadReport.
type uploadReport struct {
	Name        string    `json:"Name"`
	Description string    `json:"Description"`
	CategoryId  string    `json:"CategoryId"`
	ReportFile  *HttpFile `json:"ReportFile"`
}

// POST reports. v1: 200 + bare id string; v2: 200 + ReportInfo [I: the .NET
// client returns ReportInfo]; v3: 201 + Location + ReportInfo [U: no v3 page
// for report creation; JSON UploadReport and multipart (fields Name,
// Description, CategoryId, file ReportFile) are both accepted].
func (s *Server) createReport(c *call) *resp {
	var m uploadReport
	if c.version == "v3" && isMultipart(c.r) {
		f, name, err := readMultipartFile(c.r)
		if err != nil {
			return badRequest("%v", err)
		}
		m = uploadReport{Name: c.r.FormValue("Name"), Description: c.r.FormValue("Description"),
			CategoryId: c.r.FormValue("CategoryId"), ReportFile: &HttpFile{FileName: name, Buffer: f}}
	} else if res := c.bind(&m); res != nil {
		return res
	}
	if strings.TrimSpace(m.Name) == "" {
		return badRequest("Name is required.")
	}
	if m.ReportFile == nil || len(m.ReportFile.Buffer) == 0 {
		return badRequest("ReportFile is required and its Buffer must hold the report definition.")
	}
	cat := s.st.categories[strings.ToLower(m.CategoryId)]
	if cat == nil {
		return badRequest("CategoryId: category '%s' does not exist.", m.CategoryId)
	}
	if !s.can(c.user, AccessCreate, CategoryReport, "", cat.Id) {
		return forbidden()
	}
	for _, r := range s.st.reports {
		if r.categoryID == cat.Id && strings.EqualFold(r.name, m.Name) {
			return badRequest("Name: a report named '%s' already exists in this category.", m.Name)
		}
	}
	ext := strings.ToLower(path.Ext(m.ReportFile.FileName))
	if ext != ".trdx" {
		ext = ".trdp"
	}
	r := s.newReport(m.Name, m.Description, cat.Id, ext, c.user.Id, m.ReportFile.Buffer)
	switch c.version {
	case "v1":
		return ok(r.id)
	case "v3":
		return c.created(s.wireReport(r, c.user), "api/reportserver/v3/reports/"+r.id)
	}
	return ok(s.wireReport(r, c.user))
}

func (s *Server) newReport(name, desc, categoryID, ext, userID string, content []byte) *report {
	now := s.clock()
	r := &report{id: s.st.remember(newID()), name: name, description: desc, categoryID: categoryID,
		createdBy: userID, ext: ext, favorites: map[string]bool{}, modified: now}
	r.revisions = append(r.revisions, &revision{id: s.st.remember(newID()), comment: "Initial version",
		content: content, createdBy: userID, created: now})
	s.st.reports[r.id] = r
	return r
}

// updateReportInfo is UpdateReportInfo (v2 carries Id; v1/v3 take it from
// the path).
type updateReportInfo struct {
	Id          string `json:"Id"`
	Name        string `json:"Name"`
	Description string `json:"Description"`
	CategoryId  string `json:"CategoryId"`
}

// PUT reports/{reportId} (v1, v3) and PUT reports (v2, body Id): 200 ReportInfo.
func (s *Server) updateReport(c *call) *resp {
	var m updateReportInfo
	if res := c.bind(&m); res != nil {
		return res
	}
	if c.param("reportId") == "" {
		if m.Id == "" {
			return badRequest("Id is required.")
		}
		c.p = map[string]string{"reportId": m.Id}
	}
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	if strings.TrimSpace(m.Name) == "" {
		return badRequest("Name is required.")
	}
	if r.lockedBy != "" && r.lockedBy != c.user.Id {
		return errResp(http.StatusConflict, errLocked)
	}
	if m.CategoryId != "" {
		cat := s.st.categories[strings.ToLower(m.CategoryId)]
		if cat == nil {
			return badRequest("CategoryId: category '%s' does not exist.", m.CategoryId)
		}
		r.categoryID = cat.Id
	}
	r.name, r.description, r.modified = m.Name, m.Description, s.clock()
	return ok(s.wireReport(r, c.user))
}

// DELETE reports/{reportId}: 204. Tasks and alerts of the report lose it, and
// are deleted when it was their only report (S2: "also modifies or deletes
// scheduled tasks and data alerts associated with this report").
func (s *Server) deleteReport(c *call) *resp {
	r, res := s.findReport(c, AccessDelete)
	if res != nil {
		return res
	}
	if r.lockedBy != "" && r.lockedBy != c.user.Id {
		return errResp(http.StatusConflict, errLocked)
	}
	s.removeReport(r.id)
	return noContent()
}

func (s *Server) removeReport(id string) {
	delete(s.st.reports, id)
	for tid, t := range s.st.tasks {
		kept := t.Reports[:0]
		for _, tr := range t.Reports {
			if tr.ReportId != id {
				kept = append(kept, tr)
			}
		}
		t.Reports = kept
		if len(kept) == 0 {
			s.removeTask(tid)
		}
	}
	s.removePermsFor(CategoryReport, id)
}

func (s *Server) removePermsFor(cat int, id string) {
	for pid, p := range s.st.perms {
		if p.PermissionCategory == cat && p.ResourceId == id && p.Scope != ScopeReportsInCategory {
			delete(s.st.perms, pid)
		}
	}
}

// DELETE reports/{reportId}/{revisionId} and
// reports/{reportId}/revisions/{revisionId}: 204. The last remaining
// revision cannot be deleted (400) [I].
func (s *Server) deleteRevision(c *call) *resp {
	r, res := s.findReport(c, AccessDelete)
	if res != nil {
		return res
	}
	rid := strings.ToLower(c.param("revisionId"))
	for i, rev := range r.revisions {
		if rev.id == rid {
			if len(r.revisions) == 1 {
				return badRequest("revisionId: the only revision of a report cannot be deleted; delete the report instead.")
			}
			r.revisions = append(r.revisions[:i], r.revisions[i+1:]...)
			r.modified = s.clock()
			return noContent()
		}
	}
	return notFound("Revision", c.param("revisionId"))
}

// reportRevision is ReportRevision.
type reportRevision struct {
	Comment      string    `json:"Comment"`
	RevisionFile *HttpFile `json:"RevisionFile"`
}

// POST reports/{reportId}/revisions: 204. v1/v2 take JSON ReportRevision;
// v3 takes multipart/form-data (an IFormFile) [I].
func (s *Server) addRevision(c *call) *resp {
	var m reportRevision
	if isMultipart(c.r) {
		b, name, err := readMultipartFile(c.r)
		if err != nil {
			return badRequest("%v", err)
		}
		m = reportRevision{Comment: c.r.FormValue("Comment"), RevisionFile: &HttpFile{FileName: name, Buffer: b}}
	} else if res := c.bind(&m); res != nil {
		return res
	}
	if m.RevisionFile == nil || len(m.RevisionFile.Buffer) == 0 {
		return badRequest("RevisionFile is required and its Buffer must hold the report definition.")
	}
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	if r.lockedBy != "" && r.lockedBy != c.user.Id {
		return errResp(http.StatusConflict, errLocked)
	}
	s.appendRevision(r, m.Comment, m.RevisionFile.Buffer, c.user.Id)
	return noContent()
}

func (s *Server) appendRevision(r *report, comment string, content []byte, userID string) {
	now := s.clock()
	r.revisions = append(r.revisions, &revision{id: s.st.remember(newID()), comment: comment,
		content: content, createdBy: userID, created: now})
	r.modified = now
}

// GET reports/{reportId}/revisions.
func (s *Server) listRevisions(c *call) *resp {
	r, res := s.findReport(c, 0)
	if res != nil {
		return res
	}
	out := []RevisionInfo{}
	for _, rev := range r.revisions {
		out = append(out, s.wireRevision(r, rev))
	}
	return ok(out)
}

func (s *Server) wireRevision(r *report, rev *revision) RevisionInfo {
	info := RevisionInfo{Id: rev.id, ReportId: r.id, Comment: rev.comment, CreatedBy: rev.createdBy,
		DateCreatedUtc: rev.created}
	if u := s.st.users[rev.createdBy]; u != nil {
		info.CreatedByName = u.Username
	}
	return info
}

// GET reports/{reportId}/revisions/{revisionId}: ReportRevisionContent.
// "latest" names the newest revision [U S15].
func (s *Server) getRevision(c *call) *resp {
	r, res := s.findReport(c, 0)
	if res != nil {
		return res
	}
	rid := strings.ToLower(c.param("revisionId"))
	if rid == "latest" && len(r.revisions) > 0 {
		rev := r.revisions[len(r.revisions)-1]
		return ok(ReportRevisionContent{Id: rev.id, Content: rev.content})
	}
	for _, rev := range r.revisions {
		if rev.id == rid {
			return ok(ReportRevisionContent{Id: rev.id, Content: rev.content})
		}
	}
	return notFound("Revision", c.param("revisionId"))
}

// GET reports/{reportId}/parameters: the simulator's reports have none [I].
func (s *Server) reportParameters(c *call) *resp {
	if _, res := s.findReport(c, 0); res != nil {
		return res
	}
	return ok([]any{})
}

// PUT reports/{reportId}/shelve: the raw request content is the shelved
// definition; 204.
func (s *Server) putShelve(c *call) *resp {
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 512<<20))
	if err != nil {
		return badRequest("the request content could not be read: %v", err)
	}
	if len(b) == 0 {
		return badRequest("The request content (the shelved report definition) is empty.")
	}
	r.shelve, r.isDraft = b, true
	return noContent()
}

// GET reports/{reportId}/shelve: {Content, Extension}, 404 when nothing is
// shelved [I].
func (s *Server) getShelve(c *call) *resp {
	r, res := s.findReport(c, 0)
	if res != nil {
		return res
	}
	if r.shelve == nil {
		return notFound("Shelved definition of report", r.id)
	}
	return ok(Shelve{Content: r.shelve, Extension: r.ext})
}

// DELETE reports/{reportId}/shelve: 204 (also when nothing was shelved [I]).
func (s *Server) deleteShelve(c *call) *resp {
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	r.shelve, r.isDraft = nil, false
	return noContent()
}

// PUT / DELETE reports/{reportId}/favorite: a per-user flag; Read suffices [I].
func (s *Server) setFavorite(on bool) handler {
	return func(c *call) *resp {
		r, res := s.findReport(c, 0)
		if res != nil {
			return res
		}
		if on {
			r.favorites[c.user.Id] = true
		} else {
			delete(r.favorites, c.user.Id)
		}
		return noContent()
	}
}

// PUT reports/{reportId}/lock: 204; 409 when another user holds the lock [I].
func (s *Server) lockReport(c *call) *resp {
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	if r.lockedBy != "" && r.lockedBy != c.user.Id {
		return errResp(http.StatusConflict, errLocked)
	}
	r.lockedBy = c.user.Id
	return noContent()
}

// DELETE reports/{reportId}/lock (2016) and reports/{reportId}/unlock
// (current docs): 204; 409 when another user holds the lock, unless the
// caller is an administrator [I].
func (s *Server) unlockReport(c *call) *resp {
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	if r.lockedBy != "" && r.lockedBy != c.user.Id && !s.isAdmin(c.user) {
		return errResp(http.StatusConflict, errLocked)
	}
	r.lockedBy = ""
	return noContent()
}

// POST reports/{reportId}/publish (every version): body is a JSON string comment; the
// shelved definition (or else the latest revision) becomes a new revision;
// 204 [I].
func (s *Server) publishReport(c *call) *resp {
	var comment string
	if res := c.bind(&comment); res != nil {
		if res.status == http.StatusBadRequest {
			return badRequest("The body must be a JSON string: the revision comment.")
		}
		return res
	}
	r, res := s.findReport(c, AccessModify)
	if res != nil {
		return res
	}
	content := r.shelve
	if content == nil && len(r.revisions) > 0 {
		content = r.revisions[len(r.revisions)-1].content
	}
	s.appendRevision(r, comment, content, c.user.Id)
	r.shelve, r.isDraft = nil, false
	return noContent()
}

func isMultipart(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "multipart/form-data"
}

// readMultipartFile returns the file of a multipart form. A form with files
// under several field names gives the first field's by name, so the same
// request always stores the same file (the parsed form keeps no part order).
func readMultipartFile(r *http.Request) ([]byte, string, error) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		return nil, "", fmt.Errorf("the multipart body could not be read: %w", err)
	}
	var fh *multipart.FileHeader
	for _, field := range slices.Sorted(maps.Keys(r.MultipartForm.File)) {
		if fhs := r.MultipartForm.File[field]; len(fhs) > 0 {
			fh = fhs[0]
			break
		}
	}
	if fh == nil {
		return nil, "", fmt.Errorf("the multipart body holds no file")
	}
	f, err := fh.Open()
	if err != nil {
		return nil, "", fmt.Errorf("file %q: %w", fh.Filename, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, "", fmt.Errorf("file %q: %w", fh.Filename, err)
	}
	return b, fh.Filename, nil
}
