package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"
)

// Permission categories (PermissionCategory, integers on the v1/v2 wire; v3
// names them in the path).
const (
	CategoryReport         = 0
	CategoryCategory       = 1
	CategoryDataConnection = 2
	CategoryScheduledTask  = 3
	CategoryDataAlert      = 4
)

// categoryNames maps the v3 string form to the integer.
var categoryNames = []string{"Report", "Category", "DataConnection", "ScheduledTask", "DataAlert"}

// Access flags (AccessPermission).
const (
	AccessRead         = 1
	AccessModify       = 2
	AccessDelete       = 4
	AccessCreate       = 8
	AccessUnrestricted = 15
)

// Permission scopes (PermissionScope).
const (
	ScopeAnyReport              = 0
	ScopeSpecificReport         = 1
	ScopeReportsInCategory      = 2
	ScopeAnyCategory            = 3
	ScopeSpecificCategory       = 4
	ScopeAnyDataConnection      = 5
	ScopeSpecificDataConnection = 6
	ScopeAnyScheduledTask       = 7
	ScopeSpecificScheduledTask  = 8
	ScopeAnyDataAlert           = 9
	ScopeSpecificDataAlert      = 10
)

// scopeCategory maps each scope to its permission category.
func scopeCategory(scope int) int {
	switch scope {
	case ScopeAnyReport, ScopeSpecificReport, ScopeReportsInCategory:
		return CategoryReport
	case ScopeAnyCategory, ScopeSpecificCategory:
		return CategoryCategory
	case ScopeAnyDataConnection, ScopeSpecificDataConnection:
		return CategoryDataConnection
	case ScopeAnyScheduledTask, ScopeSpecificScheduledTask:
		return CategoryScheduledTask
	case ScopeAnyDataAlert, ScopeSpecificDataAlert:
		return CategoryDataAlert
	}
	return -1
}

// newID returns an 11-hex-character id like the v3 samples ("22ad8ead857").
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])[:11]
}

// newGUID returns a 32-hex-character id like user ids and webhook ids.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newToken returns an opaque bearer token.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---------------------------------------------------------------------------
// Wire types (PascalCase out; encoding/json matches field names
// case-insensitively on the way in, like Newtonsoft).

// User is the report server's User model.
type User struct {
	Id        string `json:"Id"`
	Username  string `json:"Username"`
	FirstName string `json:"FirstName"`
	LastName  string `json:"LastName"`
	Email     string `json:"Email"`
	Enabled   bool   `json:"Enabled"`
}

// UserRole is the report server's UserRole model.
type UserRole struct {
	Id           string   `json:"Id"`
	Name         string   `json:"Name"`
	Description  string   `json:"Description"`
	IsSystemRole bool     `json:"IsSystemRole"`
	UserIds      []string `json:"UserIds"`
}

// Permission is the report server's Permission model.
type Permission struct {
	Id                 string `json:"Id"`
	PermissionCategory int    `json:"PermissionCategory"`
	Access             int    `json:"Access"`
	ResourceId         string `json:"ResourceId"`
	Scope              int    `json:"Scope"`
}

// Category is the report server's Category model.
type Category struct {
	Id   string `json:"Id"`
	Name string `json:"Name"`
}

// DataConnection is the report server's DataConnection model.
type DataConnection struct {
	Id               string `json:"Id"`
	Name             string `json:"Name"`
	Description      string `json:"Description"`
	Provider         string `json:"Provider"`
	ConnectionString string `json:"ConnectionString"`
}

// ReportInfo is the report server's ReportInfo model.
type ReportInfo struct {
	Id                  string    `json:"Id"`
	CategoryId          string    `json:"CategoryId"`
	Description         string    `json:"Description"`
	Name                string    `json:"Name"`
	CreatedBy           string    `json:"CreatedBy"`
	LockedBy            string    `json:"LockedBy"`
	Extension           string    `json:"Extension"`
	IsDraft             bool      `json:"IsDraft"`
	IsFavorite          bool      `json:"IsFavorite"`
	LastRevisionId      string    `json:"LastRevisionId"`
	CreatedByName       string    `json:"CreatedByName"`
	LockedByName        string    `json:"LockedByName"`
	LastModifiedDate    string    `json:"LastModifiedDate"` // server-local time
	LastModifiedDateUtc time.Time `json:"LastModifiedDateUtc"`
	CanEdit             bool      `json:"CanEdit"`
	CanView             bool      `json:"CanView"`
}

