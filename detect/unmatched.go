package detect

import (
	"container/list"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rswebhooks/rswebhooks"
)

// DefaultUnmatchedSize is how many routes an Unmatched table keeps.
const DefaultUnmatchedSize = 256

// Bounds of one kept route: longer paths are counted (metric) but not kept.
const (
	maxUnmatchedSegments = 24
	maxUnmatchedPath     = 512
)

// Unmatched keeps the successful mutating calls no rule matched, grouped by
// method and path template (ids replaced by placeholders), with a count and
// the first and last time seen. It holds no bodies and no query strings. It
// is bounded: past its size, the least recently seen route is evicted. It
// lives in memory: it is a diagnostic for writing rules (the counter
// rswebhooks_unmatched_mutations_total is the durable signal), and keeping
// it off the store keeps a store write off the proxy's path for calls that
// are not events. Safe for concurrent use.
type Unmatched struct {
	mu    sync.Mutex
	size  int
	now   func() time.Time
	byKey map[string]*list.Element
	lru   *list.List // of *unmatchedEntry, most recently seen first
}

type unmatchedEntry struct {
	key         string
	method      string
	segs        []tmplSeg
	status      int
	count       int64
	first, last time.Time
}

// tmplSeg is a segment of a route template: a literal, or a parameter.
type tmplSeg struct {
	lit   string
	param string
}

// NewUnmatched returns a table of at most size routes (<= 0: the default)
// using now as its clock (nil: time.Now).
func NewUnmatched(size int, now func() time.Time) *Unmatched {
	if size <= 0 {
		size = DefaultUnmatchedSize
	}
	if now == nil {
		now = time.Now
	}
	return &Unmatched{size: size, now: now, byKey: map[string]*list.Element{}, lru: list.New()}
}

// record notes one call; segs are the unescaped path segments below the
// virtual directory.
func (u *Unmatched) record(method string, segs []string, status int) {
	if len(segs) == 0 || len(segs) > maxUnmatchedSegments {
		return
	}
	tmpl := templateOf(segs)
	key := method + " " + tmplKey(tmpl)
	if len(key) > maxUnmatchedPath {
		return
	}
	now := u.now().UTC()
	u.mu.Lock()
	defer u.mu.Unlock()
	if el, ok := u.byKey[key]; ok {
		e := el.Value.(*unmatchedEntry)
		e.count++
		e.last, e.status = now, status
		u.lru.MoveToFront(el)
		return
	}
	if u.lru.Len() >= u.size {
		old := u.lru.Back()
		delete(u.byKey, old.Value.(*unmatchedEntry).key)
		u.lru.Remove(old)
	}
	e := &unmatchedEntry{key: key, method: method, segs: tmpl, status: status, count: 1, first: now, last: now}
	u.byKey[key] = u.lru.PushFront(e)
}

// Routes returns the kept routes, most recently seen first, each with a
// suggested rule.
func (u *Unmatched) Routes() []rswebhooks.UnmatchedRoute {
	u.mu.Lock()
	entries := make([]unmatchedEntry, 0, u.lru.Len())
	for el := u.lru.Front(); el != nil; el = el.Next() {
		entries = append(entries, *el.Value.(*unmatchedEntry))
	}
	u.mu.Unlock()
	out := make([]rswebhooks.UnmatchedRoute, 0, len(entries))
	for _, e := range entries {
		r := Suggest(e.method, e.segs)
		out = append(out, rswebhooks.UnmatchedRoute{
			Method: e.method, Path: tmplString(e.segs), Status: e.status, Count: e.count,
			FirstSeenUTC: e.first, LastSeenUTC: e.last, Rule: r,
			Snippet: FormatSuggestions([]rswebhooks.SuggestedRule{r}),
		})
	}
	return out
}

// Len returns how many routes are kept.
func (u *Unmatched) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lru.Len()
}

