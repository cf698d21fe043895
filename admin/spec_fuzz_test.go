package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/deliver"
)

// specEnv is the admin API with a real delivery engine behind it, driven
// only through what the served OpenAPI document says.
type specEnv struct {
	*env
	spec  *specDoc
	api   *httptest.Server
	sink  *httptest.Server
	mu    sync.Mutex
	got   map[string][]byte // notification bodies by webhook-id
	users map[string]string // name → bearer token
}

func newSpecEnv(t testing.TB) *specEnv {
	s := &specEnv{env: newEnv(t, envOptions{}), got: map[string][]byte{}}
	s.sink = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got[r.Header.Get("webhook-id")] = b
		s.mu.Unlock()
	}))
	t.Cleanup(s.sink.Close)
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	eng, err := deliver.New(deliver.Options{
		Store: s.db, Access: deliver.AllowAll{}, Logger: zerolog.Nop(), PollInterval: 5 * time.Millisecond,
		Client: deliver.NewHTTPClient(deliver.ClientOptions{Allow: allow, Timeout: 5 * time.Second}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// The echo check is tested on its own; here every receiver passes it,
	// so generated URIs need not answer.
	h, err := admin.New(admin.Options{Store: s.db, Identity: s.resolver, Logger: testLogger(), Now: time.Now,
		Verifier: admin.VerifierFunc(func(context.Context, *rswebhooks.Webhook) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	s.api = httptest.NewServer(h)
	t.Cleanup(s.api.Close)
	res := s.do("GET", "/api/webhooks/openapi.json", "", nil) // the served document, not the file
	if s.spec, err = newSpecDoc(res.body); err != nil {
		t.Fatal(err)
	}
	s.users = map[string]string{"alice": s.token("alice"), "operator": operatorToken}
	return s
}

type specResponse struct {
	status int
	header http.Header
	body   []byte
}

func (s *specEnv) call(t testing.TB, method, path, tok, ct string, body []byte) specResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.api.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return specResponse{resp.StatusCode, resp.Header, b}
}

// check asserts a response is no 5xx, is documented for the operation
// (or by its default) and that its body validates against the schema.
func (s *specEnv) check(t testing.TB, method, pattern string, r specResponse) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("%s %s: %d %s", method, pattern, r.status, r.body)
	}
	op, ok := s.spec.root["paths"].(map[string]any)[pattern].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: undocumented operation answered %d", method, pattern, r.status)
		}
		return
	}
	rs := op["responses"].(map[string]any)
	doc, ok := rs[fmt.Sprint(r.status)].(map[string]any)
	if !ok {
		if doc, ok = rs["default"].(map[string]any); !ok {
			t.Fatalf("%s %s: status %d is not documented: %s", method, pattern, r.status, r.body)
		}
	}
	if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
		t.Fatalf("%s %s: 405 without Allow", method, pattern)
	}
	content, _ := doc["content"].(map[string]any)
	js, ok := content["application/json"].(map[string]any)
	if !ok {
		if len(r.body) != 0 && content == nil {
			t.Fatalf("%s %s %d: body %q, none documented", method, pattern, r.status, r.body)
		}
		return
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s %s %d: not JSON: %q", method, pattern, r.status, r.body)
	}
	if err := s.spec.validate(js["schema"].(map[string]any), v, "body"); err != nil {
		t.Fatalf("%s %s %d: response violates the document: %v\n%s", method, pattern, r.status, err, r.body)
	}
}

// gen makes random JSON values for schemas of the document.
type gen struct {
	r    *rand.Rand
	spec *specDoc
	sink string // base URL of the receiver
}

// edgeNumbers are JSON numbers a float64 cannot hold exactly (or at all).
var edgeNumbers = []string{"1e400", "-1e309", "9007199254740993", "123456789012345678901234567890",
	"0.1000000000000000055511151231257827", "0", "-0", "1E+2", "2.50", "-12.000e-3", strings.Repeat("9", 401)}

