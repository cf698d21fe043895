package simulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Scheduled tasks, data alerts and their executions: v1 (unversioned and
// /v1), v2 and v3. One handler set serves both kinds; kind says which.

type kind struct {
	alert    bool
	what     string // "Scheduled task" / "Data alert"
	category int
	param    string // path parameter name of the id
	v1Path   string // v1/v2 collection segment
	v3Path   string // v3 collection segment
}

var (
	taskKind  = kind{what: "Scheduled task", category: CategoryScheduledTask, param: "scheduledTaskId", v1Path: "scheduledtasks", v3Path: "scheduled-tasks"}
	alertKind = kind{alert: true, what: "Data alert", category: CategoryDataAlert, param: "dataAlertId", v1Path: "dataalerts", v3Path: "data-alerts"}
)

func (k kind) specificScope() int {
	if k.alert {
		return ScopeSpecificDataAlert
	}
	return ScopeSpecificScheduledTask
}

// taskBody accepts every generation's task and alert create/update model:
// v1 (ReportId, DocumentFormat, Parameters, MailSubject/MailBody and the 2016
// MailTemplateSubject/MailTemplateBody) and v2/v3 (Reports[], mail
// templates, StartDateUtc, BaseUtcOffset).
type taskBody struct {
	Id                        string          `json:"Id"`
	Name                      string          `json:"Name"`
	Enabled                   bool            `json:"Enabled"`
	Reports                   []TaskReport    `json:"Reports"`
	ReportId                  string          `json:"ReportId"`
	DocumentFormat            string          `json:"DocumentFormat"`
	Parameters                map[string]any  `json:"Parameters"`
	StartDate                 json.RawMessage `json:"StartDate"`
	StartDateUtc              json.RawMessage `json:"StartDateUtc"`
	BaseUtcOffset             float64         `json:"BaseUtcOffset"`
	RecurrenceRule            json.RawMessage `json:"RecurrenceRule"`
	LocalUsersMailTemplate    *MailTemplate   `json:"LocalUsersMailTemplate"`
	ExternalUsersMailTemplate *MailTemplate   `json:"ExternalUsersMailTemplate"`
	MailSubject               string          `json:"MailSubject"`
	MailBody                  string          `json:"MailBody"`
	MailTemplateSubject       string          `json:"MailTemplateSubject"`
	MailTemplateBody          string          `json:"MailTemplateBody"`
	ExternalEmails            []string        `json:"ExternalEmails"`
	SubscriberIds             []string        `json:"SubscriberIds"`
	Rules                     []AlertRule     `json:"Rules"`
}

// toTask validates b and converts it into the stored (v2) shape.
func (s *Server) toTask(b *taskBody, k kind) (*task, *resp) {
	if strings.TrimSpace(b.Name) == "" {
		return nil, badRequest("Name is required.")
	}
	reports := b.Reports
	if len(reports) == 0 && b.ReportId != "" {
		reports = []TaskReport{{ReportId: b.ReportId, DocumentFormat: b.DocumentFormat, Parameters: b.Parameters}}
	}
	if len(reports) == 0 {
		return nil, badRequest("Reports (v2/v3) or ReportId (v1) is required.")
	}
	for i := range reports {
		r := s.st.reports[strings.ToLower(reports[i].ReportId)]
		if r == nil {
			return nil, badRequest("ReportId: report '%s' does not exist.", reports[i].ReportId)
		}
		reports[i].ReportId = r.id
		if reports[i].DocumentFormat == "" {
			reports[i].DocumentFormat = "PDF"
		}
		if reports[i].Parameters == nil {
			reports[i].Parameters = map[string]any{}
		}
	}
	if k.alert && len(b.Rules) == 0 {
		return nil, badRequest("Rules: a data alert needs at least one rule.")
	}
	for i, rule := range b.Rules {
		if rule.Index < 0 || rule.Index >= len(reports) {
			return nil, badRequest("Rules[%d].Index must point into Reports.", i)
		}
	}
	local := b.LocalUsersMailTemplate
	subj, body := b.MailSubject, b.MailBody
	if subj == "" {
		subj = b.MailTemplateSubject
	}
	if body == "" {
		body = b.MailTemplateBody
	}
	if local == nil && (subj != "" || body != "") {
		local = &MailTemplate{Subject: subj, Body: body}
	}
	t := &task{alert: k.alert, ScheduledTask: ScheduledTask{
		Name: b.Name, Enabled: b.Enabled, Reports: reports,
		StartDate: nullIfEmpty(b.StartDate), StartDateUtc: nullIfEmpty(b.StartDateUtc), BaseUtcOffset: b.BaseUtcOffset,
		RecurrenceRule: nullIfEmpty(b.RecurrenceRule), LocalUsersMailTemplate: local,
		ExternalUsersMailTemplate: b.ExternalUsersMailTemplate,
		ExternalEmails:            nonNil(b.ExternalEmails), SubscriberIds: nonNil(b.SubscriberIds),
	}}
	if k.alert {
		t.rules = b.Rules
	}
	return t, nil
}

func nullIfEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("null")
	}
	return m
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// wireTask renders t in the caller's API generation.
func wireTask(t *task, version string) any {
	if version == "v1" {
		v1 := ScheduledTaskV1{Id: t.Id, UserId: t.UserId, Name: t.Name, Enabled: t.Enabled,
			StartDate: t.StartDate, RecurrenceRule: t.RecurrenceRule,
			ExternalEmails: t.ExternalEmails, SubscriberIds: t.SubscriberIds, Parameters: map[string]any{}}
		if len(t.Reports) > 0 {
			v1.ReportId, v1.DocumentFormat, v1.Parameters = t.Reports[0].ReportId, t.Reports[0].DocumentFormat, t.Reports[0].Parameters
		}
		if m := t.LocalUsersMailTemplate; m != nil {
			v1.MailSubject, v1.MailBody = m.Subject, m.Body
		}
		if !t.alert {
			return v1
		}
		rules := []AlertRuleV1{}
		for _, r := range t.rules {
			rules = append(rules, AlertRuleV1{DataItemName: r.DataItemName, Clauses: r.Clauses})
		}
		return DataAlertV1{ScheduledTaskV1: v1, Rules: rules}
	}
	if !t.alert {
		return t.ScheduledTask
	}
	rules := t.rules
	if rules == nil {
		rules = []AlertRule{}
	}
	return DataAlert{ScheduledTask: t.ScheduledTask, Rules: rules}
}

