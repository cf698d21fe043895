package detect

import (
	"strings"
	"testing"
)

func mustMatcher(t testing.TB, prefix string, rules []Rule) *matcher {
	t.Helper()
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			t.Fatalf("rule %d (%s): %v", i, r, err)
		}
	}
	m, err := newMatcher(prefix, "rules", rules)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMatchBuiltin(t *testing.T) {
	m := mustMatcher(t, "", BuiltinRules())
	tests := []struct {
		method, path string
		want         string // "METHOD template", "" for no match
		params       map[string]string
	}{
		{"POST", "/api/reportserver/v2/reports", "POST api/reportserver/v2/reports", nil},
		{"POST", "/API/ReportServer/V2/Reports", "POST api/reportserver/v2/reports", nil},
		{"POST", "/api/reportserver/v2/reports/", "POST api/reportserver/v2/reports", nil},
		{"POST", "api/reportserver/v2/reports", "POST api/reportserver/v2/reports", nil},
		{"POST", "/api/reportserver/v2/reports//", "POST api/reportserver/v2/reports", nil},
		{"GET", "/api/reportserver/v2/reports", "", nil},
		{"PUT", "/api/reportserver/reports/abc-1", "PUT api/reportserver/reports/{reportId}", map[string]string{"reportId": "abc-1"}},
		{"PUT", "/api/reportserver/v1/reports/abc-1", "PUT api/reportserver/v1/reports/{reportId}", map[string]string{"reportId": "abc-1"}},
		{"PUT", "/api/reportserver/v2/reports", "PUT api/reportserver/v2/reports", nil},
		{"PUT", "/api/reportserver/v2/reports/abc", "", nil},
		{"DELETE", "/api/reportserver/v2/reports/r1", "DELETE api/reportserver/v2/reports/{reportId}", map[string]string{"reportId": "r1"}},
		{"DELETE", "/api/reportserver/v2/reports/r1/rev2", "DELETE api/reportserver/v2/reports/{reportId}/{revisionId}", map[string]string{"reportId": "r1", "revisionId": "rev2"}},
		// A literal beats a parameter at the same position.
		{"DELETE", "/api/reportserver/v2/reports/r1/lock", "DELETE api/reportserver/v2/reports/{reportId}/lock", map[string]string{"reportId": "r1"}},
		{"DELETE", "/api/reportserver/v2/reports/r1/UNLOCK/", "DELETE api/reportserver/v2/reports/{reportId}/unlock", nil},
		{"DELETE", "/api/reportserver/v2/reports/r1/favorite", "DELETE api/reportserver/v2/reports/{reportId}/favorite", nil},
		{"DELETE", "/api/reportserver/v2/reports/r1/revisions/x9", "DELETE api/reportserver/v2/reports/{reportId}/revisions/{revisionId}", map[string]string{"revisionId": "x9"}},
		// Escapes are decoded before splitting, as IIS does: %2F is a slash.
		{"DELETE", "/api/reportserver/v2/categories/a%2Fb", "", nil},
		{"DELETE", "/api/reportserver/v2/categories%2Fc1", "DELETE api/reportserver/v2/categories/{categoryId}", map[string]string{"categoryId": "c1"}},
		{"POST", "/api/reportserver/v2/categories%2F", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api/reportserver/v2/categories%5C", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api/reportserver/v2/%u0063ategories", "POST api/reportserver/v2/categories", nil},
		// IIS path rules: dot segments, doubled slashes, backslashes,
		// trailing dots and spaces.
		{"POST", "/api/reportserver/v2/x/../categories", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api/reportserver/./v2/categories", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api/reportserver/v2/x/%2E%2E/categories", "POST api/reportserver/v2/categories", nil},
		{"POST", "//api//reportserver//v2//categories", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api\\reportserver\\v2\\categories", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api/reportserver/v2/categories.", "POST api/reportserver/v2/categories", nil},
		{"POST", "/api/reportserver/v2/categories..%20", "POST api/reportserver/v2/categories", nil},
		{"DELETE", "/api/reportserver/v2/categories/c1.", "DELETE api/reportserver/v2/categories/{categoryId}", map[string]string{"categoryId": "c1"}},
		{"DELETE", "/api/reportserver/v2/categories/caf%C3%A9%20x", "DELETE api/reportserver/v2/categories/{categoryId}", map[string]string{"categoryId": "café x"}},
		{"POST", "/api/report%73erver/v2/report%73", "POST api/reportserver/v2/reports", nil},
		{"DELETE", "/api/reportserver/v2/categories/%zz", "", nil},
		// Optional trailing parameter.
		{"DELETE", "/api/reportserver/v2/executions/scheduledtasks/t1", "DELETE api/reportserver/v2/executions/scheduledtasks/{scheduledTaskId}/{executionId?}", map[string]string{"scheduledTaskId": "t1"}},
		{"DELETE", "/api/reportserver/v2/executions/scheduledtasks/t1/e2", "DELETE api/reportserver/v2/executions/scheduledtasks/{scheduledTaskId}/{executionId?}", map[string]string{"scheduledTaskId": "t1", "executionId": "e2"}},
		{"POST", "/api/reportserver/v2/executions/scheduledtasks/t1", "POST api/reportserver/v2/executions/scheduledtasks/{scheduledTaskId}", map[string]string{"scheduledTaskId": "t1"}},
		// Catch-all and any-method ignores.
		{"POST", "/api/reports/clients", "* api/reports/{rest*}", map[string]string{"rest": "clients"}},
		{"DELETE", "/api/reports/clients/c1/instances/i2", "* api/reports/{rest*}", map[string]string{"rest": "clients/c1/instances/i2"}},
		{"POST", "/api/reports", "", nil},
		{"PUT", "/api/reportserver/v2/users/u1/roles", "* api/reportserver/v2/users/{rest*}", nil},
		{"POST", "/api/reportserver/v3/users", "* api/reportserver/v3/users", nil},
		{"POST", "/Token", "POST Token", nil},
		{"POST", "/token/", "POST Token", nil},
		{"GET", "/Token", "", nil},
		{"POST", "/api/reportserver/v3/data-alerts/a1/execute", "POST api/reportserver/v3/data-alerts/{dataAlertId}/execute", map[string]string{"dataAlertId": "a1"}},
		{"PUT", "/api/reportserver/v3/data-connections/c1", "PUT api/reportserver/v3/data-connections/{dataConnectionId}", nil},
		{"PUT", "/api/reportserver/v3/dataconnections/c1", "", nil},
		{"POST", "/api/reportserver/v9/reports", "", nil},
		{"POST", "/", "", nil},
		{"POST", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got, ok := m.lookup(tt.method, tt.path)
			if tt.want == "" {
				if ok {
					t.Fatalf("matched %s, want no match", got.rule.Rule)
				}
				return
			}
			if !ok {
				t.Fatalf("no match, want %s", tt.want)
			}
			if s := got.rule.Rule.String(); s != tt.want {
				t.Fatalf("matched %s, want %s", s, tt.want)
			}
			for k, v := range tt.params {
				if p, ok := got.param(k); !ok || p != v {
					t.Errorf("param %s = %q (%v), want %q", k, p, ok, v)
				}
			}
		})
	}
}