// RevisionInfo describes one report revision in a revisions list. [U] The
// list model is not in the reference; these fields are a plausible guess.
type RevisionInfo struct {
	Id             string    `json:"Id"`
	ReportId       string    `json:"ReportId"`
	Comment        string    `json:"Comment"`
	CreatedBy      string    `json:"CreatedBy"`
	CreatedByName  string    `json:"CreatedByName"`
	DateCreatedUtc time.Time `json:"DateCreatedUtc"`
}

// ReportRevisionContent is GET reports/{id}/revisions/{revisionId}.
type ReportRevisionContent struct {
	Id      string `json:"Id"`
	Content []byte `json:"Content"`
}

// Shelve is GET reports/{id}/shelve.
type Shelve struct {
	Content   []byte `json:"Content"`
	Extension string `json:"Extension"`
}

// HttpFile is the v1/v2 upload model; only FileName and Buffer matter.
type HttpFile struct {
	Name      string `json:"Name"`
	FileName  string `json:"FileName"`
	MediaType string `json:"MediaType"`
	Buffer    []byte `json:"Buffer"`
}

// TaskReport is one report of a v2/v3 scheduled task or data alert.
type TaskReport struct {
	ReportId       string         `json:"ReportId"`
	DocumentFormat string         `json:"DocumentFormat"`
	Parameters     map[string]any `json:"Parameters"`
}

// MailTemplate is a v2/v3 mail template.
type MailTemplate struct {
	Subject string `json:"Subject"`
	Body    string `json:"Body"`
}

// AlertRule is a data-alert rule.
type AlertRule struct {
	Index        int           `json:"Index"`
	DataItemName string        `json:"DataItemName"`
	Clauses      []AlertClause `json:"Clauses"`
}

// AlertClause is one condition of an AlertRule.
type AlertClause struct {
	Column   string `json:"Column"`
	Operator string `json:"Operator"`
	Value    any    `json:"Value"`
}

// ScheduledTask is the v2/v3 task model.
type ScheduledTask struct {
	Id                        string          `json:"Id"`
	UserId                    string          `json:"UserId"`
	Name                      string          `json:"Name"`
	Enabled                   bool            `json:"Enabled"`
	Reports                   []TaskReport    `json:"Reports"`
	StartDate                 json.RawMessage `json:"StartDate"`
	StartDateUtc              json.RawMessage `json:"StartDateUtc"`
	BaseUtcOffset             float64         `json:"BaseUtcOffset"`
	RecurrenceRule            json.RawMessage `json:"RecurrenceRule"`
	LocalUsersMailTemplate    *MailTemplate   `json:"LocalUsersMailTemplate"`
	ExternalUsersMailTemplate *MailTemplate   `json:"ExternalUsersMailTemplate"`
	ExternalEmails            []string        `json:"ExternalEmails"`
	SubscriberIds             []string        `json:"SubscriberIds"`
}

// DataAlert is the v2/v3 alert model: a task plus rules.
type DataAlert struct {
	ScheduledTask
	Rules []AlertRule `json:"Rules"`
}

// ScheduledTaskV1 is the v1 task model (one report per task).
type ScheduledTaskV1 struct {
	Id             string          `json:"Id"`
	UserId         string          `json:"UserId"`
	Name           string          `json:"Name"`
	Enabled        bool            `json:"Enabled"`
	ReportId       string          `json:"ReportId"`
	DocumentFormat string          `json:"DocumentFormat"`
	Parameters     map[string]any  `json:"Parameters"`
	StartDate      json.RawMessage `json:"StartDate"`
	RecurrenceRule json.RawMessage `json:"RecurrenceRule"`
	MailSubject    string          `json:"MailSubject"`
	MailBody       string          `json:"MailBody"`
	ExternalEmails []string        `json:"ExternalEmails"`
	SubscriberIds  []string        `json:"SubscriberIds"`
}