func (s *Server) sortedTasks(alert bool) []*task {
	var out []*task
	for _, t := range s.st.tasks {
		if t.alert == alert {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return s.st.order[out[i].Id] < s.st.order[out[j].Id] })
	return out
}

func (s *Server) findTask(c *call, k kind, id string, access int) (*task, *resp) {
	t := s.st.tasks[strings.ToLower(id)]
	if t == nil || t.alert != k.alert {
		return nil, notFound(k.what, id)
	}
	if !s.can(c.user, AccessRead|access, k.category, t.Id, "") {
		return nil, forbidden()
	}
	return t, nil
}

func (s *Server) listTasks(k kind) handler {
	return func(c *call) *resp {
		out := []any{}
		for _, t := range s.sortedTasks(k.alert) {
			if s.can(c.user, AccessRead, k.category, t.Id, "") {
				out = append(out, wireTask(t, c.version))
			}
		}
		return ok(out)
	}
}

func (s *Server) getTask(k kind) handler {
	return func(c *call) *resp {
		t, res := s.findTask(c, k, c.param(k.param), 0)
		if res != nil {
			return res
		}
		return ok(wireTask(t, c.version))
	}
}

// createTask: POST scheduledtasks|dataalerts (v1 200 "id"; v2 200 object [I])
// and v3 POST scheduled-tasks|data-alerts (201 + Location [I]). Any
// authenticated user may create tasks and alerts [I]; a non-administrator
// creator receives an Unrestricted Specific* permission on the new item.
func (s *Server) createTask(k kind) handler {
	return func(c *call) *resp {
		var b taskBody
		if res := c.bind(&b); res != nil {
			return res
		}
		t, res := s.toTask(&b, k)
		if res != nil {
			return res
		}
		for _, tr := range t.Reports {
			r := s.st.reports[tr.ReportId]
			if !s.can(c.user, AccessRead, CategoryReport, r.id, r.categoryID) {
				return forbidden()
			}
		}
		s.insertTask(t, c.user)
		switch c.version {
		case "v1":
			return ok(t.Id)
		case "v3":
			return c.created(wireTask(t, c.version), "api/reportserver/v3/"+k.v3Path+"/"+t.Id)
		}
		return ok(wireTask(t, c.version))
	}
}

