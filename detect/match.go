package detect

import (
	"fmt"
	"strconv"
	"strings"
)

// matcher is the compiled rule table: a trie of path segments with, at each
// node, the rules that end there keyed by method. It is built once and only
// read afterwards, so it is safe for concurrent use.
type matcher struct {
	root *node
	pre  []string // the virtual directory's segments, lower-cased
}

type node struct {
	lits  []litEdge // literal children, lower-cased, unique
	param *node     // {name} (and {name?} when present)
	rest  *node     // {name*}: terminal only
	rules map[string]*compiled
}

type litEdge struct {
	lit  string
	next *node
}

// compiled is a rule plus the segment positions of its parameters.
type compiled struct {
	Rule
	params []paramPos
	// readBodies is false when the id comes from the path and the route is
	// not the resource's own URL (revisions, publish): the bodies there do
	// not describe the resource, so they are not parsed.
	readBodies bool
}

type paramPos struct {
	name string
	idx  int
	kind paramKind
}

// match is the result of a successful lookup.
type match struct {
	rule *compiled
	segs []string // unescaped path segments, prefix included
}

// param returns the value of the path parameter name. A {name*} parameter
// yields the remaining segments joined by "/".
func (m match) param(name string) (string, bool) {
	for _, p := range m.rule.params {
		if p.name != name {
			continue
		}
		if p.idx >= len(m.segs) {
			return "", false
		}
		if p.kind == paramRest {
			return strings.Join(m.segs[p.idx:], "/"), true
		}
		return m.segs[p.idx], true
	}
	return "", false
}

// newMatcher compiles rules below the virtual-directory prefix. The rules
// must be valid; two rules with the same method and the same template shape
// are a conflict. field names rules in errors ("Options.Rules").
func newMatcher(prefix, field string, rules []Rule) (*matcher, error) {
	var pre []string
	for _, s := range strings.Split(strings.Trim(prefix, "/"), "/") {
		if s != "" {
			pre = append(pre, strings.ToLower(s))
		}
	}
	m := &matcher{root: &node{}, pre: pre}
	for i, r := range rules {
		if err := m.insert(pre, r); err != nil {
			return nil, fmt.Errorf("%s[%d] (%s): %w", field, i, r, err)
		}
	}
	return m, nil
}

func (m *matcher) insert(pre []string, r Rule) error {
	segs := append(append([]string(nil), pre...), strings.Split(strings.TrimPrefix(r.Path, "/"), "/")...)
	c := &compiled{Rule: r}
	_, fromPath := r.ID.PathParam()
	c.readBodies = !fromPath || paramRe.MatchString(segs[len(segs)-1])
	n := m.root
	for i, s := range segs {
		p := paramRe.FindStringSubmatch(s)
		if p == nil {
			n = n.lit(strings.ToLower(s))
			continue
		}
		switch p[2] {
		case "":
			c.params = append(c.params, paramPos{name: p[1], idx: i, kind: paramOne})
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case "?":
			c.params = append(c.params, paramPos{name: p[1], idx: i, kind: paramOptional})
			if err := n.put(c); err != nil { // the form without the segment
				return err
			}
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case "*":
			c.params = append(c.params, paramPos{name: p[1], idx: i, kind: paramRest})
			if n.rest == nil {
				n.rest = &node{}
			}
			n = n.rest
		}
	}
	return n.put(c)
}

func (n *node) lit(s string) *node {
	for _, e := range n.lits {
		if e.lit == s {
			return e.next
		}
	}
	next := &node{}
	n.lits = append(n.lits, litEdge{lit: s, next: next})
	return next
}

func (n *node) put(c *compiled) error {
	if n.rules == nil {
		n.rules = map[string]*compiled{}
	}
	if old, ok := n.rules[c.Method]; ok {
		return fmt.Errorf("conflicts with rule %s (same method and template shape)", old.Rule)
	}
	n.rules[c.Method] = c
	return nil
}

func (n *node) terminal(method string) *compiled {
	if c, ok := n.rules[method]; ok {
		return c
	}
	return n.rules[MethodAny]
}

// lookup finds the most specific rule for method and an escaped request
// path, after normalising the path as IIS does before the report server
// routes it (see splitPath). Literal segments compare case-insensitively.
// A path that does not unescape matches nothing.
func (m *matcher) lookup(method, path string) (match, bool) {
	segs, ok := splitPath(path)
	if !ok {
		return match{}, false
	}
	c := m.root.find(segs, 0, method)
	if c == nil {
		return match{}, false
	}
	return match{rule: c, segs: segs}, true
}

// relative returns the segments of an escaped path below the virtual
// directory, as rule templates see them; false for a path outside it (or
// one that does not unescape).
func (m *matcher) relative(path string) ([]string, bool) {
	segs, ok := splitPath(path)
	if !ok || len(segs) < len(m.pre) {
		return nil, false
	}
	for i, p := range m.pre {
		if !strings.EqualFold(segs[i], p) {
			return nil, false
		}
	}
	return segs[len(m.pre):], true
}

// splitPath returns the segments the report server routes an escaped path
// by, applying the rules IIS (http.sys and the ASP.NET pipeline) applies
// before routing, so a call cannot reach a route while escaping its rule:
//
//  1. percent escapes are decoded once, %2F and %5C included (so
//     categories%2F is categories/), and %uXXXX too (http.sys accepts it);
//     an invalid escape matches nothing;
//  2. a backslash is a slash;
//  3. empty segments are dropped (// is /, and a trailing slash is ignored);
//  4. trailing dots and spaces of a segment are dropped (categories. is
//     categories, as Windows names are);
//  5. "." segments are dropped and ".." removes the segment before it (never
//     above the root).
//
// Case is ignored when comparing literals (find). What still differs from
// the server's reading is a successful mutation no rule matches, counted in
// rswebhooks_unmatched_mutations_total.
func splitPath(path string) ([]string, bool) {
	if strings.IndexByte(path, '%') >= 0 {
		var ok bool
		if path, ok = iisUnescape(path); !ok {
			return nil, false
		}
	}
	path = strings.ReplaceAll(path, "\\", "/")
	var segs []string
	for s := range strings.SplitSeq(path, "/") {
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ". ")
		}
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	return segs, true
}

// iisUnescape decodes %XX and %uXXXX escapes once; false on an invalid one.
func iisUnescape(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			if v, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
				b.WriteRune(rune(v))
				i += 5
				continue
			}
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

func (n *node) find(segs []string, i int, method string) *compiled {
	if i == len(segs) {
		return n.terminal(method)
	}
	s := segs[i]
	for _, e := range n.lits {
		if strings.EqualFold(e.lit, s) {
			if c := e.next.find(segs, i+1, method); c != nil {
				return c
			}
			break
		}
	}
	if s == "" {
		return nil
	}
	if n.param != nil {
		if c := n.param.find(segs, i+1, method); c != nil {
			return c
		}
	}
	if n.rest != nil {
		return n.rest.terminal(method)
	}
	return nil
}