// templateOf replaces the segments that look like ids (and any that could
// not be a literal of a rule template) by named parameters. A parameter is
// named after the resource family seen before it (reportId, categoryId,
// dataConnectionId, scheduledTaskId, dataAlertId), else after the literal
// before it, else id, id2, ….
func templateOf(segs []string) []tmplSeg {
	out := make([]tmplSeg, len(segs))
	used := map[string]bool{}
	family, prev := "", ""
	for i, s := range segs {
		if !looksLikeID(s) && validLiteral(s) {
			out[i] = tmplSeg{lit: s}
			if f := familyOf(s); f != "" {
				family = f
			}
			prev = s
			continue
		}
		name := ""
		if family != "" && !used[familyParam[family]] {
			name = familyParam[family]
		} else if p := camel(prev); prev != "" && p != "" && !used[p+"Id"] {
			name = p + "Id"
		} else {
			name = "id"
			for n := 2; used[name]; n++ {
				name = "id" + strconv.Itoa(n)
			}
		}
		used[name] = true
		out[i] = tmplSeg{param: name}
		prev = ""
	}
	return out
}

func tmplString(t []tmplSeg) string {
	parts := make([]string, len(t))
	for i, s := range t {
		if s.param != "" {
			parts[i] = "{" + s.param + "}"
		} else {
			parts[i] = s.lit
		}
	}
	return strings.Join(parts, "/")
}

// tmplKey groups templates as the matcher does: literals case-folded,
// parameter names ignored.
func tmplKey(t []tmplSeg) string {
	parts := make([]string, len(t))
	for i, s := range t {
		if s.param != "" {
			parts[i] = "{}"
		} else {
			parts[i] = strings.ToLower(s.lit)
		}
	}
	return strings.Join(parts, "/")
}

// looksLikeID: digits, a GUID, hex of 8+ characters with a digit (the
// report server's ids are 11 hex characters), or a token-like run of 16+
// letters, digits and -_.~ mixing letters and digits.
func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	digits, letters, hex, token := 0, 0, true, true
	for _, r := range strings.Trim(s, "{}") {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F'):
			letters++
		case r == '-':
		case unicode.IsLetter(r) && r < 128:
			letters++
			hex = false
		case r == '_' || r == '.' || r == '~' || r == '=':
			hex = false
		default:
			hex, token = false, false
		}
	}
	switch {
	case letters == 0 && digits > 0 && hex:
		return true
	case hex && digits > 0 && len(s) >= 8:
		return true
	case token && digits > 0 && letters > 0 && len(s) >= 16:
		return true
	}
	return false
}

// validLiteral reports whether s can stand as a literal segment of a rule
// template.
func validLiteral(s string) bool {
	return s != "" && !strings.ContainsAny(s, "{}?#%\\ \t") && !strings.ContainsFunc(s, unicode.IsControl)
}

// familyParam names the id parameter of each resource family as the
// built-in rules do.
var familyParam = map[string]string{
	rswebhooks.FilterReports:     "reportId",
	rswebhooks.FilterCategories:  "categoryId",
	rswebhooks.FilterConnections: "dataConnectionId",
	rswebhooks.FilterTasks:       "scheduledTaskId",
	rswebhooks.FilterAlerts:      "dataAlertId",
}

// familyOf maps a literal segment to a resource family ("" for none).
func familyOf(s string) string {
	n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	switch n {
	case "reports", "report":
		return rswebhooks.FilterReports
	case "categories", "category":
		return rswebhooks.FilterCategories
	case "dataconnections", "dataconnection", "connections", "connection":
		return rswebhooks.FilterConnections
	case "scheduledtasks", "scheduledtask", "tasks", "task":
		return rswebhooks.FilterTasks
	case "dataalerts", "dataalert", "alerts", "alert":
		return rswebhooks.FilterAlerts
	}
	return ""
}