func (s *Server) insertTask(t *task, owner *user) {
	t.Id = s.st.remember(newID())
	t.UserId = owner.Id
	s.st.tasks[t.Id] = t
	if !s.isAdmin(owner) {
		k := taskKind
		if t.alert {
			k = alertKind
		}
		s.addPermission(owner.Id, AccessUnrestricted, k.specificScope(), t.Id)
	}
}

// updateTask: PUT scheduledtasks|dataalerts (v1/v2, body Id) and v3 PUT
// scheduled-tasks|data-alerts/{id} [I]: 200 with the stored object.
func (s *Server) updateTask(k kind) handler {
	return func(c *call) *resp {
		var b taskBody
		if res := c.bind(&b); res != nil {
			return res
		}
		id := c.param(k.param)
		if id == "" {
			id = b.Id
		}
		if id == "" {
			return badRequest("Id is required.")
		}
		old, res := s.findTask(c, k, id, AccessModify)
		if res != nil {
			return res
		}
		t, res := s.toTask(&b, k)
		if res != nil {
			return res
		}
		t.Id, t.UserId = old.Id, old.UserId
		s.st.tasks[t.Id] = t
		return ok(wireTask(t, c.version))
	}
}

// deleteTask: DELETE scheduledtasks|dataalerts/{id}: 204. Its executions,
// their documents and the permissions naming it go too.
func (s *Server) deleteTask(k kind) handler {
	return func(c *call) *resp {
		t, res := s.findTask(c, k, c.param(k.param), AccessDelete)
		if res != nil {
			return res
		}
		s.removeTask(t.Id)
		return noContent()
	}
}

func (s *Server) removeTask(id string) {
	t := s.st.tasks[id]
	if t == nil {
		return
	}
	delete(s.st.tasks, id)
	s.clearExecutions(id)
	cat := CategoryScheduledTask
	if t.alert {
		cat = CategoryDataAlert
	}
	s.removePermsFor(cat, id)
}

func (s *Server) clearExecutions(taskID string) {
	for _, e := range s.st.executions[taskID] {
		for _, d := range e.DocumentIds {
			delete(s.st.documents, d)
		}
	}
	delete(s.st.executions, taskID)
}

// ---------------------------------------------------------------------------
// Executions

// run records one execution of t, as the Service Agent would.
func (s *Server) run(t *task, triggered bool) *execution {
	now := s.clock()
	e := &execution{Execution: Execution{Id: s.st.remember(newID()), DocumentIds: []string{},
		AlertTriggered: t.alert && triggered, ExecutionDate: now.In(s.loc).Format(localLayout),
		ExecutionDateUtc: now}, taskID: t.Id}
	if !t.alert || triggered {
		for _, tr := range t.Reports {
			d := s.newDocument(tr.ReportId, tr.DocumentFormat, t.Id, e.Id)
			e.DocumentIds = append(e.DocumentIds, d.Id)
		}
	}
	s.st.executions[t.Id] = append(s.st.executions[t.Id], e)
	return e
}

func (s *Server) newDocument(reportID, format, taskID, executionID string) *document {
	now := s.clock()
	name := reportID
	if r := s.st.reports[reportID]; r != nil {
		name = r.name
	}
	if format == "" {
		format = "PDF"
	}
	mt, ext := documentType(format)
	d := &document{ExecutionDocument: ExecutionDocument{Id: s.st.remember(newID()), TaskId: taskID,
		DocumentName: name + ext, DocumentFormat: format, MimeType: mt,
		DateCreated: now.In(s.loc).Format(localLayout), DateCreatedUtc: now, ReportId: reportID}, executionID: executionID}
	if n := s.st.docSizes[strings.ToLower(taskID)]; taskID != "" && n > 0 {
		d.size = n
	} else {
		d.Data = []byte(fmt.Sprintf("simulated %s document %s of report %s\n", format, d.Id, reportID))
	}
	s.st.documents[d.Id] = d
	return d
}