// AlertRuleV1 is the v1 rule model (no Index).
type AlertRuleV1 struct {
	DataItemName string        `json:"DataItemName"`
	Clauses      []AlertClause `json:"Clauses"`
}

// DataAlertV1 is the v1 alert model.
type DataAlertV1 struct {
	ScheduledTaskV1
	Rules []AlertRuleV1 `json:"Rules"`
}

// Execution is the SchedulingExecution model.
type Execution struct {
	Id               string    `json:"Id"`
	DocumentIds      []string  `json:"DocumentIds"`
	AlertTriggered   bool      `json:"AlertTriggered"`
	ExecutionDate    string    `json:"ExecutionDate"` // obsolete, server-local time
	ExecutionDateUtc time.Time `json:"ExecutionDateUtc"`
}

// ExecutionDocument is the v3 execution document model.
type ExecutionDocument struct {
	Id             string    `json:"Id"`
	TaskId         string    `json:"TaskId"`
	DocumentName   string    `json:"DocumentName"`
	DocumentFormat string    `json:"DocumentFormat"`
	Data           []byte    `json:"Data"`
	MimeType       string    `json:"MimeType"`
	DateCreated    string    `json:"DateCreated"`
	DateCreatedUtc time.Time `json:"DateCreatedUtc"`
	ReportId       string    `json:"ReportId"`
	Error          *string   `json:"Error"`
}

// ---------------------------------------------------------------------------
// Internal state

type user struct {
	User
	password string
	roleIDs  []string
	disabled bool
}

type role struct {
	UserRole
	admin bool // System Administrator
}

type permission struct {
	Permission
	owner string // user or role id
}

type revision struct {
	id        string
	comment   string
	content   []byte
	createdBy string
	created   time.Time
}

type report struct {
	id, name, description, categoryID, createdBy, lockedBy, ext string
	isDraft                                                     bool
	revisions                                                   []*revision
	shelve                                                      []byte
	favorites                                                   map[string]bool
	modified                                                    time.Time
}

type task struct {
	alert bool
	ScheduledTask
	rules []AlertRule
}

type execution struct {
	Execution
	taskID string
}

type document struct {
	ExecutionDocument
	executionID string
	// size > 0: the content is DeterministicBytes(size), generated as it is
	// served and never held (Data stays nil).
	size int64
}

// length and content give the document's bytes, held or generated.
func (d *document) length() int64 {
	if d.size > 0 {
		return d.size
	}
	return int64(len(d.Data))
}

func (d *document) content() io.Reader {
	if d.size > 0 {
		return DeterministicBytes(d.size)
	}
	return bytes.NewReader(d.Data)
}

type token struct {
	userID  string
	issued  time.Time
	expires time.Time
}

type state struct {
	users       map[string]*user
	roles       map[string]*role
	perms       map[string]*permission
	tokens      map[string]*token
	categories  map[string]*Category
	connections map[string]*DataConnection
	reports     map[string]*report
	tasks       map[string]*task // tasks and alerts
	executions  map[string][]*execution
	documents   map[string]*document
	docSizes    map[string]int64           // task or alert id → size of generated documents
	clients     map[string]map[string]bool // rendering clients → instances
	order       map[string]int             // creation order of every id
	seq         int
}

func newState() *state {
	return &state{
		users:       map[string]*user{},
		roles:       map[string]*role{},
		perms:       map[string]*permission{},
		tokens:      map[string]*token{},
		categories:  map[string]*Category{},
		connections: map[string]*DataConnection{},
		reports:     map[string]*report{},
		tasks:       map[string]*task{},
		executions:  map[string][]*execution{},
		documents:   map[string]*document{},
		docSizes:    map[string]int64{},
		clients:     map[string]map[string]bool{},
		order:       map[string]int{},
	}
}

// remember records id's creation order so lists come out oldest first.
func (st *state) remember(id string) string {
	st.seq++
	st.order[id] = st.seq
	return id
}