// camel turns a literal into a parameter-name stem: "scheduled-tasks" →
// "scheduledTask", "Items" → "item"; "" when nothing usable is left.
func camel(s string) string {
	var b strings.Builder
	up := false
	for _, r := range s {
		switch {
		case r == '-' || r == '_' || r == '.':
			up = b.Len() > 0
		case r < 128 && (unicode.IsLetter(r) || (unicode.IsDigit(r) && b.Len() > 0)):
			if b.Len() == 0 {
				r = unicode.ToLower(r)
			} else if up {
				r = unicode.ToUpper(r)
			}
			b.WriteRune(r)
			up = false
		}
	}
	out := b.String()
	if len(out) > 1 && strings.HasSuffix(out, "s") && !strings.HasSuffix(out, "ss") {
		out = strings.TrimSuffix(out, "s")
	}
	if len(out) > 32 {
		return ""
	}
	return out
}

var (
	createWords = []string{"create", "add", "new", "copy", "clone", "duplicate", "upload", "import", "insert"}
	deleteWords = []string{"delete", "remove", "destroy"}
	execWords   = []string{"execute", "executions", "execution", "run", "trigger"}
)

func hasWord(segs []tmplSeg, from int, words []string) bool {
	for _, s := range segs[from:] {
		for _, w := range words {
			if s.lit != "" && strings.EqualFold(s.lit, w) {
				return true
			}
		}
	}
	return false
}

// Suggest guesses a rule for a route no rule matched, from its method and
// template: the resource family is the last literal naming one (reports,
// categories, data connections, scheduled tasks, data alerts, in any of the
// API's spellings); the event follows from the method and the words of the
// path (create, delete, execute, …); the id comes from the family's
// parameter, else the body or the response. A route naming no family gets
// an ignore rule. The Note says what to check.
func Suggest(method string, segs []tmplSeg) rswebhooks.SuggestedRule {
	r := rswebhooks.SuggestedRule{Method: method, Path: tmplString(segs)}
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
	default:
		r.Method = MethodAny
	}
	for i, s := range segs {
		if s.lit == "" {
			continue
		}
		if apiVersionRe.MatchString(strings.ToLower(s.lit)) {
			r.APIVersion = strings.ToLower(s.lit)
		}
		if i == 1 && strings.EqualFold(segs[0].lit, "api") && strings.EqualFold(s.lit, "reportserver") {
			r.APIVersion = "v1" // until a later segment says otherwise
		}
	}
	fi := -1
	for i, s := range segs {
		if s.lit != "" && familyOf(s.lit) != "" {
			fi = i
		}
	}
	if fi < 0 || r.Method == MethodAny {
		r.Event = EventIgnore
		r.Note = "no resource family (reports, categories, connections, tasks, alerts) recognised in the path: this ignore rule stops the call being counted as unmatched; if it does change one of them, set filter, event and id instead"
		return r
	}
	r.Filter = familyOf(segs[fi].lit)
	idParam, idAt := "", -1
	for i := fi + 1; i < len(segs); i++ {
		if segs[i].param == familyParam[r.Filter] {
			idParam, idAt = segs[i].param, i
			break
		}
	}
	idFrom := func(fallback IDSource) string {
		if idParam != "" {
			return string(IDPath(idParam))
		}
		return string(fallback)
	}
	switch {
	case (r.Filter == rswebhooks.FilterTasks || r.Filter == rswebhooks.FilterAlerts) && method == "POST" && hasWord(segs, 0, execWords):
		r.Event, r.ID = rswebhooks.EventExecuted, idFrom(IDBody)
	case method == "DELETE" || hasWord(segs, fi+1, deleteWords):
		r.Event, r.ID = rswebhooks.EventDeleted, idFrom(IDBody)
		if method == "DELETE" && idAt >= 0 && idAt != len(segs)-1 {
			r.Event = rswebhooks.EventUpdated // a part of the resource went
		}
	case method == "POST" && (hasWord(segs, fi+1, createWords) || (idParam == "" && fi == len(segs)-1)):
		r.Event, r.ID = rswebhooks.EventCreated, string(IDResponse)
	default:
		r.Event, r.ID = rswebhooks.EventUpdated, idFrom(IDBody)
	}
	r.Note = "guessed from the path: check that the call really " + strings.ToLower(r.Event) + " " + r.Filter +
		" and where its id is (" + r.ID + ") before adding it with --rules"
	return r
}