func documentType(format string) (mimeType, ext string) {
	switch strings.ToUpper(format) {
	case "PDF":
		return "application/pdf", ".pdf"
	case "XLSX":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"
	case "DOCX":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"
	case "CSV":
		return "text/csv", ".csv"
	case "HTML5", "MHTML", "HTML":
		return "text/html", ".html"
	case "IMAGE", "PNG":
		return "image/png", ".png"
	}
	return "application/octet-stream", ".bin"
}

// listExecutions: GET executions/scheduledtasks|dataalerts/{id} (v1/v2) and
// v3 GET scheduled-tasks|data-alerts/{id}/executions ([I] for tasks):
// SchedulingExecution[], oldest first [U: the order is not documented].
func (s *Server) listExecutions(k kind) handler {
	return func(c *call) *resp {
		t, res := s.findTask(c, k, c.param(k.param), 0)
		if res != nil {
			return res
		}
		out := []Execution{}
		for _, e := range s.st.executions[t.Id] {
			out = append(out, e.Execution)
		}
		return ok(out)
	}
}

// executeTask: POST executions/scheduledtasks|dataalerts/{id} (v1/v2) and v3
// POST .../{id}/execute: 204. The real server queues the run for its agent;
// the simulator records the execution before answering [I], so a poll right
// after the call sees it — unless HoldRuns asked it to queue runs as a busy
// agent would. A data alert run from the API counts as triggered [I]. Needs
// Modify on the item [I].
func (s *Server) executeTask(k kind) handler {
	return func(c *call) *resp {
		t, res := s.findTask(c, k, c.param(k.param), AccessModify)
		if res != nil {
			return res
		}
		if s.holdRuns {
			s.queued = append(s.queued, t)
		} else {
			s.run(t, true)
		}
		return noContent()
	}
}

// deleteExecutions: DELETE executions/scheduledtasks|dataalerts/{id} and v3
// DELETE .../{id}/executions: 204.
func (s *Server) deleteExecutions(k kind) handler {
	return func(c *call) *resp {
		t, res := s.findTask(c, k, c.param(k.param), AccessModify)
		if res != nil {
			return res
		}
		s.clearExecutions(t.Id)
		return noContent()
	}
}

// deleteExecution: DELETE executions/scheduledtasks|dataalerts/{id}/{executionId}
// and v3 DELETE .../{id}/executions/{executionId}: 204, 404 if unknown.
func (s *Server) deleteExecution(k kind) handler {
	return func(c *call) *resp {
		t, res := s.findTask(c, k, c.param(k.param), AccessModify)
		if res != nil {
			return res
		}
		if !s.removeExecution(t.Id, c.param("executionId")) {
			return notFound("Execution", c.param("executionId"))
		}
		return noContent()
	}
}

func (s *Server) removeExecution(taskID, execID string) bool {
	execID = strings.ToLower(execID)
	list := s.st.executions[taskID]
	for i, e := range list {
		if e.Id == execID {
			for _, d := range e.DocumentIds {
				delete(s.st.documents, d)
			}
			s.st.executions[taskID] = append(list[:i:i], list[i+1:]...)
			return true
		}
	}
	return false
}

