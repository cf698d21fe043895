package simulator

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Test and demo hooks: Go methods that change the simulator without HTTP.
// All are safe for concurrent use with each other and with ServeHTTP.

// ErrNotFound is returned by hooks for unknown users, tasks or alerts.
var ErrNotFound = errors.New("simulator: not found")

// Credential is a seeded or added user's login.
type Credential struct {
	ID       string
	Username string
	Password string
	Admin    bool
}

// Users returns every user's credentials, oldest first (admin, alice, bob,
// then users added later).
func (s *Server) Users() []Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Credential
	for _, u := range s.sortedUsers() {
		out = append(out, Credential{ID: u.Id, Username: u.Username, Password: u.password, Admin: s.isAdmin(u)})
	}
	return out
}

// User returns the credentials of username (case-insensitive).
func (s *Server) User(username string) (Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil {
		return Credential{}, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	return Credential{ID: u.Id, Username: u.Username, Password: u.password, Admin: s.isAdmin(u)}, nil
}

// AddUser adds a local user in the Users role, or in System Administrator
// when admin is true.
func (s *Server) AddUser(username, password string, admin bool) (Credential, error) {
	if username == "" || password == "" {
		return Credential{}, errors.New("simulator: AddUser: username and password must not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userByName(username) != nil {
		return Credential{}, fmt.Errorf("simulator: AddUser: user %q already exists", username)
	}
	u := s.addUser(username, password, username, "", admin)
	return Credential{ID: u.Id, Username: u.Username, Password: password, Admin: admin}, nil
}

// DisableUser makes username unable to log in and invalidates its tokens
// (as deleting or disabling a user does on the real server).
func (s *Server) DisableUser(username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil {
		return fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	u.disabled, u.Enabled = true, false
	for tok, t := range s.st.tokens {
		if t.userID == u.Id {
			delete(s.st.tokens, tok)
		}
	}
	return nil
}

// EnableUser undoes DisableUser (old tokens stay revoked).
func (s *Server) EnableUser(username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil {
		return fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	u.disabled, u.Enabled = false, true
	return nil
}

// IssueToken returns a fresh access token for username, as POST /Token
// would, without an HTTP round trip.
func (s *Server) IssueToken(username string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(username)
	if u == nil || u.disabled {
		return "", fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	tok, _ := s.issueToken(u)
	return tok, nil
}

// RevokeToken invalidates token; it reports whether the token was live.
func (s *Server) RevokeToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.st.tokens[token]
	delete(s.st.tokens, token)
	return ok
}

// Grant adds a permission for a user or role named by name (user names are
// tried first) and returns its id.
func (s *Server) Grant(name string, access, scope int, resourceID string) (string, error) {
	if scopeCategory(scope) < 0 || access < 1 || access > AccessUnrestricted {
		return "", fmt.Errorf("simulator: Grant: invalid access %d or scope %d", access, scope)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner := ""
	if u := s.userByName(name); u != nil {
		owner = u.Id
	} else if r := s.roleByName(name); r != nil {
		owner = r.Id
	} else {
		return "", fmt.Errorf("user or role %q: %w", name, ErrNotFound)
	}
	return s.addPermission(owner, access, scope, resourceID).Id, nil
}

// ---------------------------------------------------------------------------
// Executions "on schedule"

func (s *Server) hookTask(id string, alert bool) (*task, error) {
	t := s.st.tasks[strings.ToLower(id)]
	if t == nil || t.alert != alert {
		what := "scheduled task"
		if alert {
			what = "data alert"
		}
		return nil, fmt.Errorf("%s %q: %w", what, id, ErrNotFound)
	}
	return t, nil
}

// SetDocumentSize makes every later run of task or alert id produce
// documents of n bytes (DeterministicBytes(n)), generated as they are
// served and never held in memory, so a test can download a 256 MiB
// document from a small process. n 0 returns to the small text documents.
func (s *Server) SetDocumentSize(id string, n int64) error {
	if n < 0 {
		return fmt.Errorf("document size must not be negative, got %d", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tasks[strings.ToLower(id)]
	if t == nil {
		return fmt.Errorf("task or alert %q: %w", id, ErrNotFound)
	}
	s.st.docSizes[strings.ToLower(t.Id)] = n
	return nil
}

// DocumentContent returns document id's bytes as a reader (generated for a
// sized document), its length, name and MIME type, for tests to compare
// what a download delivered.
func (s *Server) DocumentContent(id string) (r io.Reader, n int64, name, mimeType string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.st.documents[strings.ToLower(id)]
	if d == nil {
		return nil, 0, "", "", fmt.Errorf("document %q: %w", id, ErrNotFound)
	}
	return d.content(), d.length(), d.DocumentName, d.MimeType, nil
}

// RunTask records an execution of scheduled task id as the agent would on
// schedule: no HTTP call is involved. It works whether or not the task is
// Enabled. The execution has one document per report of the task.
func (s *Server) RunTask(id string) (Execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.hookTask(id, false)
	if err != nil {
		return Execution{}, err
	}
	return cloneExecution(s.run(t, false).Execution), nil
}

// RunAlert records an execution of data alert id. triggered says whether
// the alert's rules matched and it sent (AlertTriggered); only a triggered
// run has documents.
func (s *Server) RunAlert(id string, triggered bool) (Execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.hookTask(id, true)
	if err != nil {
		return Execution{}, err
	}
	return cloneExecution(s.run(t, triggered).Execution), nil
}

// HoldRuns makes the execute calls that follow queue their runs, as the
// real server does while its agent is busy: the call answers 204 and no
// execution record exists until ReleaseRuns.
func (s *Server) HoldRuns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdRuns = true
}

// ReleaseRuns records the runs queued since HoldRuns, in call order and
// dated now (when the agent runs them), stops queueing and returns them.
// A task or alert deleted meanwhile has no run.
func (s *Server) ReleaseRuns() []Execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Execution
	for _, t := range s.queued {
		if s.st.tasks[t.Id] == t {
			out = append(out, cloneExecution(s.run(t, true).Execution))
		}
	}
	s.holdRuns, s.queued = false, nil
	return out
}

// Executions returns the execution history of task or alert id, oldest first.
func (s *Server) Executions(id string) ([]Execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tasks[strings.ToLower(id)]
	if t == nil {
		return nil, fmt.Errorf("task or alert %q: %w", id, ErrNotFound)
	}
	out := []Execution{}
	for _, e := range s.st.executions[t.Id] {
		out = append(out, cloneExecution(e.Execution))
	}
	return out, nil
}

// DeleteExecutionHistory removes every execution (and document) of task or
// alert id, as a user cleaning up activities would.
func (s *Server) DeleteExecutionHistory(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tasks[strings.ToLower(id)]
	if t == nil {
		return fmt.Errorf("task or alert %q: %w", id, ErrNotFound)
	}
	s.clearExecutions(t.Id)
	return nil
}

func cloneExecution(e Execution) Execution {
	e.DocumentIds = append([]string{}, e.DocumentIds...)
	return e
}

// ---------------------------------------------------------------------------
// Clock and failure injection

// SetClockSkew shifts the server's clock by d (positive: the server runs
// ahead). It affects token lifetimes and every timestamp the server writes.
func (s *Server) SetClockSkew(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skew = d
}

// Now returns the server's current time (skew applied), in UTC.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock()
}

// FailWith makes every request except /_sim/ routes answer status (with a
// Web API error body) until FailWith(0).
func (s *Server) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWith = status
}

// SetFailing is FailWith under another name.
func (s *Server) SetFailing(status int) { s.FailWith(status) }

// FailNext makes the next n requests (except /_sim/ routes) answer status.
// It takes precedence over FailWith while it lasts.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failNextStatus = n, status
}

// SetLatency delays every request (except /_sim/ routes) by d before it is
// handled; 0 turns it off. A cancelled request stops waiting.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ---------------------------------------------------------------------------
// Request counters

// Requests returns how many requests each route family received, keyed by
// "METHOD /template" (e.g. "GET /api/reportserver/v2/executions/scheduledtasks/{scheduledTaskId}",
// "POST /Token"); requests that matched no route count under
// "METHOD (unmatched)". Failed (FailWith) requests are counted too.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byRoute))
	for k, v := range s.byRoute {
		out[k] = v
	}
	return out
}

// Count returns how many requests with method ("" for any) had a path
// (prefix removed) starting with pathPrefix, compared case-insensitively;
// e.g. Count("GET", "/api/reportserver/v2/executions/").
func (s *Server) Count(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pathPrefix = strings.ToLower(pathPrefix)
	n := 0
	for k, v := range s.byPath {
		m, p, _ := strings.Cut(k, " ")
		if (method == "" || strings.EqualFold(method, m)) && strings.HasPrefix(p, pathPrefix) {
			n += v
		}
	}
	return n
}

// ResetCounters zeroes the request counters.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byRoute = map[string]int{}
	s.byPath = map[string]int{}
}