// edgeStrings are strings that must round-trip exactly.
var edgeStrings = []string{"", "é", "😀", "<&>", `"\`, "\u2028\u2029", "\x7f", "\u0085", " lead", "trail ", "\t", "\x00"}

func (g *gen) n(k int) int { return g.r.IntN(k) }

// value generates a value valid against s.
func (g *gen) value(s map[string]any, depth int) any {
	s = g.spec.resolve(s)
	if alts, ok := s["anyOf"].([]any); ok {
		return g.value(alts[g.n(len(alts))].(map[string]any), depth)
	}
	switch s["type"] {
	case "null":
		return nil
	case "boolean":
		return g.n(2) == 0
	case "integer":
		return json.Number(fmt.Sprint(g.n(100)))
	case "number":
		if e, ok := s["enum"].([]any); ok {
			return e[g.n(len(e))]
		}
		lo, hi := 0.0, 100.0
		if v, ok := s["minimum"]; ok {
			lo, _ = strconv.ParseFloat(fmt.Sprint(v), 64)
		}
		if v, ok := s["maximum"]; ok {
			hi, _ = strconv.ParseFloat(fmt.Sprint(v), 64)
		}
		return json.Number(strconv.FormatFloat(lo+g.r.Float64()*(hi-lo), 'g', -1, 64))
	case "string":
		return g.str(s)
	case "array":
		var a []any
		for range g.n(4) {
			a = append(a, g.value(s["items"].(map[string]any), depth+1))
		}
		if a == nil {
			a = []any{}
		}
		return a
	case "object":
		return g.object(s, depth)
	}
	return g.anyJSON(depth) // no type: any JSON value
}

func (g *gen) str(s map[string]any) string {
	minL, maxL := int64(0), int64(40)
	if v, ok := s["minLength"]; ok {
		minL = num(v)
	}
	if v, ok := s["maxLength"]; ok {
		maxL = num(v)
	}
	for range 100 {
		var out string
		if p, ok := s["pattern"].(string); ok {
			out = g.pattern(p, minL, maxL)
		} else {
			n := minL + int64(g.n(int(min(maxL, minL+20)-minL+1)))
			if g.n(8) == 0 {
				n = maxL // the boundary
			}
			var b strings.Builder
			for range n {
				b.WriteString(g.char())
			}
			out = b.String()
		}
		if l := int64(utf8.RuneCountInString(out)); l >= minL && l <= maxL {
			if not, ok := s["not"].(map[string]any); !ok || g.spec.validate(not, out, "") != nil {
				return out
			}
		}
	}
	panic(fmt.Sprintf("cannot generate a string for %v", s))
}

func (g *gen) char() string {
	if g.n(6) == 0 {
		return edgeStrings[1+g.n(7)] // printable edge characters
	}
	return string(rune('a' + g.n(26)))
}

// pattern generates a string matching an ECMA-262 pattern of the document.
// A star repeats between minLen and a little more (or to maxLen at the
// boundary), so ^[…]*$ patterns meet the schema's length limits.
func (g *gen) pattern(p string, minLen, maxLen int64) string {
	re, err := syntax.Parse(g.spec.re(p).String(), syntax.Perl)
	if err != nil {
		panic(err)
	}
	var b strings.Builder
	g.walk(re.Simplify(), &b, minLen, maxLen)
	return b.String()
}

func (g *gen) walk(re *syntax.Regexp, b *strings.Builder, minLen, maxLen int64) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		b.WriteRune(g.classRune(re.Rune))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteString(g.char())
	case syntax.OpCapture:
		g.walk(re.Sub[0], b, minLen, maxLen)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			g.walk(sub, b, minLen, maxLen)
		}
	case syntax.OpAlternate:
		g.walk(re.Sub[g.n(len(re.Sub))], b, minLen, maxLen)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			lo, hi = int(minLen), -1
			if g.n(10) == 0 {
				lo = int(min(maxLen, 5000)) // the boundary
			}
		case syntax.OpPlus:
			lo, hi = 1, -1
		case syntax.OpQuest:
			lo, hi = 0, 1
		}
		if hi < 0 || hi > lo+6 {
			hi = lo + 6
		}
		if re.Op == syntax.OpStar && int64(hi) > maxLen {
			hi = int(maxLen)
		}
		n := lo + g.n(hi-lo+1)
		if re.Op == syntax.OpRepeat && re.Max > 0 && g.n(10) == 0 && int64(re.Max) <= maxLen {
			n = re.Max // the boundary
		}
		for range n {
			g.walk(re.Sub[0], b, minLen, maxLen)
		}
	}
}

// classRune picks a rune from a class: mostly printable ASCII, sometimes
// any valid character the class allows (never a surrogate).
func (g *gen) classRune(ranges []rune) rune {
	for range 100 {
		i := 2 * g.n(len(ranges)/2)
		lo, hi := ranges[i], ranges[i+1]
		if g.n(4) != 0 && lo < 0x7f {
			hi = min(hi, 0x7e)
		}
		if hi-lo > 0x3000 && g.n(2) == 0 {
			hi = lo + 0x3000
		}
		r := lo + rune(g.n(int(hi-lo+1)))
		if utf8.ValidRune(r) {
			return r
		}
	}
	return ranges[0]
}

func (g *gen) object(s map[string]any, depth int) map[string]any {
	m := map[string]any{}
	props, _ := s["properties"].(map[string]any)
	req := map[string]bool{}
	for _, r := range asList(s["required"]) {
		req[r.(string)] = true
	}
	for name, ps := range props {
		if ro, _ := g.spec.resolve(ps.(map[string]any))["readOnly"].(bool); ro {
			continue
		}
		if req[name] || g.n(3) != 0 {
			m[name] = g.value(ps.(map[string]any), depth+1)
		}
	}
	maxP := int64(5)
	if v, ok := s["maxProperties"]; ok {
		maxP = num(v)
	}
	names, hasNames := s["propertyNames"].(map[string]any)
	add, _ := s["additionalProperties"].(map[string]any)
	if props != nil || depth > 3 {
		return m
	}
	n := int64(g.n(5))
	if g.n(10) == 0 {
		n = maxP // the boundary
	}
	seen := map[string]bool{}
	for range n {
		var name string
		if hasNames {
			name = g.str(names)
		} else {
			name = g.str(map[string]any{"maxLength": json.Number("12")})
		}
		if seen[strings.ToLower(name)] { // header names are unique ignoring case
			continue
		}
		seen[strings.ToLower(name)] = true
		if add != nil {
			m[name] = g.value(add, depth+1)
		} else {
			m[name] = g.anyJSON(depth + 1)
		}
	}
	return m
}

// anyJSON is any JSON value, with edge numbers and strings.
func (g *gen) anyJSON(depth int) any {
	k := g.n(7)
	if depth > 3 {
		k = g.n(4)
	}
	switch k {
	case 0:
		return json.Number(edgeNumbers[g.n(len(edgeNumbers))])
	case 1:
		return edgeStrings[g.n(len(edgeStrings))]
	case 2:
		return g.n(2) == 0
	case 3:
		return nil
	case 4, 5:
		a := []any{}
		for range g.n(3) {
			a = append(a, g.anyJSON(depth+1))
		}
		return a
	}
	m := map[string]any{}
	for range g.n(3) {
		m[g.str(map[string]any{"maxLength": json.Number("6")})] = g.anyJSON(depth + 1)
	}
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// mutate breaks a valid body in one of the ways the document forbids (or,
// for a few, in ways it allows: the server must agree either way).
func (g *gen) mutate(m map[string]any) {
	switch g.n(18) {
	case 16:
		m["MaxPerSecond"] = []any{-1, 0.001, 1000.5, "5", true, 1e300, 0, 0.01, 1000}[g.n(9)]
	case 17:
		m["Ordered"] = []any{"true", 1, nil, true, false}[g.n(5)]
	case 0:
		m["IsPaused"] = nil
	case 1:
		m["WebHookUri"] = fmt.Sprint(m["WebHookUri"]) + []string{"<", ">", "{", "|", "^", "`", "é", " ", "%", "%zz", "\\", "\""}[g.n(12)]
	case 2:
		m["Secret"] = strings.Repeat("s", []int{1, 31, 129, 32, 128}[g.n(5)])
	case 3:
		m["Secret"] = strings.Repeat("s", 40) + []string{"\x01", "\n", "\u0085", "\x7f", "é"}[g.n(5)]
	case 4:
		m["Filters"] = []any{[]string{"widgets", "Reports", " reports", "TASKS", "*", ""}[g.n(6)]}
	case 5:
		m["Headers"] = map[string]any{[]string{"Bad Name", "ms-signature", "Webhook-Id", "Content-Type", "X-Ok", "é", strings.Repeat("h", 257)}[g.n(7)]: "v"}
	case 6:
		m["Headers"] = map[string]any{"X-A": []any{"a\nb", "a\tb", nil, 5, strings.Repeat("v", 4097), strings.Repeat("é", 4096)}[g.n(6)]}
	case 7:
		m["Description"] = strings.Repeat("d", 1024+g.n(2))
	case 8:
		p := map[string]any{}
		for i := range 32 + g.n(2) {
			p[fmt.Sprint(i)] = i
		}
		m["Properties"] = p
	case 9:
		m["Properties"] = []any{"x", 1, []any{}, true}[g.n(4)]
	case 10:
		m["WebHookUri"] = []any{nil, 5, "", "ftp://x/", "http://", "http:///x", "http://h:x/", "http://[zz]/", "//h/x", "http://h%41/"}[g.n(10)]
	case 11:
		m["Filters"] = []any{"reports", nil, 5, []any{nil}}[g.n(4)]
	case 12:
		m["Id"] = []any{5, true, nil, "x"}[g.n(4)]
	case 13:
		m["Description"] = []any{5, nil, false}[g.n(3)]
	case 14:
		delete(m, "WebHookUri")
	case 15:
		m["Secret"] = []any{nil, "", 5}[g.n(3)]
	}
}

