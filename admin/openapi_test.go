package admin_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
)

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

type schema struct {
	Ref        string            `json:"$ref"`
	Type       string            `json:"type"`
	Items      *schema           `json:"items"`
	Properties map[string]schema `json:"properties"`
	Required   []string          `json:"required"`
}

type operation struct {
	ServedBy  string `json:"x-served-by"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema schema `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

func loadOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	var d openAPIDoc
	if err := json.Unmarshal(admin.OpenAPI(), &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &d
}

func (d *openAPIDoc) op(t *testing.T, method, path string) operation {
	t.Helper()
	raw, ok := d.Paths[path][strings.ToLower(method)]
	if !ok {
		t.Fatalf("openapi.json has no %s %s", method, path)
	}
	var o operation
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func (d *openAPIDoc) resolve(s schema) schema {
	for s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// TestOpenAPIMatchesRoutes fails when the document and the route table
// disagree in either direction.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := loadOpenAPI(t)
	h, err := admin.New(admin.Options{Store: e.db, Identity: e.resolver, Verifier: admin.VerifierFunc(nil)})
	if err != nil {
		t.Fatal(err)
	}
	inCode := map[string]bool{}
	for _, r := range h.Routes() {
		inCode[r.Method+" "+r.Pattern] = true
	}
	inDoc := map[string]bool{}
	cmd := map[string]bool{}
	for p, ops := range d.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			o := d.op(t, m, p)
			k := strings.ToUpper(m) + " " + p
			if o.ServedBy == "cmd" {
				cmd[k] = true
				continue
			}
			inDoc[k] = true
		}
	}
	for k := range inCode {
		if !inDoc[k] {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range inDoc {
		if !inCode[k] {
			t.Errorf("openapi.json describes %s, which the handler does not serve", k)
		}
	}
	want := []string{"GET /healthz", "GET /metrics", "GET /readyz"}
	var got []string
	for k := range cmd {
		got = append(got, k)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cmd-served paths in openapi.json = %v, want %v", got, want)
	}
	if res := e.do("GET", "/api/webhooks/openapi.json", "", nil); res.status != 200 || string(res.body) != string(admin.OpenAPI()) {
		t.Errorf("served document differs from the embedded one (%d)", res.status)
	}
}

// TestOpenAPIResponseShapes checks real answers' top-level property names
// against the documented schemas (no undocumented names, every required one).
func TestOpenAPIResponseShapes(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := loadOpenAPI(t)
	tok := e.token("alice")
	check := func(method, path string, res response) {
		t.Helper()
		o := d.op(t, method, path)
		r, ok := o.Responses[strconv.Itoa(res.status)]
		if !ok {
			t.Errorf("%s %s: status %d is not documented", method, path, res.status)
			return
		}
		c, ok := r.Content["application/json"]
		if !ok {
			if len(res.body) != 0 {
				t.Errorf("%s %s %d: body %q but no JSON content documented", method, path, res.status, res.body)
			}
			return
		}
		s := d.resolve(c.Schema)
		var v any
		if err := json.Unmarshal(res.body, &v); err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return
		}
		objs := []any{v}
		if s.Type == "array" {
			arr, ok := v.([]any)
			if !ok {
				t.Errorf("%s %s: want an array, got %s", method, path, res.body)
				return
			}
			objs, s = arr, d.resolve(*s.Items)
			if len(objs) == 0 {
				t.Errorf("%s %s: empty array proves nothing", method, path)
			}
		}
		if s.Type != "object" || len(s.Properties) == 0 {
			return
		}
		for _, o := range objs {
			m, ok := o.(map[string]any)
			if !ok {
				t.Errorf("%s %s: want an object, got %v", method, path, o)
				continue
			}
			for k := range m {
				if _, ok := s.Properties[k]; !ok {
					t.Errorf("%s %s %d: property %q is not in the schema", method, path, res.status, k)
				}
			}
			for _, k := range s.Required {
				if _, ok := m[k]; !ok {
					t.Errorf("%s %s %d: required property %q missing", method, path, res.status, k)
				}
			}
		}
	}
	const reg = "/api/webhooks/registrations"
	res := e.do("POST", reg, tok, hookBody(e.recv.URL+"/h", nil))
	check("POST", reg, res)
	var w rswebhooks.Webhook
	res.json(t, &w)
	check("GET", reg, e.do("GET", reg, tok, nil))
	check("GET", reg+"/{id}", e.do("GET", reg+"/"+w.ID, tok, nil))
	check("GET", reg+"/{id}", e.do("GET", reg+"/nope", tok, nil))
	check("PUT", reg+"/{id}", e.do("PUT", reg+"/"+w.ID, tok, hookBody(e.recv.URL+"/h", map[string]any{"Id": w.ID})))
	check("PUT", reg+"/{id}", e.do("PUT", reg+"/"+w.ID, tok, hookBody(e.recv.URL+"/h", map[string]any{"Id": "x"})))
	check("POST", reg, e.do("POST", reg, "", nil))
	ping := e.do("POST", reg+"/"+w.ID+"/ping", tok, nil)
	check("POST", reg+"/{id}/ping", ping)
	var dl rswebhooks.Delivery
	ping.json(t, &dl)
	check("POST", reg+"/{id}/replay", e.do("POST", reg+"/"+w.ID+"/replay", tok, map[string]any{"Since": time.Now().Add(-time.Hour)}))
	check("POST", reg+"/{id}/replay", e.do("POST", reg+"/"+w.ID+"/replay", tok, map[string]any{}))
	check("GET", reg+"/{id}/deliveries", e.do("GET", reg+"/"+w.ID+"/deliveries", tok, nil))
	check("GET", "/api/webhooks/deliveries/{id}", e.do("GET", "/api/webhooks/deliveries/"+dl.ID, tok, nil))
	check("POST", "/api/webhooks/deliveries/{id}/redeliver", e.do("POST", "/api/webhooks/deliveries/"+dl.ID+"/redeliver", tok, nil))
	check("GET", "/api/webhooks/filters", e.do("GET", "/api/webhooks/filters", tok, nil))
	check("GET", "/api/webhooks/events", e.do("GET", "/api/webhooks/events", tok, nil))
	check("GET", "/api/webhooks/events", e.do("GET", "/api/webhooks/events?limit=x", tok, nil))
	check("POST", "/api/webhooks/login", e.do("POST", "/api/webhooks/login", "", map[string]string{"username": "bob", "password": "bob"}))
	check("POST", "/api/webhooks/login", e.do("POST", "/api/webhooks/login", "", map[string]string{"username": "bob", "password": "nope"}))
	check("POST", reg, e.send("POST", reg, tok, "text/plain", `{"WebHookUri":"http://x.example/?noecho=1"}`))
	check("PUT", reg+"/{id}", e.send("PUT", reg+"/"+w.ID, tok, "application/xml", "<WebHook/>"))
	check("GET", "/api/webhooks/me", e.do("GET", "/api/webhooks/me", tok, nil))
	check("GET", "/api/webhooks/me", e.do("GET", "/api/webhooks/me", "unknown-token-value-1", nil))
	check("DELETE", reg+"/{id}", e.do("DELETE", reg+"/"+w.ID, tok, nil))
	check("DELETE", reg, e.do("DELETE", reg, tok, nil))
}

// TestOpenAPIStatesTheRules: the patterns the document gives clients are
// the ones the handler enforces, and it states the rest of the contract
// (servers, PUT's Id, 405/415/default responses).
func TestOpenAPIStatesTheRules(t *testing.T) {
	var d map[string]any
	if err := json.Unmarshal(admin.OpenAPI(), &d); err != nil {
		t.Fatal(err)
	}
	at := func(path ...string) any {
		var v any = d
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("openapi.json: no %v", path)
			}
			v = m[p]
		}
		return v
	}
	if s := fmt.Sprint(at("servers")); s != "[map[description:The admin listener (--admin-listen) that serves this document. url:/]]" {
		t.Errorf("servers = %s, want url /", s)
	}
	in := []string{"components", "schemas", "WebHookInput", "properties"}
	for _, c := range []struct {
		path []string
		want string
	}{
		{append(in, "WebHookUri", "pattern"), admin.URIPattern},
		{append(in, "Headers", "anyOf"), ""},
		{[]string{"components", "schemas", "WebHook", "properties", "Headers", "propertyNames", "pattern"}, admin.HeaderNamePattern},
		{[]string{"components", "schemas", "WebHook", "properties", "Headers", "propertyNames", "not", "pattern"}, admin.ReservedHeaderPattern()},
		{[]string{"components", "schemas", "WebHook", "properties", "Headers", "additionalProperties", "pattern"}, admin.HeaderValuePattern},
		{[]string{"components", "schemas", "WebHook", "properties", "Secret", "pattern"}, admin.SecretPattern},
	} {
		got := at(c.path...)
		if c.want != "" && got != c.want {
			t.Errorf("%s = %v, want %s", strings.Join(c.path, "."), got, c.want)
		}
	}
	filters := at(append(in, "Filters", "anyOf")...).([]any)[0].(map[string]any)["items"].(map[string]any)["pattern"]
	if filters != admin.FilterPattern(rswebhooks.Filters()) {
		t.Errorf("Filters pattern %v, want %s", filters, admin.FilterPattern(rswebhooks.Filters()))
	}
	if req := fmt.Sprint(at("components", "schemas", "WebHookUpdate", "allOf")); !strings.Contains(req, "required:[Id]") {
		t.Errorf("WebHookUpdate does not require Id: %s", req)
	}
	for path, ops := range at("paths").(map[string]any) {
		for method, o := range ops.(map[string]any) {
			rs := o.(map[string]any)["responses"].(map[string]any)
			want := []string{"405"}
			if _, body := o.(map[string]any)["requestBody"]; body {
				want = append(want, "413", "415")
			}
			if strings.HasPrefix(path, "/api/webhooks/") {
				want = append(want, "default")
			}
			for _, code := range want {
				if _, ok := rs[code]; !ok {
					t.Errorf("%s %s: no %s response", method, path, code)
				}
			}
		}
	}
}