// ---------------------------------------------------------------------------
// Resource creation without HTTP

func (s *Server) hookOwner(username string) (*user, error) {
	if username == "" {
		username = "admin"
	}
	u := s.userByName(username)
	if u == nil {
		return nil, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	return u, nil
}

// CreateCategory adds a category and returns its id.
func (s *Server) CreateCategory(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" || s.categoryNameTaken(name, "") {
		return "", fmt.Errorf("simulator: CreateCategory: name %q is empty or taken", name)
	}
	cat := &Category{Id: s.st.remember(newID()), Name: name}
	s.st.categories[cat.Id] = cat
	return cat.Id, nil
}

// CreateReport adds a report with one revision to categoryID, created by
// owner ("" means admin), and returns its id.
func (s *Server) CreateReport(categoryID, name, owner string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.hookOwner(owner)
	if err != nil {
		return "", err
	}
	if s.st.categories[strings.ToLower(categoryID)] == nil {
		return "", fmt.Errorf("category %q: %w", categoryID, ErrNotFound)
	}
	r := s.newReport(name, "", strings.ToLower(categoryID), ".trdp", u.Id, []byte("PK simulated report "+name))
	return r.id, nil
}

// CreateDataConnection adds a data connection and returns its id.
func (s *Server) CreateDataConnection(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" || s.connectionNameTaken(name, "") {
		return "", fmt.Errorf("simulator: CreateDataConnection: name %q is empty or taken", name)
	}
	d := &DataConnection{Id: s.st.remember(newID()), Name: name, Provider: "System.Data.SqlClient",
		ConnectionString: "Data Source=(local);Initial Catalog=" + name + ";Integrated Security=SSPI"}
	s.st.connections[d.Id] = d
	return d.Id, nil
}