// body generates a WebHookInput; the URI points at the receiver unless
// the generator chose a host of its own.
func (g *gen) body() map[string]any {
	s := g.spec.resolve(map[string]any{"$ref": "#/components/schemas/WebHookInput"})
	m := g.object(s, 0)
	if uri, ok := m["WebHookUri"].(string); ok && g.n(4) != 0 {
		rest := ""
		if i := strings.IndexAny(uri[strings.Index(uri, "//")+2:], "/?#"); i >= 0 {
			rest = uri[strings.Index(uri, "//")+2+i:]
		}
		m["WebHookUri"] = g.sink + rest
	}
	return m
}

// expected is what a GET must answer after an accepted body.
func expected(body map[string]any, keptSecret string) (uri, secret, desc string, paused bool, filters []string, headers map[string]string, props map[string]string) {
	uri, _ = body["WebHookUri"].(string)
	secret, _ = body["Secret"].(string)
	if secret == "" {
		secret = keptSecret
	}
	desc, _ = body["Description"].(string)
	paused, _ = body["IsPaused"].(bool)
	all := false
	seen := map[string]bool{}
	for _, f := range asList(body["Filters"]) {
		l := strings.ToLower(f.(string))
		all = all || l == "*"
		seen[l] = true
	}
	for _, f := range rswebhooks.Filters() {
		if seen[f] && !all {
			filters = append(filters, f)
		}
	}
	if filters == nil {
		filters = []string{"*"}
	}
	headers = map[string]string{}
	if h, ok := body["Headers"].(map[string]any); ok {
		for k, v := range h {
			headers[k] = v.(string)
		}
	}
	props = map[string]string{}
	if p, ok := body["Properties"].(map[string]any); ok {
		for k, v := range p {
			b, _ := json.Marshal(v)
			props[k] = string(b)
		}
	}
	return
}

