package detect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadRulesExample(t *testing.T) {
	rules, err := LoadRules(filepath.Join("..", "deploy", "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Method: "POST", Path: "api/reportserver/v2/reports/{reportId}/copy", Filter: "reports", Event: "Created", ID: IDResponse, APIVersion: "v2"},
		{Method: "DELETE", Path: "api/reportserver/v2/reports/{reportId}/unlock", Filter: "reports", Event: "Updated", ID: IDPath("reportId"), APIVersion: "v2"},
		{Method: "POST", Path: "Manager/KeepAlive", Event: EventIgnore},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(rules), len(want))
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
	merged := MergeRules(BuiltinRules(), rules)
	if len(merged) != len(BuiltinRules())+2 {
		t.Errorf("merged %d rules, want built-in + 2 (the unlock rule overrides)", len(merged))
	}
	m := mustMatcher(t, "", merged)
	if mt, ok := m.lookup("DELETE", "/api/reportserver/v2/reports/r1/unlock"); !ok || mt.rule.Event != "Updated" {
		t.Errorf("unlock override not in effect: %+v", mt.rule)
	}
}

func TestParseRulesNormalises(t *testing.T) {
	rules, err := ParseRules([]byte(`rules:
  - {method: put, path: "/x/{Id}", filter: Reports, event: updated, id: PATH:Id, apiVersion: V2}
  - {method: "*", path: "y/{r*}", event: IGNORE, id: none}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Method: "PUT", Path: "/x/{Id}", Filter: "reports", Event: "Updated", ID: IDPath("Id"), APIVersion: "v2"},
		{Method: "*", Path: "y/{r*}", Event: EventIgnore},
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", ``, "line 1: empty file"},
		{"not a mapping", `- a`, "line 1: want a mapping"},
		{"unknown top", "rulez: []", `line 1: unknown field "rulez"`},
		{"rules not a list", "rules: x", "line 1: rules: want a list"},
		{"syntax", "rules: [", "line 1: YAML syntax: "},
		// yaml.v3 itself says "line 1" here: the error must name the line
		// that is wrong, not the start of the enclosing list.
		{"syntax bad indent", "rules:\n  - method: POST\n    path: api/x\n   filter: reports\n", "line 4: YAML syntax: did not find expected '-' indicator"},
		{"syntax second rule", "rules:\n  - method: POST\n    path: a\n    event: ignore\n  - method: PUT\n  path: x\n", "line 6: YAML syntax: "},
		{"syntax flow", "rules:\n  - method: POST\n    path: api/x\n    filter: [reports\n    event: Created\n", "line 4: YAML syntax: "},
		{"duplicate field", "rules:\n  - method: POST\n    path: a\n    path: b\n    event: ignore", "line 4: path given twice in one rule (first on line 3)"},
		{"rule not a mapping", "rules:\n  - x", `line 2: want a mapping with method`},
		{"unknown field", "rules:\n  - method: POST\n    path: a\n    event: ignore\n    filtr: reports", `line 5: unknown field "filtr"`},
		{"nested value", "rules:\n  - method: [POST]\n    path: a\n    event: ignore", "line 2: method: want a plain value"},
		{"missing path", "rules:\n  - method: POST\n    event: ignore", "line 2: missing field path"},
		{"bad method", "rules:\n  - path: a\n    event: ignore\n    method: GET", `line 4: method: "GET" is not one of`},
		{"bad filter", "rules:\n  - method: POST\n    path: a\n    filter: reprts\n    event: Created\n    id: response", `line 4: filter: "reprts" is not one of`},
		{"bad event", "rules:\n  - method: POST\n    path: a\n    filter: reports\n    event: Renamed\n    id: response", `line 5: event: "Renamed" is not one of Created, Updated, Deleted, Executed or ignore`},
		{"bad id", "rules:\n  - method: POST\n    path: a\n    filter: reports\n    event: Created\n    id: header", `line 6: id: "header" is not one of`},
		{"id param", "rules:\n  - method: POST\n    path: a/{b}\n    filter: reports\n    event: Created\n    id: path:c", `line 6: id: "path:c" names no {c} parameter`},
		{"template", "rules:\n  - method: POST\n    path: a/{b\n    event: ignore", `line 3: path: template "a/{b"`},
		{"duplicate", "rules:\n  - {method: POST, path: \"a/{x}\", event: ignore}\n  - {method: post, path: \"A/{y}\", event: ignore}", "line 3: rule 2: POST A/{y} repeats the method and template of the rule on line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadRulesFileErrors(t *testing.T) {
	if _, err := LoadRules(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("rules:\n  - {method: POST, path: a, event: nope}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadRules(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": line 2: event:") {
		t.Errorf("err = %v, want the file, line and field", err)
	}
}