// CreateTask adds an enabled daily scheduled task on reportID owned by
// owner ("" means admin) and returns its id.
func (s *Server) CreateTask(reportID, name, owner string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hookCreateTask(reportID, name, owner, false)
}

// CreateAlert adds an enabled data alert on reportID owned by owner ("" means
// admin) and returns its id.
func (s *Server) CreateAlert(reportID, name, owner string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hookCreateTask(reportID, name, owner, true)
}

func (s *Server) hookCreateTask(reportID, name, owner string, alert bool) (string, error) {
	u, err := s.hookOwner(owner)
	if err != nil {
		return "", err
	}
	k := taskKind
	b := &taskBody{Name: name, Enabled: true, Reports: []TaskReport{{ReportId: reportID, DocumentFormat: "PDF"}},
		RecurrenceRule: []byte(`{"Start":"2026-01-01T06:00:00Z","Frequency":2,"Interval":1}`)}
	if alert {
		k = alertKind
		b.Rules = []AlertRule{{Index: 0, DataItemName: "table1",
			Clauses: []AlertClause{{Column: "Total", Operator: "GreaterThan", Value: 1000}}}}
	}
	t, res := s.toTask(b, k)
	if res != nil {
		return "", fmt.Errorf("simulator: create %s: %s", strings.ToLower(k.what), res.body.(apiError).Message)
	}
	s.insertTask(t, u)
	return t.Id, nil
}