// FuzzSpecOperations drives every operation of the served OpenAPI document
// with bodies generated from its schemas (valid ones, edge cases and
// mutations), as a user and as the operator, and asserts: no 5xx; every
// status documented and every body valid against the document; a body is
// accepted exactly when the document allows it; what is accepted reads
// back exactly (after the documented normalisations); and a ping carries
// exactly the Properties read back. The seed corpus (f.Add and
// testdata/fuzz/FuzzSpecOperations) runs in every go test; set
// RSWEBHOOKS_SPEC_SEEDS to run more seeds (say 1000) without the fuzzing
// engine.
func FuzzSpecOperations(f *testing.F) {
	seeds := 24
	if n, err := strconv.Atoi(os.Getenv("RSWEBHOOKS_SPEC_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	for i := range seeds {
		f.Add(uint64(i), uint8(i))
	}
	s := newSpecEnv(f)
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) {
		g := &gen{r: rand.New(rand.NewPCG(seed, seed>>32|1)), spec: s.spec, sink: s.sink.URL}
		s.run(t, g, 4+int(steps%8))
	})
}

const reg = "/api/webhooks/registrations"

func (s *specEnv) run(t *testing.T, g *gen, steps int) {
	in := s.spec.resolve(map[string]any{"$ref": "#/components/schemas/WebHookInput"})
	users := []string{"alice", "operator"}
	user := users[g.n(2)]
	tok := s.users[user]
	var ids []string
	for range steps {
		body := g.body()
		if g.n(3) == 0 {
			g.mutate(body)
		}
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if sec, ok := body["Secret"].(string); ok && sec != "" {
			sensitive.add(sec)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var sent any
		_ = dec.Decode(&sent)
		// A body over the size bound is refused with 413 (documented on every
		// operation), whatever its schema says.
		valid := s.spec.validate(in, sent, "body") == nil && len(b) <= admin.DefaultMaxBodyBytes

		res := s.call(t, "POST", reg, tok, "application/json", b)
		s.check(t, "POST", reg, res)
		if got := res.status == http.StatusCreated; got != valid {
			t.Fatalf("POST %s: %d %s; the document says the body is valid=%v:\n%s", reg, res.status, res.body, valid, b)
		}
		if !valid {
			continue
		}
		var w rswebhooks.Webhook
		if err := json.Unmarshal(res.body, &w); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.ID)
		s.readsBack(t, tok, w.ID, body, "")
		s.ping(t, g, tok, w.ID)

		// PUT: a new body with the path's Id.
		upd := g.body()
		upd["Id"] = strings.ToUpper(w.ID)
		if g.n(4) == 0 {
			g.mutate(upd)
		}
		b, _ = json.Marshal(upd)
		dec = json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		_ = dec.Decode(&sent)
		uvalid := s.spec.validate(s.spec.resolve(map[string]any{"$ref": "#/components/schemas/WebHookUpdate"}), sent, "body") == nil
		if sec, ok := upd["Secret"].(string); ok && sec != "" {
			sensitive.add(sec)
		}
		res = s.call(t, "PUT", reg+"/"+w.ID, tok, "application/json", b)
		s.check(t, "PUT", reg+"/{id}", res)
		updValid := uvalid && strings.EqualFold(fmt.Sprint(upd["Id"]), w.ID) && len(b) <= admin.DefaultMaxBodyBytes
		if got := res.status == http.StatusOK; got != updValid {
			t.Fatalf("PUT: %d %s; the document says valid=%v:\n%s", res.status, res.body, updValid, b)
		}
		if updValid {
			s.readsBack(t, tok, w.ID, upd, w.Secret)
		}
	}
	// Every other operation, with ids that exist and ones that do not.
	id := "0123456789abcdef0123456789abcdef"
	if len(ids) > 0 {
		id = ids[g.n(len(ids))]
	}
	var dl rswebhooks.Delivery
	if r := s.call(t, "GET", reg+"/"+id+"/deliveries", tok, "", nil); r.status == 200 {
		var ds []rswebhooks.Delivery
		_ = json.Unmarshal(r.body, &ds)
		if len(ds) > 0 {
			dl = ds[0]
		}
	}
	limits := []string{"", "?limit=1", "?limit=500", "?limit=", "?limit=%2B5", "?limit=0", "?limit=x"}
	for _, c := range []struct{ method, path, pattern string }{
		{"GET", reg, reg},
		{"GET", reg + "/" + id, reg + "/{id}"},
		{"GET", reg + "/nope", reg + "/{id}"},
		{"GET", reg + "/" + id + "/deliveries" + limits[g.n(len(limits))], reg + "/{id}/deliveries"},
		{"GET", "/api/webhooks/deliveries/" + dl.ID, "/api/webhooks/deliveries/{id}"},
		{"POST", "/api/webhooks/deliveries/" + dl.ID + "/redeliver", "/api/webhooks/deliveries/{id}/redeliver"},
		{"GET", "/api/webhooks/filters", "/api/webhooks/filters"},
		{"GET", "/api/webhooks/me", "/api/webhooks/me"},
		{"GET", "/api/webhooks/unreadable", "/api/webhooks/unreadable"},
		{"DELETE", "/api/webhooks/unreadable/event/nope", "/api/webhooks/unreadable/{kind}/{id}"},
		{"DELETE", "/api/webhooks/unreadable/widget/nope", "/api/webhooks/unreadable/{kind}/{id}"},
		{[]string{"PATCH", "PUT", "DELETE", "POST"}[g.n(4)], "/api/webhooks/filters", "/api/webhooks/filters"},
		{"PATCH", reg + "/" + id, reg + "/{id}"},
		{"DELETE", reg + "/" + id, reg + "/{id}"},
		{"GET", "/api/webhooks/openapi.json", "/api/webhooks/openapi.json"},
	} {
		if strings.HasSuffix(c.path, "/") || strings.Contains(c.path, "//") {
			continue // no delivery yet
		}
		s.check(t, c.method, c.pattern, s.call(t, c.method, c.path, tok, "", nil))
	}
	for _, c := range []struct{ ct, body string }{
		{"application/x-www-form-urlencoded", "username=alice&password=alice"},
		{"application/json", `{"username":"bob","password":"wrong"}`},
		{"text/plain", "username=alice&password=alice"},
		{"application/json; charset=utf-16", `{}`},
	} {
		s.check(t, "POST", "/api/webhooks/login", s.call(t, "POST", "/api/webhooks/login", "", c.ct, []byte(c.body)))
	}
	if g.n(4) == 0 {
		s.check(t, "DELETE", reg, s.call(t, "DELETE", reg, tok, "", nil))
	}
}