func TestMatchPrefix(t *testing.T) {
	for _, prefix := range []string{"/reporting", "reporting/", "/Reporting/"} {
		m := mustMatcher(t, prefix, BuiltinRules())
		if _, ok := m.lookup("POST", "/api/reportserver/v2/reports"); ok {
			t.Errorf("prefix %q: a path outside the virtual directory matched", prefix)
		}
		got, ok := m.lookup("DELETE", "/REPORTING/api/reportserver/v3/categories/c1/")
		if !ok {
			t.Fatalf("prefix %q: no match below the virtual directory", prefix)
		}
		if id, _ := got.param("categoryId"); id != "c1" {
			t.Errorf("prefix %q: categoryId = %q, want c1", prefix, id)
		}
		if _, ok := m.lookup("POST", "/reporting/Token"); !ok {
			t.Errorf("prefix %q: /reporting/Token did not match the token ignore rule", prefix)
		}
	}
	// A multi-segment prefix.
	m := mustMatcher(t, "/a/b", BuiltinRules())
	if _, ok := m.lookup("POST", "/a/b/api/reportserver/categories"); !ok {
		t.Error("prefix /a/b: no match")
	}
	if _, ok := m.lookup("POST", "/a/api/reportserver/categories"); ok {
		t.Error("prefix /a/b: /a/... matched")
	}
}

