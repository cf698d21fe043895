package detect

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rswebhooks/rswebhooks/tap"
)

// FuzzMatch: arbitrary methods and paths never panic, and a match is
// consistent: every parameter is a non-empty segment of the path, and the
// path rebuilt from the template and the parameters matches the same rule.
func FuzzMatch(f *testing.F) {
	for _, s := range []struct{ m, p string }{
		{"POST", "/api/reportserver/v2/reports"},
		{"DELETE", "/API/reportserver/v2/reports/a%2Fb/rev/"},
		{"DELETE", "/api/reportserver/v2/executions/scheduledtasks/t1"},
		{"DELETE", "/reporting/api/reports/clients/x/instances/y"},
		{"PUT", "//api/reportserver//categories"},
		{"post", "/api/reportserver/v3/data-alerts/%zz/execute"},
		{"*", "/api/reportserver/v3/users/%C3%A9"},
		{"", ""},
	} {
		f.Add(s.m, s.p)
	}
	rules := BuiltinRules()
	rules = append(rules, Rule{Method: "PATCH", Path: "x/{a}/{b?}", Filter: "reports", Event: "Updated", ID: IDPath("a")})
	m := mustMatcher(f, "/reporting", rules)
	f.Fuzz(func(t *testing.T, method, path string) {
		got, ok := m.lookup(method, path)
		if !ok {
			return
		}
		r := got.rule
		if r.Method != method && r.Method != MethodAny {
			t.Fatalf("%s %s matched a %s rule", method, path, r.Method)
		}
		// Rebuild the path from the template.
		var out []string
		for _, s := range strings.Split("reporting/"+strings.TrimPrefix(r.Path, "/"), "/") {
			pm := paramRe.FindStringSubmatch(s)
			if pm == nil {
				out = append(out, s)
				continue
			}
			v, ok := got.param(pm[1])
			if !ok {
				if pm[2] != "?" {
					t.Fatalf("%s %s: required parameter {%s} missing", method, path, pm[1])
				}
				continue
			}
			if v == "" {
				t.Fatalf("%s %s: parameter {%s} is empty", method, path, pm[1])
			}
			if pm[2] == "*" {
				for _, part := range strings.Split(v, "/") {
					out = append(out, url.PathEscape(part))
				}
				continue
			}
			out = append(out, url.PathEscape(v))
		}
		again, ok := m.lookup(method, "/"+strings.Join(out, "/"))
		if !ok || again.rule != r {
			t.Fatalf("%s %s matched %s, but the rebuilt path %q does not", method, path, r.Rule, strings.Join(out, "/"))
		}
	})
}

// FuzzExtract: arbitrary bodies and headers never panic, and on routes whose
// id comes from a body, an id is only ever a JSON string of the decoded body
// (bare, or a top-level Id) or the Location header's last segment — never
// garbage.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(`"r1"`), "", "", false, []byte(`{"Name":"n"}`))
	f.Add([]byte(`{"Id":"r1","Name":"n"}`), "", "", false, []byte(nil))
	f.Add([]byte(`{"id":42}`), "", "/a/b", false, []byte(`{"Id":"x"}`))
	f.Add(gz(f, `{"ID":"g"}`), "gzip", "", false, []byte(nil))
	f.Add([]byte(`{"Id":"r1"`), "", "", true, []byte(`{"Id":`))
	f.Add([]byte("\xef\xbb\xbf\"x\""), "identity", "http://h/%zz", false, []byte("\x00"))
	f.Add([]byte(`{"Id":"a","id":"b"}`), "", "", false, []byte(`[]`))
	d := &Detector{m: mustMatcher(f, "", BuiltinRules()), bodyLimit: 4096}
	paths := []struct{ method, path string }{
		{"POST", "/api/reportserver/reports"},
		{"POST", "/api/reportserver/v2/categories"},
		{"POST", "/api/reportserver/v3/data-alerts"},
		{"PUT", "/api/reportserver/v2/reports"},
		{"PUT", "/api/reportserver/dataconnections"},
	}
	f.Fuzz(func(t *testing.T, resp []byte, encoding, location string, truncated bool, req []byte) {
		for _, p := range paths {
			ex := &tap.Exchange{Method: p.method, Path: p.path, Status: 200,
				RequestHeader: http.Header{}, RequestBody: req,
				ResponseHeader: http.Header{}, ResponseBody: resp, ResponseTruncated: truncated}
			if encoding != "" {
				ex.ResponseHeader.Set("Content-Encoding", encoding)
			}
			if location != "" {
				ex.ResponseHeader.Set("Location", location)
			}
			m, ok := d.m.lookup(p.method, p.path)
			if !ok {
				t.Fatalf("%s %s: no rule", p.method, p.path)
			}
			id, name, _, reason := d.resource(m, ex)
			if name != "" && !utf8.ValidString(name) {
				t.Fatalf("invalid UTF-8 name %q", name)
			}
			if id == "" {
				if reason == "" {
					t.Fatal("empty id without a reason")
				}
				continue
			}
			if !validIDValue(id) {
				t.Fatalf("implausible id %q", id)
			}
			if loc, ok := locationID(ex.ResponseHeader); ok && loc == id {
				continue
			}
			if m.rule.ID == IDBody && jsonHoldsID(req, id, false) {
				continue // identity: the request has no Content-Encoding
			}
			var b []byte
			if !truncated {
				b, _ = tap.Decode(resp, encoding, d.bodyLimit)
			}
			if !jsonHoldsID(b, id, true) {
				t.Fatalf("%s %s: id %q is neither in the Location header nor a JSON string of a body", p.method, p.path, id)
			}
		}
	})
}

// jsonHoldsID reports whether b is valid JSON that is the string id (when
// bare strings count) or an object with a top-level key equal to "id"
// ignoring case whose value is the string id.
func jsonHoldsID(b []byte, id string, bare bool) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if !json.Valid(b) {
		return false
	}
	var s string
	if bare && json.Unmarshal(b, &s) == nil && s == id {
		return true
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil {
		return false
	}
	for k, v := range obj {
		if strings.EqualFold(k, "id") && json.Unmarshal(v, &s) == nil && s == id {
			return true
		}
	}
	return false
}
