package detect

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rswebhooks/rswebhooks"
)

// LoadRules reads operator rules from a YAML file:
//
//	rules:
//	  - method: POST                 # POST, PUT, PATCH, DELETE; * for ignore rules
//	    path: api/reportserver/v2/reports/{reportId}/copy
//	    filter: reports              # reports, categories, connections, tasks, alerts
//	    event: Created               # Created, Updated, Deleted, Executed or ignore
//	    id: response                 # path:NAME, body, response, location (none for ignore)
//	    apiVersion: v2               # optional
//
// Method, filter and event are case-insensitive and returned in canonical
// form. Every error names the file, the line and the problem. The rules are
// meant for MergeRules(BuiltinRules(), rules).
func LoadRules(path string) ([]Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err // names the file already
	}
	rules, err := ParseRules(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, nil
}

// ParseRules is LoadRules on bytes; errors start with "line N:".
func ParseRules(b []byte) ([]Rule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, syntaxErr(b, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errors.New("line 1: empty file: want a mapping with a rules list")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lineErr(root, "want a mapping with a rules list, got %s", kindName(root))
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "rules" {
			return nil, lineErr(k, "unknown field %q (want rules)", k.Value)
		}
		list = v
	}
	if list == nil {
		return nil, lineErr(root, "missing field rules")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, lineErr(list, "rules: want a list, got %s", kindName(list))
	}
	seen := map[string]int{}
	out := make([]Rule, 0, len(list.Content))
	for i, n := range list.Content {
		r, err := parseRule(n)
		if err != nil {
			return nil, err
		}
		k := ruleKey(r)
		if prev, dup := seen[k]; dup {
			return nil, lineErr(n, "rule %d: %s repeats the method and template of the rule on line %d", i+1, r, prev)
		}
		seen[k] = n.Line
		out = append(out, r)
	}
	return out, nil
}

var ruleFields = "method, path, filter, event, id, apiVersion"

func parseRule(n *yaml.Node) (Rule, error) {
	var r Rule
	if n.Kind != yaml.MappingNode {
		return r, lineErr(n, "want a mapping with %s, got %s", ruleFields, kindName(n))
	}
	lines := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return r, lineErr(v, "%s: want a plain value, got %s", k.Value, kindName(v))
		}
		if prev := lines[k.Value]; prev != nil {
			return r, lineErr(k, "%s given twice in one rule (first on line %d)", k.Value, prev.Line)
		}
		val := strings.TrimSpace(v.Value)
		switch k.Value {
		case "method":
			r.Method = strings.ToUpper(val)
		case "path":
			r.Path = val
		case "filter":
			r.Filter = canonical(val, rswebhooks.Filters())
		case "event":
			r.Event = canonical(val, append(rswebhooks.EventTypes(), EventIgnore))
		case "id":
			if len(val) > 5 && strings.EqualFold(val[:5], "path:") {
				r.ID = IDPath(strings.TrimSpace(val[5:]))
			} else if strings.EqualFold(val, "none") {
				r.ID = IDNone
			} else {
				r.ID = IDSource(strings.ToLower(val))
			}
		case "apiVersion":
			r.APIVersion = strings.ToLower(val)
		default:
			return r, lineErr(k, "unknown field %q (want %s)", k.Value, ruleFields)
		}
		lines[k.Value] = v
	}
	for _, f := range []string{"method", "path", "event"} {
		if lines[f] == nil {
			return r, lineErr(n, "missing field %s", f)
		}
	}
	if err := r.Validate(); err != nil {
		// Point at the line of the offending field.
		field, _, _ := strings.Cut(err.Error(), ":")
		at := n
		if v := lines[field]; v != nil {
			at = v
		}
		return r, lineErr(at, "%v", err)
	}
	return r, nil
}

// maxScanLines bounds the line search of syntaxErr (rules files are small).
const maxScanLines = 2000

// syntaxErr turns a yaml syntax error into "line N: YAML syntax: …" where N
// is the first line at which the file stops parsing. yaml.v3 reports the
// line where the enclosing block started (often "line 1" for a bad
// indentation deep inside the rules list), which sends operators to the
// wrong place; parsing growing prefixes of the file finds the real one.
func syntaxErr(b []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, found := strings.Cut(rest, ": "); found {
			msg = after
		}
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) <= maxScanLines {
		for k := 1; k <= len(lines); k++ {
			var n yaml.Node
			if yaml.Unmarshal(bytes.Join(lines[:k], nil), &n) != nil {
				return fmt.Errorf("line %d: YAML syntax: %s", k, msg)
			}
		}
	}
	return fmt.Errorf("YAML syntax: %w", err)
}

func canonical(v string, set []string) string {
	for _, s := range set {
		if strings.EqualFold(v, s) {
			return s
		}
	}
	return v
}

func lineErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}
