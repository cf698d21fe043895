package detect

import (
	"fmt"
	"net/url"
	"strings"
)

// matcher is the compiled rule table: a trie of path segments with, at each
// node, the rules that end there keyed by method. It is built once and only
// read afterwards, so it is safe for concurrent use.
type matcher struct {
	root *node
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
// are a conflict.
func newMatcher(prefix string, rules []Rule) (*matcher, error) {
	var pre []string
	for _, s := range strings.Split(strings.Trim(prefix, "/"), "/") {
		if s != "" {
			pre = append(pre, strings.ToLower(s))
		}
	}
	m := &matcher{root: &node{}}
	for i, r := range rules {
		if err := m.insert(pre, r); err != nil {
			return nil, fmt.Errorf("Rules[%d] (%s): %w", i, r, err)
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
// path. Literal segments compare case-insensitively; one trailing slash is
// tolerated; each segment is unescaped on its own, so an escaped slash stays
// inside its segment. A path that does not unescape matches nothing.
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

func splitPath(path string) ([]string, bool) {
	p := strings.TrimPrefix(path, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, true
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.IndexByte(s, '%') < 0 {
			continue
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
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