func TestMatchSpecificity(t *testing.T) {
	rules := []Rule{
		{Method: "POST", Path: "x/{a}/z", Filter: "reports", Event: "Updated", ID: IDPath("a")},
		{Method: "POST", Path: "x/y/{b}", Filter: "reports", Event: "Deleted", ID: IDPath("b")},
		{Method: "POST", Path: "x/{rest*}", Event: EventIgnore},
		{Method: "PUT", Path: "x/y/q", Filter: "reports", Event: "Created", ID: IDBody},
		{Method: MethodAny, Path: "x/y/q", Event: EventIgnore},
	}
	m := mustMatcher(t, "", rules)
	tests := []struct{ method, path, want string }{
		{"POST", "/x/y/z", "POST x/y/{b}"}, // literal y beats {a} at segment 2
		{"POST", "/x/k/z", "POST x/{a}/z"},
		{"POST", "/x/k/k", "POST x/{rest*}"}, // backtracks from {a}
		{"POST", "/x/k", "POST x/{rest*}"},
		{"PUT", "/x/y/q", "PUT x/y/q"}, // exact method beats *
		{"DELETE", "/x/y/q", "* x/y/q"},
		{"PUT", "/x/y/z", ""},
	}
	for _, tt := range tests {
		got, ok := m.lookup(tt.method, tt.path)
		switch {
		case tt.want == "" && ok:
			t.Errorf("%s %s matched %s, want none", tt.method, tt.path, got.rule.Rule)
		case tt.want != "" && (!ok || got.rule.Rule.String() != tt.want):
			t.Errorf("%s %s matched %v (%v), want %s", tt.method, tt.path, got.rule, ok, tt.want)
		}
	}
}

func TestMatcherConflicts(t *testing.T) {
	_, err := newMatcher("", "rules", []Rule{
		{Method: "DELETE", Path: "r/{a}", Filter: "reports", Event: "Deleted", ID: IDPath("a")},
		{Method: "DELETE", Path: "R/{b}", Filter: "reports", Event: "Deleted", ID: IDPath("b")},
	})
	if err == nil || !strings.Contains(err.Error(), "conflicts with rule DELETE r/{a}") {
		t.Fatalf("err = %v, want a conflict naming the first rule", err)
	}
	// The optional form without its segment collides with a shorter rule.
	_, err = newMatcher("", "rules", []Rule{
		{Method: "DELETE", Path: "r/{a}", Filter: "reports", Event: "Deleted", ID: IDPath("a")},
		{Method: "DELETE", Path: "r/{a}/{b?}", Event: EventIgnore},
	})
	if err == nil {
		t.Fatal("optional parameter collision not reported")
	}
}

func TestBuiltinRulesValid(t *testing.T) {
	rules := BuiltinRules()
	seen := map[string]bool{}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			t.Errorf("rule %d (%s): %v", i, r, err)
		}
		if seen[ruleKey(r)] {
			t.Errorf("rule %d (%s) repeats a method and template", i, r)
		}
		seen[ruleKey(r)] = true
	}
	// Every filter has Created, Updated, Deleted in v1, v2 and v3; tasks
	// and alerts have Executed.
	type key struct{ filter, event, version string }
	have := map[key]bool{}
	for _, r := range rules {
		have[key{r.Filter, r.Event, r.APIVersion}] = true
	}
	for _, f := range []string{"reports", "categories", "connections", "tasks", "alerts"} {
		for _, v := range []string{"v1", "v2", "v3"} {
			for _, e := range []string{"Created", "Updated", "Deleted"} {
				if !have[key{f, e, v}] {
					t.Errorf("no %s %s rule in %s", f, e, v)
				}
			}
			if (f == "tasks" || f == "alerts") && !have[key{f, "Executed", v}] {
				t.Errorf("no %s Executed rule in %s", f, v)
			}
		}
	}
	// BuiltinRules returns a fresh slice each time.
	rules[0].Method = "PATCH"
	if BuiltinRules()[0].Method == "PATCH" {
		t.Error("BuiltinRules shares its backing array")
	}
}