// SeedTasks creates n scheduled tasks owned by owner ("" means admin) on a
// shared seed report and returns their ids. The watcher benchmark uses
// SeedTasks(1000, "") and SeedAlerts(1000, "").
func (s *Server) SeedTasks(n int, owner string) ([]string, error) { return s.seed(n, owner, false) }

// SeedAlerts creates n data alerts like SeedTasks.
func (s *Server) SeedAlerts(n int, owner string) ([]string, error) { return s.seed(n, owner, true) }

func (s *Server) seed(n int, owner string, alert bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := s.seedReport()
	ids := make([]string, 0, n)
	prefix := "Seed task"
	if alert {
		prefix = "Seed alert"
	}
	for i := 0; i < n; i++ {
		id, err := s.hookCreateTask(rep, fmt.Sprintf("%s %d", prefix, len(s.st.tasks)+1), owner, alert)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// seedReport returns the id of the "Seed" report in the "Seed" category,
// creating both on first use.
func (s *Server) seedReport() string {
	var catID string
	for _, c := range s.st.categories {
		if c.Name == "Seed" {
			catID = c.Id
		}
	}
	if catID == "" {
		cat := &Category{Id: s.st.remember(newID()), Name: "Seed"}
		s.st.categories[cat.Id] = cat
		catID = cat.Id
	}
	for _, r := range s.st.reports {
		if r.categoryID == catID && r.name == "Seed" {
			return r.id
		}
	}
	admin := s.userByName("admin")
	return s.newReport("Seed", "Report used by seeded tasks and alerts", catID, ".trdp", admin.Id, []byte("PK seed")).id
}

// Lookup tells which resource family id belongs to: "reports",
// "categories", "connections", "tasks" or "alerts" (the webhook filter
// names), and false when no such resource exists.
func (s *Server) Lookup(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = strings.ToLower(id)
	switch {
	case s.st.reports[id] != nil:
		return "reports", true
	case s.st.categories[id] != nil:
		return "categories", true
	case s.st.connections[id] != nil:
		return "connections", true
	case s.st.tasks[id] != nil && s.st.tasks[id].alert:
		return "alerts", true
	case s.st.tasks[id] != nil:
		return "tasks", true
	}
	return "", false
}

// TaskIDs returns the ids of all scheduled tasks (alert false) or data
// alerts (alert true), oldest first.
func (s *Server) TaskIDs(alert bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, t := range s.sortedTasks(alert) {
		out = append(out, t.Id)
	}
	return out
}

// seedSamples adds demo content owned by admin.
func (s *Server) seedSamples() {
	admin := s.userByName("admin")
	cat := &Category{Id: s.st.remember(newID()), Name: "Samples"}
	s.st.categories[cat.Id] = cat
	r := s.newReport("Dashboard", "Sales dashboard", cat.Id, ".trdp", admin.Id, []byte("PK sample dashboard"))
	s.newReport("Invoice", "Invoice with parameters", cat.Id, ".trdp", admin.Id, []byte("PK sample invoice"))
	d := &DataConnection{Id: s.st.remember(newID()), Name: "AdventureWorks", Description: "Sample database",
		Provider: "System.Data.SqlClient", ConnectionString: "Data Source=(local);Initial Catalog=AdventureWorks;Integrated Security=SSPI"}
	s.st.connections[d.Id] = d
	_, _ = s.hookCreateTask(r.id, "Daily dashboard", "admin", false)
	_, _ = s.hookCreateTask(r.id, "Sales over 1000", "admin", true)
}
