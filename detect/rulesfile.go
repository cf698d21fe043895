package detect

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rswebhooks/rswebhooks"
)

// FormatSuggestions writes rules as a --rules YAML file (LoadRules reads it
// back), each rule's Note as a comment above it.
func FormatSuggestions(rules []rswebhooks.SuggestedRule) string {
	list := &yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range rules {
		m := &yaml.Node{Kind: yaml.MappingNode, HeadComment: wrapComment(r.Note)}
		add := func(k, v string) {
			if v == "" {
				return
			}
			m.Content = append(m.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Value: v})
		}
		add("method", r.Method)
		add("path", r.Path)
		add("filter", r.Filter)
		add("event", r.Event)
		add("id", r.ID)
		add("apiVersion", r.APIVersion)
		list.Content = append(list.Content, m)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "rules"}, list,
	}}}}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		// Only scalars and mappings of strings: encoding cannot fail.
		panic(fmt.Sprintf("detect: format rules: %v", err))
	}
	_ = enc.Close()
	return b.String()
}

// wrapComment breaks a note into comment lines of about 76 characters.
func wrapComment(s string) string {
	if s == "" {
		return ""
	}
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > 76 {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	lines = append(lines, line)
	return strings.Join(lines, "\n")
}

// SuggestedRuleOf converts a suggestion to a Rule (for Validate and the
// matcher).
func SuggestedRuleOf(s rswebhooks.SuggestedRule) (Rule, error) {
	b := FormatSuggestions([]rswebhooks.SuggestedRule{s})
	rs, err := ParseRules([]byte(b))
	if err != nil {
		return Rule{}, err
	}
	return rs[0], nil
}

// Finding kinds of CheckRules.
const (
	// FindingOverride: the rule has the method and template of a built-in
	// rule and replaces it.
	FindingOverride = "override"
	// FindingShadow: the rule takes calls a built-in rule matched before.
	FindingShadow = "shadow"
	// FindingUnreachable: a more specific rule wins for the rule's own
	// routes, so it never matches.
	FindingUnreachable = "unreachable"
)

// Finding is one conflict CheckRules reports.
type Finding struct {
	Kind    string
	Rule    Rule // the operator's rule
	Message string
}

// CheckRules reports how operator rules (as LoadRules returns them) would
// change the built-in table when merged with MergeRules: rules that replace
// a built-in rule, rules that take calls a built-in rule matched (tried
// with an example path per template: parameters filled in, each rule's own
// example and each built-in rule's), and rules that never match because a
// more specific rule wins. prefix is --upstream's virtual directory ("" for
// the site root). The rules must be valid.
func CheckRules(prefix string, extra []Rule) ([]Finding, error) {
	builtin := BuiltinRules()
	before, err := newMatcher(prefix, "built-in rules", builtin)
	if err != nil {
		return nil, err
	}
	after, err := newMatcher(prefix, "merged rules", MergeRules(builtin, extra))
	if err != nil {
		return nil, err
	}
	byKey := map[string]Rule{}
	for _, r := range builtin {
		byKey[ruleKey(r)] = r
	}
	mine := map[string]Rule{}
	for _, r := range extra {
		mine[ruleKey(r)] = r
	}
	var out []Finding
	for _, r := range extra {
		k := ruleKey(r)
		if b, ok := byKey[k]; ok {
			out = append(out, Finding{FindingOverride, r, fmt.Sprintf("%s replaces the built-in rule %s (%s)", r, b, describe(b))})
		}
		for _, m := range sampleMethods(r.Method) {
			p := samplePath(prefix, r.Path)
			got, ok := after.lookup(m, p)
			if !ok || ruleKey(got.rule.Rule) != k {
				winner := "no rule"
				if ok {
					winner = "rule " + got.rule.Rule.String()
				}
				out = append(out, Finding{FindingUnreachable, r, fmt.Sprintf("%s never matches: for %s %s, %s is more specific", r, m, p, winner)})
				break
			}
			if was, ok := before.lookup(m, p); ok && ruleKey(was.rule.Rule) != k {
				out = append(out, Finding{FindingShadow, r, fmt.Sprintf("%s takes %s %s from the built-in rule %s (%s)", r, m, p, was.rule.Rule, describe(was.rule.Rule))})
				break
			}
		}
	}
	for _, b := range builtin {
		if _, replaced := mine[ruleKey(b)]; replaced {
			continue
		}
		for _, m := range sampleMethods(b.Method) {
			p := samplePath(prefix, b.Path)
			got, ok := after.lookup(m, p)
			if !ok {
				continue
			}
			if r, isMine := mine[ruleKey(got.rule.Rule)]; isMine {
				out = append(out, Finding{FindingShadow, r, fmt.Sprintf("%s takes %s %s from the built-in rule %s (%s)", r, m, p, b, describe(b))})
				break
			}
		}
	}
	return out, nil
}

func describe(r Rule) string {
	if r.Ignore() {
		return "ignored"
	}
	return fmt.Sprintf("%s %s, id %s", r.Filter, r.Event, r.ID)
}

func sampleMethods(m string) []string {
	if m == MethodAny {
		return []string{"POST", "PUT", "PATCH", "DELETE"}
	}
	return []string{m}
}

// samplePath fills a template's parameters with example values.
func samplePath(prefix, tmpl string) string {
	segs := strings.Split(strings.TrimPrefix(tmpl, "/"), "/")
	for i, s := range segs {
		if p := paramRe.FindStringSubmatch(s); p != nil {
			segs[i] = fmt.Sprintf("0a1b2c3d4e%d", i)
		}
	}
	return strings.TrimSuffix(prefix, "/") + "/" + strings.Join(segs, "/")
}