// executionDocument: v3 GET scheduled-tasks|data-alerts/{id}/executions/{executionId}/documents/{documentId}
// ([C] for data alerts, [I] for tasks): ExecutionDocument with base64 Data,
// written as it is encoded (a generated document is never held).
func (s *Server) executionDocument(k kind) streamer {
	return func(c *call) {
		s.mu.Lock()
		t, res := s.findTask(c, k, c.param(k.param), 0)
		var d *document
		if res == nil {
			d = s.st.documents[strings.ToLower(c.param("documentId"))]
			if d == nil || d.TaskId != t.Id || !strings.EqualFold(d.executionID, c.param("executionId")) {
				res = notFound("Document", c.param("documentId"))
			}
		}
		var meta ExecutionDocument
		var body io.Reader
		if res == nil {
			meta, body = d.ExecutionDocument, d.content()
			meta.Data = nil
		}
		s.mu.Unlock()
		if res != nil {
			s.write(c.w, c.r, res)
			return
		}
		head, _ := json.Marshal(meta) // a struct of strings and times
		pre, post, _ := strings.Cut(string(head), `"Data":null`)
		c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
		c.w.WriteHeader(http.StatusOK)
		if _, err := io.WriteString(c.w, pre+`"Data":"`); err != nil {
			return
		}
		enc := base64.NewEncoder(base64.StdEncoding, onlyWriter{c.w})
		buf := make([]byte, 48<<10)
		if _, err := io.CopyBuffer(onlyWriter{enc}, body, buf); err != nil {
			return
		}
		if enc.Close() != nil {
			return
		}
		_, _ = io.WriteString(c.w, `"`+post)
	}
}

// ---------------------------------------------------------------------------
// Documents (rendering; never a resource change)

// createDocumentData is CreateDocumentData.
type createDocumentData struct {
	ReportId        string         `json:"ReportId"`
	Format          string         `json:"Format"`
	DeviceInfo      map[string]any `json:"DeviceInfo"`
	ParameterValues map[string]any `json:"ParameterValues"`
}

// DocumentProcessingStatus is the v3 answer to POST documents.
type DocumentProcessingStatus struct {
	Id     string `json:"Id"`
	Status string `json:"Status"`
}

// POST documents: v1/v2 201 + Location + bare id string [I: the .NET KB
// reads Location]; v3 201 + Location + DocumentProcessingStatus [U status
// value "Completed"]. The document is rendered at once.
func (s *Server) createDocument(c *call) *resp {
	var m createDocumentData
	if res := c.bind(&m); res != nil {
		return res
	}
	if m.Format == "" {
		return badRequest("Format is required.")
	}
	r := s.st.reports[strings.ToLower(m.ReportId)]
	if r == nil {
		return badRequest("ReportId: report '%s' does not exist.", m.ReportId)
	}
	if !s.can(c.user, AccessRead, CategoryReport, r.id, r.categoryID) {
		return forbidden()
	}
	d := s.newDocument(r.id, m.Format, "", "")
	base := "api/reportserver/"
	if c.version != "" && c.version != "v1" {
		base += c.version + "/"
	}
	if c.version == "v3" {
		return c.created(DocumentProcessingStatus{Id: d.Id, Status: "Completed"}, base+"documents/"+d.Id)
	}
	return c.created(d.Id, base+"documents/"+d.Id)
}

// GET documents/{documentId}[?content-disposition=attachment]: the bytes,
// streamed with Content-Length, Content-Type (the document's MIME type) and
// Content-Disposition naming the file. [C S1, S5] for rendered documents;
// that an execution's document ids are served here too is [I] (ids of
// both kinds share one namespace in the simulator).
func (s *Server) getDocument(c *call) {
	s.mu.Lock()
	d := s.st.documents[strings.ToLower(c.param("documentId"))]
	var (
		name, mime string
		n          int64
		body       io.Reader
	)
	if d != nil {
		name, mime, n, body = d.DocumentName, d.MimeType, d.length(), d.content()
	}
	s.mu.Unlock()
	if d == nil {
		s.write(c.w, c.r, notFound("Document", c.param("documentId")))
		return
	}
	disp := c.r.URL.Query().Get("content-disposition")
	if disp == "" {
		disp = "inline"
	}
	h := c.w.Header()
	h.Set("Content-Type", mime)
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("Content-Disposition", fmt.Sprintf("%s; filename=%q", disp, name))
	c.w.WriteHeader(http.StatusOK)
	buf := make([]byte, 64<<10)
	_, _ = io.CopyBuffer(onlyWriter{c.w}, body, buf) // a client gone away ends the copy
}