func TestRuleValidate(t *testing.T) {
	ok := Rule{Method: "POST", Path: "a/{id}", Filter: "reports", Event: "Created", ID: IDPath("id")}
	tests := []struct {
		name string
		edit func(*Rule)
		want string
	}{
		{"valid", func(*Rule) {}, ""},
		{"method", func(r *Rule) { r.Method = "GET" }, "method: \"GET\""},
		{"lower method", func(r *Rule) { r.Method = "post" }, "method:"},
		{"any on event", func(r *Rule) { r.Method = "*" }, "method: \"*\" is allowed only on ignore rules"},
		{"empty path", func(r *Rule) { r.Path = "" }, "path: empty template"},
		{"trailing slash", func(r *Rule) { r.Path = "a/{id}/" }, "path: template \"a/{id}/\" ends with a slash"},
		{"empty segment", func(r *Rule) { r.Path = "a//{id}" }, "empty segment"},
		{"bad param", func(r *Rule) { r.Path = "a/{i-d}" }, "neither a literal nor"},
		{"brace literal", func(r *Rule) { r.Path = "a/x{id}" }, "neither a literal nor"},
		{"query char", func(r *Rule) { r.Path = "a/b?c/{id}" }, "not allowed"},
		{"optional middle", func(r *Rule) { r.Path = "a/{x?}/{id}" }, "must be the last segment"},
		{"dup param", func(r *Rule) { r.Path = "a/{id}/{id}" }, "appears twice"},
		{"event", func(r *Rule) { r.Event = "Renamed" }, "event: \"Renamed\" is not one of"},
		{"filter", func(r *Rule) { r.Filter = "report" }, "filter: \"report\" is not one of"},
		{"no filter", func(r *Rule) { r.Filter = "" }, "filter: required"},
		{"no id", func(r *Rule) { r.ID = IDNone }, "id: required"},
		{"bad id", func(r *Rule) { r.ID = "header" }, "id: \"header\" is not one of"},
		{"unknown param", func(r *Rule) { r.ID = IDPath("nope") }, "names no {nope} parameter"},
		{"optional id", func(r *Rule) { r.Path = "a/{id?}" }, "optional or catch-all"},
		{"ignore with id", func(r *Rule) { r.Event = EventIgnore }, "id: ignore rules take no id source"},
		{"version", func(r *Rule) { r.APIVersion = "2" }, "apiVersion: \"2\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMergeRules(t *testing.T) {
	base := BuiltinRules()
	extra := []Rule{
		// Overrides the built-in rule (other case, other parameter name).
		{Method: "DELETE", Path: "API/ReportServer/V2/Reports/{id}/LOCK", Filter: "reports", Event: "Updated", ID: IDPath("id"), APIVersion: "v2"},
		{Method: "POST", Path: "api/reportserver/v2/reports/{reportId}/copy", Filter: "reports", Event: "Created", ID: IDResponse, APIVersion: "v2"},
	}
	got := MergeRules(base, extra)
	if len(got) != len(base)+1 {
		t.Fatalf("len = %d, want %d (one override, one addition)", len(got), len(base)+1)
	}
	m := mustMatcher(t, "", got)
	mt, ok := m.lookup("DELETE", "/api/reportserver/v2/reports/r1/lock")
	if !ok || mt.rule.Event != "Updated" {
		t.Fatalf("override not applied: %+v %v", mt.rule, ok)
	}
	if id, _ := mt.param("id"); id != "r1" {
		t.Errorf("id = %q, want r1", id)
	}
	if _, ok := m.lookup("POST", "/api/reportserver/v2/reports/r1/copy"); !ok {
		t.Error("added rule does not match")
	}
	if BuiltinRules()[len(base)-1] != base[len(base)-1] || len(base) != len(BuiltinRules()) {
		t.Error("MergeRules modified its input")
	}
}