// readsBack asserts GET answers exactly what body asked for.
func (s *specEnv) readsBack(t *testing.T, tok, id string, body map[string]any, keptSecret string) {
	t.Helper()
	res := s.call(t, "GET", reg+"/"+id, tok, "", nil)
	s.check(t, "GET", reg+"/{id}", res)
	var w struct {
		rswebhooks.Webhook
		Properties map[string]json.RawMessage
	}
	if err := json.Unmarshal(res.body, &w); err != nil {
		t.Fatal(err)
	}
	uri, secret, desc, paused, filters, headers, props := expected(body, keptSecret)
	gotProps := map[string]string{}
	for k, v := range w.Properties {
		gotProps[k] = string(v)
	}
	if w.URI != uri || secret != "" && w.Secret != secret || w.Description != desc || w.IsPaused != paused ||
		!slices.Equal(w.Filters, filters) || fmt.Sprint(w.Headers) != fmt.Sprint(headers) || fmt.Sprint(gotProps) != fmt.Sprint(props) {
		b, _ := json.Marshal(body)
		t.Fatalf("GET after a 2xx does not read back what was sent:\nsent %s\ngot  %s", b, res.body)
	}
}

// ping asks for a ping and, when the webhook points at the receiver and is
// not paused, waits for the notification and compares its Properties with
// what GET reads back.
func (s *specEnv) ping(t *testing.T, g *gen, tok, id string) {
	t.Helper()
	res := s.call(t, "POST", reg+"/"+id+"/ping", tok, "", nil)
	s.check(t, "POST", reg+"/{id}/ping", res)
	get := s.call(t, "GET", reg+"/"+id, tok, "", nil)
	var w struct {
		WebHookURI string                     `json:"WebHookUri"`
		Properties map[string]json.RawMessage `json:"Properties"`
	}
	_ = json.Unmarshal(get.body, &w)
	var d rswebhooks.Delivery
	if err := json.Unmarshal(res.body, &d); err != nil || !strings.HasPrefix(w.WebHookURI, s.sink.URL) {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for body == nil {
		s.mu.Lock()
		body = s.got[d.ID]
		s.mu.Unlock()
		if body == nil {
			if time.Now().After(deadline) {
				t.Fatalf("ping %s to %s not delivered within 10s", d.ID, w.WebHookURI)
			}
			<-time.After(5 * time.Millisecond)
		}
	}
	var n struct{ Properties map[string]json.RawMessage }
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatal(err)
	}
	for k, v := range n.Properties {
		var c bytes.Buffer
		_ = json.Compact(&c, v) // the body is indented; values are otherwise as stored
		n.Properties[k] = c.Bytes()
	}
	if fmt.Sprint(strmap(n.Properties)) != fmt.Sprint(strmap(w.Properties)) {
		t.Fatalf("ping carries Properties %s, GET reads %s", strmap(n.Properties), strmap(w.Properties))
	}
}

func strmap(m map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}
