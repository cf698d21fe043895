package detect

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/rswebhooks/rswebhooks"
)

// EventIgnore is the Event of a rule that matches a known non-event call
// (lock, favourite, rendering, tokens, users…): the call produces no event and
// is not counted as unmatched.
const EventIgnore = "ignore"

// MethodAny in Rule.Method matches every non-safe method. Only ignore rules
// may use it.
const MethodAny = "*"

// IDSource says where a rule finds the resource id.
//
//	"path:NAME"  the path parameter {NAME} of the template (see IDPath)
//	"body"       the request body's Id; falls back to the response's Id
//	"response"   the response: a bare JSON string (v1), an object's Id
//	             (v2/v3), then the Location header's last segment
//	"location"   the Location header's last segment, then the response body
//	""           none (ignore rules only)
type IDSource string

// ID sources other than path parameters.
const (
	IDNone     IDSource = ""
	IDBody     IDSource = "body"
	IDResponse IDSource = "response"
	IDLocation IDSource = "location"
)

// IDPath returns the IDSource that takes the id from the path parameter
// {param}.
func IDPath(param string) IDSource { return IDSource("path:" + param) }

// PathParam returns the parameter name of a "path:NAME" source.
func (s IDSource) PathParam() (string, bool) {
	name, ok := strings.CutPrefix(string(s), "path:")
	return name, ok
}

// Rule maps one route to an event, or marks it as ignored.
//
// Path is a template relative to the server root (and below Options.Prefix):
// literal segments match case-insensitively, {name} matches exactly one
// non-empty segment, {name?} as the last segment matches one segment or
// none, and {name*} as the last segment matches one or more segments. A
// leading slash is optional. When several rules match, the most specific
// one wins: at each segment, from the left, a literal beats {name}, which
// beats {name*}.
type Rule struct {
	Method     string   // POST, PUT, PATCH, DELETE; "*" (MethodAny) for ignore rules
	Path       string   // template, e.g. "api/reportserver/v2/reports/{reportId}"
	Filter     string   // filter name (rswebhooks.Filter*); optional for ignore rules
	Event      string   // rswebhooks.Event* or EventIgnore
	ID         IDSource // where the resource id comes from; IDNone for ignore rules
	APIVersion string   // v1, v2, v3 or empty
	// Inferred marks a rule for a route no published reference documents:
	// its shape is taken from public evidence (the manager's own calls),
	// not from the API reference. docs/events.md flags it.
	Inferred bool
}

// Ignore reports whether the rule marks a non-event call.
func (r Rule) Ignore() bool { return r.Event == EventIgnore }

func (r Rule) String() string {
	return r.Method + " " + r.Path
}

var (
	paramRe      = regexp.MustCompile(`^\{([A-Za-z_][A-Za-z0-9_]*)([?*]?)\}$`)
	apiVersionRe = regexp.MustCompile(`^v[0-9]{1,3}$`)
)

// Validate checks one rule. Errors name the field and the rule.
func (r Rule) Validate() error {
	switch r.Method {
	case "POST", "PUT", "PATCH", "DELETE":
	case MethodAny:
		if !r.Ignore() {
			return fmt.Errorf("method: %q is allowed only on ignore rules", MethodAny)
		}
	default:
		return fmt.Errorf("method: %q is not one of POST, PUT, PATCH, DELETE or * (upper case; safe methods never change anything)", r.Method)
	}
	params, err := parseTemplate(r.Path)
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	switch {
	case r.Ignore():
		if r.ID != IDNone {
			return fmt.Errorf("id: ignore rules take no id source, got %q", r.ID)
		}
	case validEvent(r.Event):
		if r.Filter == "" {
			return fmt.Errorf("filter: required for event %s (one of %s)", r.Event, strings.Join(rswebhooks.Filters(), ", "))
		}
		if err := validID(r.ID, params); err != nil {
			return fmt.Errorf("id: %w", err)
		}
	default:
		return fmt.Errorf("event: %q is not one of %s or %s", r.Event, strings.Join(rswebhooks.EventTypes(), ", "), EventIgnore)
	}
	if r.Filter != "" && !validFilter(r.Filter) {
		return fmt.Errorf("filter: %q is not one of %s", r.Filter, strings.Join(rswebhooks.Filters(), ", "))
	}
	if r.APIVersion != "" && !apiVersionRe.MatchString(r.APIVersion) {
		return fmt.Errorf("apiVersion: %q is not of the form v1, v2, v3", r.APIVersion)
	}
	return nil
}

func validEvent(e string) bool {
	for _, t := range rswebhooks.EventTypes() {
		if e == t {
			return true
		}
	}
	return false
}

func validFilter(f string) bool {
	for _, n := range rswebhooks.Filters() {
		if f == n {
			return true
		}
	}
	return false
}

// paramKind is the kind of a template parameter.
type paramKind byte

const (
	paramOne      paramKind = iota // {name}
	paramOptional                  // {name?}
	paramRest                      // {name*}
)

func validID(s IDSource, params map[string]paramKind) error {
	switch s {
	case IDBody, IDResponse, IDLocation:
		return nil
	case IDNone:
		return fmt.Errorf("required for event rules (path:NAME, body, response or location)")
	}
	name, ok := s.PathParam()
	if !ok {
		return fmt.Errorf("%q is not one of path:NAME, body, response, location", s)
	}
	kind, ok := params[name]
	if !ok {
		return fmt.Errorf("%q names no {%s} parameter of the path template", s, name)
	}
	if kind != paramOne {
		return fmt.Errorf("%q names an optional or catch-all parameter; the id needs a plain {%s}", s, name)
	}
	return nil
}

// parseTemplate checks a path template and returns its parameters.
func parseTemplate(tmpl string) (map[string]paramKind, error) {
	t := strings.TrimPrefix(tmpl, "/")
	if t == "" {
		return nil, fmt.Errorf("empty template")
	}
	if strings.HasSuffix(t, "/") {
		return nil, fmt.Errorf("template %q ends with a slash (trailing slashes are always tolerated; drop it)", tmpl)
	}
	segs := strings.Split(t, "/")
	params := map[string]paramKind{}
	for i, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("template %q has an empty segment", tmpl)
		}
		if !strings.ContainsAny(s, "{}") {
			if strings.ContainsAny(s, "?#%\\ \t") {
				return nil, fmt.Errorf("template %q: segment %q contains a character not allowed in a path segment", tmpl, s)
			}
			continue
		}
		m := paramRe.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("template %q: segment %q is neither a literal nor {name}, {name?}, {name*}", tmpl, s)
		}
		kind := paramOne
		switch m[2] {
		case "?":
			kind = paramOptional
		case "*":
			kind = paramRest
		}
		if kind != paramOne && i != len(segs)-1 {
			return nil, fmt.Errorf("template %q: %s must be the last segment", tmpl, s)
		}
		if _, dup := params[m[1]]; dup {
			return nil, fmt.Errorf("template %q: parameter {%s} appears twice", tmpl, m[1])
		}
		params[m[1]] = kind
	}
	return params, nil
}

// ruleKey identifies a rule for overriding: method plus the template with
// parameter names erased, case-folded.
func ruleKey(r Rule) string {
	segs := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
	for i, s := range segs {
		if m := paramRe.FindStringSubmatch(s); m != nil {
			segs[i] = "{" + m[2] + "}"
			continue
		}
		segs[i] = strings.ToLower(s)
	}
	return strings.ToUpper(r.Method) + " " + strings.Join(segs, "/")
}

// MergeRules returns base with extra applied: an extra rule replaces the base
// rule with the same method and template (compared case-insensitively,
// parameter names ignored), otherwise it is appended. Neither input is
// modified.
func MergeRules(base, extra []Rule) []Rule {
	out := append([]Rule(nil), base...)
	idx := make(map[string]int, len(out))
	for i, r := range out {
		idx[ruleKey(r)] = i
	}
	for _, r := range extra {
		k := ruleKey(r)
		if i, ok := idx[k]; ok {
			out[i] = r
			continue
		}
		idx[k] = len(out)
		out = append(out, r)
	}
	return out
}

// BuiltinRules returns the rule table for every documented mutating route of
// the report server's API: unversioned (= v1), v1, v2 and v3. The result is a
// fresh slice; callers may modify it.
func BuiltinRules() []Rule {
	var rs []Rule
	add := func(method, path, filter, event string, id IDSource, version string) {
		rs = append(rs, Rule{Method: method, Path: path, Filter: filter, Event: event, ID: id, APIVersion: version})
	}
	ignore := func(method, path, filter, version string) {
		add(method, path, filter, EventIgnore, IDNone, version)
	}
	const (
		rep  = rswebhooks.FilterReports
		cat  = rswebhooks.FilterCategories
		conn = rswebhooks.FilterConnections
		task = rswebhooks.FilterTasks
		alrt = rswebhooks.FilterAlerts
	)
	created, updated, deleted, executed := rswebhooks.EventCreated, rswebhooks.EventUpdated, rswebhooks.EventDeleted, rswebhooks.EventExecuted

	// Site root: tokens and sign-in are identity, not resources.
	ignore("POST", "Token", "", "")
	ignore("POST", "PersonalToken", "", "")
	ignore("POST", "refresh", "", "")
	ignore("POST", "signin-oidc", "", "")
	// The Reporting REST service behind previews and viewers: rendering only.
	ignore(MethodAny, "api/reports/{rest*}", "", "")
	// Webhook registrations (the server's own and ours) are not resource events.
	ignore(MethodAny, "api/webhooks/{rest*}", "", "")
	ignore("POST", "api/reportserver/customlogin", "", "v1")

	// v1 under both prefixes, then v2: the same resources with the
	// differences the reference marks (v2 PUT reports carries the id in the body).
	for _, g := range []struct{ prefix, version string }{
		{"api/reportserver/", "v1"},
		{"api/reportserver/v1/", "v1"},
		{"api/reportserver/v2/", "v2"},
	} {
		p, v := g.prefix, g.version
		add("POST", p+"reports", rep, created, IDResponse, v)
		if v == "v1" {
			add("PUT", p+"reports/{reportId}", rep, updated, IDPath("reportId"), v)
		} else {
			add("PUT", p+"reports", rep, updated, IDBody, v)
		}
		add("DELETE", p+"reports/{reportId}", rep, deleted, IDPath("reportId"), v)
		// DELETE reports/{reportId}/{revisionId} removes one revision: the
		// report still exists, so it is an update.
		add("DELETE", p+"reports/{reportId}/{revisionId}", rep, updated, IDPath("reportId"), v)
		add("POST", p+"reports/{reportId}/revisions", rep, updated, IDPath("reportId"), v)
		add("DELETE", p+"reports/{reportId}/revisions/{revisionId}", rep, updated, IDPath("reportId"), v)
		// "Publishes the specified report": a new revision.
		add("POST", p+"reports/{reportId}/publish", rep, updated, IDPath("reportId"), v)
		ignore("PUT", p+"reports/{reportId}/shelve", rep, v)
		ignore("DELETE", p+"reports/{reportId}/shelve", rep, v)
		ignore("PUT", p+"reports/{reportId}/favorite", rep, v)
		ignore("DELETE", p+"reports/{reportId}/favorite", rep, v)
		ignore("PUT", p+"reports/{reportId}/lock", rep, v)
		ignore("DELETE", p+"reports/{reportId}/lock", rep, v)
		ignore("DELETE", p+"reports/{reportId}/unlock", rep, v)

		for _, res := range []struct{ seg, filter, param string }{
			{"categories", cat, "categoryId"},
			{"dataconnections", conn, "dataConnectionId"},
			{"scheduledtasks", task, "scheduledTaskId"},
			{"dataalerts", alrt, "dataAlertId"},
		} {
			add("POST", p+res.seg, res.filter, created, IDResponse, v)
			add("PUT", p+res.seg, res.filter, updated, IDBody, v)
			add("DELETE", p+res.seg+"/{"+res.param+"}", res.filter, deleted, IDPath(res.param), v)
		}
		add("POST", p+"executions/scheduledtasks/{scheduledTaskId}", task, executed, IDPath("scheduledTaskId"), v)
		add("POST", p+"executions/dataalerts/{dataAlertId}", alrt, executed, IDPath("dataAlertId"), v)
		// Deleting execution history changes neither the task nor the alert.
		ignore("DELETE", p+"executions/scheduledtasks/{scheduledTaskId}/{executionId?}", task, v)
		ignore("DELETE", p+"executions/dataalerts/{dataAlertId}/{executionId?}", alrt, v)

		ignore("POST", p+"documents", "", v)
		ignore("POST", p+"logout", "", v)
		ignoreAccounts(ignore, p, v)
	}

	// v3 (Report Server for .NET): kebab-case resources, ids in the path.
	p, v := "api/reportserver/v3/", "v3"
	add("POST", p+"reports", rep, created, IDResponse, v)
	add("PUT", p+"reports/{reportId}", rep, updated, IDPath("reportId"), v)
	add("DELETE", p+"reports/{reportId}", rep, deleted, IDPath("reportId"), v)
	add("POST", p+"reports/{reportId}/revisions", rep, updated, IDPath("reportId"), v)
	add("POST", p+"reports/{reportId}/publish", rep, updated, IDPath("reportId"), v)
	for _, res := range []struct{ seg, filter, param string }{
		{"categories", cat, "categoryId"},
		{"data-connections", conn, "dataConnectionId"},
		{"scheduled-tasks", task, "scheduledTaskId"},
		{"data-alerts", alrt, "dataAlertId"},
	} {
		add("POST", p+res.seg, res.filter, created, IDResponse, v)
		add("PUT", p+res.seg+"/{"+res.param+"}", res.filter, updated, IDPath(res.param), v)
		add("DELETE", p+res.seg+"/{"+res.param+"}", res.filter, deleted, IDPath(res.param), v)
	}
	add("POST", p+"scheduled-tasks/{scheduledTaskId}/execute", task, executed, IDPath("scheduledTaskId"), v)
	add("POST", p+"data-alerts/{dataAlertId}/execute", alrt, executed, IDPath("dataAlertId"), v)
	ignore("DELETE", p+"scheduled-tasks/{scheduledTaskId}/executions/{executionId?}", task, v)
	ignore("DELETE", p+"data-alerts/{dataAlertId}/executions/{executionId?}", alrt, v)
	ignore("POST", p+"documents", "", v)
	ignore("POST", p+"logout", "", v)
	ignoreAccounts(ignore, p, v)

	// Routes outside the published reference, as public evidence shows the
	// manager (an ASP.NET MVC application) calling them.
	inferred := func(method, path, filter, event string, id IDSource, version string) {
		add(method, path, filter, event, id, version)
		rs[len(rs)-1].Inferred = true
	}
	// The manager's report upload: JSON {reportName, categoryName,
	// description, reportContent, extension}; the name is reportName.
	inferred("POST", "api/reportserver/report", rep, created, IDResponse, "v1")
	// The manager's category grid: a grid-style JSON body {Name, CanModify,
	// CanDelete, ReportsCount, …}; the answer is the grid's
	// {Data: [{Id, …}], Total} (or the bare object).
	inferred("POST", "Category/Create", cat, created, IDResponse, "")
	return rs
}

// ignoreAccounts adds the ignore rules for users, roles and permissions under
// one API prefix: none of them is a watched resource.
func ignoreAccounts(ignore func(method, path, filter, version string), p, v string) {
	for _, seg := range []string{"users", "userroles", "roles", "permissions"} {
		ignore(MethodAny, p+seg, "", v)
		ignore(MethodAny, p+seg+"/{rest*}", "", v)
	}
}
