package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

func TestValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	ok := e.recv.URL + "/in?noecho=1"
	long := func(n int) string { return strings.Repeat("a", n) }
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m["X-H"+strings.Repeat("h", i)] = "v"
		}
		return m
	}
	cases := []struct {
		name string
		body any // string = raw
		msg  string
	}{
		{"empty body", "", "request body"},
		{"malformed", `{"WebHookUri":`, "malformed JSON"},
		{"trailing data", `{"WebHookUri":"` + ok + `"} {}`, "malformed JSON"},
		{"array body", `[]`, "request body"},
		{"wrong type", `{"WebHookUri": 5}`, "WebHookUri: must be a string"},
		{"filters not array", `{"WebHookUri":"` + ok + `","Filters":"reports"}`, "Filters: must be an array"},
		{"uri missing", map[string]any{"Secret": long(40)}, "WebHookUri: is required"},
		{"uri relative", map[string]any{"WebHookUri": "/hook"}, "WebHookUri: must be an absolute"},
		{"uri ftp", map[string]any{"WebHookUri": "ftp://x.example/h"}, "WebHookUri: scheme must be http or https"},
		{"uri no host", map[string]any{"WebHookUri": "http:///h"}, "WebHookUri"},
		{"uri too long", map[string]any{"WebHookUri": "http://x.example/" + long(2100)}, "WebHookUri: must be at most 2048"},
		{"secret short", map[string]any{"WebHookUri": ok, "Secret": long(31)}, "Secret: must be between 32 and 128"},
		{"secret long", map[string]any{"WebHookUri": ok, "Secret": long(129)}, "Secret: must be between 32 and 128"},
		{"description long", map[string]any{"WebHookUri": ok, "Description": long(1025)}, "Description: must be at most 1024"},
		{"unknown filter", map[string]any{"WebHookUri": ok, "Filters": []string{"reports", "widgets"}}, `Filters: unknown filter "widgets"`},
		{"empty filter", map[string]any{"WebHookUri": ok, "Filters": []string{""}}, `Filters: unknown filter ""`},
		{"unknown filter beside wildcard", map[string]any{"WebHookUri": ok, "Filters": []string{"*", "widgets"}}, `Filters: unknown filter "widgets"`},
		{"unknown filter after wildcard", map[string]any{"WebHookUri": ok, "Filters": []string{"reports", "*", "Widgets"}}, `Filters: unknown filter "Widgets"`},
		{"uri space in path", map[string]any{"WebHookUri": strings.Replace(ok, "/in", "/a b", 1)}, "WebHookUri: must not contain spaces or control characters"},
		{"uri tab in query", map[string]any{"WebHookUri": ok + "&x=\ty"}, "WebHookUri: must not contain spaces or control characters"},
		{"uri newline", map[string]any{"WebHookUri": "http://x.example/a\nb"}, "WebHookUri: must not contain spaces or control characters"},
		{"header name", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"Bad Name": "v"}}, `Headers: "Bad Name" is not a valid`},
		{"header CRLF", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"X-A": "v\r\nX-B: w"}}, `Headers: value of "X-A"`},
		{"header NUL", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"X-A": "v\x00"}}, `Headers: value of "X-A"`},
		{"header signature", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"MS-Signature": "x"}}, `Headers: "MS-Signature" is set by the sender`},
		{"header webhook-id", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"webhook-id": "x"}}, "set by the sender"},
		{"header content-type", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"Content-Type": "x"}}, "set by the sender"},
		{"header host", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"Host": "x"}}, "set by the sender"},
		{"header user-agent", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"User-Agent": "x"}}, "set by the sender"},
		{"header content-encoding", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"Content-Encoding": "gzip"}}, "set by the sender"},
		{"header expect", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"Expect": "100-continue"}}, "set by the sender"},
		{"header duplicate", map[string]any{"WebHookUri": ok, "Headers": map[string]string{"X-A": "1", "x-a": "2"}}, "name the same header"},
		{"too many headers", map[string]any{"WebHookUri": ok, "Headers": many(33)}, "Headers: at most 32"},
		{"header value not string", `{"WebHookUri":"` + ok + `","Headers":{"X-A":1}}`, "must be a string"},
		{"too many properties", map[string]any{"WebHookUri": ok, "Properties": func() map[string]any {
			m := map[string]any{}
			for i := range 33 {
				m[long(i+1)] = i
			}
			return m
		}()}, "Properties: at most 32 keys"},
		{"properties too big", map[string]any{"WebHookUri": ok, "Properties": map[string]any{"a": long(17 << 10)}}, "Properties: must encode to at most 16384"},
		{"isPaused null", `{"WebHookUri":"` + ok + `","IsPaused":null}`, "IsPaused: must not be null"},
		{"uri null", `{"WebHookUri":null}`, "WebHookUri: must not be null"},
		{"header value null", `{"WebHookUri":"` + ok + `","Headers":{"X-A":null}}`, `Headers: value of "X-A" must be a string, not null`},
		{"headers not object", `{"WebHookUri":"` + ok + `","Headers":[1]}`, "Headers: must be an object, got an array"},
		{"properties not object", `{"WebHookUri":"` + ok + `","Properties":"x"}`, "Properties: must be an object, got a string"},
		{"property duplicate", `{"WebHookUri":"` + ok + `","Properties":{"a":1,"a":2}}`, `Properties: "a" appears more than once`},
		{"header duplicate name", `{"WebHookUri":"` + ok + `","Headers":{"X-A":"1","X-A":"2"}}`, `Headers: "X-A" appears more than once`},
		{"uri angle brackets", map[string]any{"WebHookUri": ok + "&a=<b>"}, `WebHookUri: must be a URI (RFC 3986): '<' is not allowed`},
		{"uri braces pipe caret backtick", map[string]any{"WebHookUri": "http://x.example/a{c}|^`?noecho"}, `WebHookUri: must be a URI (RFC 3986): '{' is not allowed`},
		{"uri backslash", map[string]any{"WebHookUri": `http://x.example/a\b?noecho`}, `WebHookUri: must be a URI (RFC 3986): '\\' is not allowed`},
		{"uri non-ascii", map[string]any{"WebHookUri": "http://x.example/café?noecho"}, `WebHookUri: must be a URI (RFC 3986): 'é' is not allowed`},
		{"uri bad percent", map[string]any{"WebHookUri": "http://x.example/a%zz?noecho"}, "WebHookUri: must be a URI (RFC 3986): % must start"},
		{"uri leading space", map[string]any{"WebHookUri": " " + ok}, "WebHookUri: must not contain spaces"},
		{"secret control", map[string]any{"WebHookUri": ok, "Secret": long(40) + "\x01"}, "Secret: must not contain control characters"},
		{"secret invalid utf-8", "{\"WebHookUri\":\"" + ok + "\",\"Secret\":\"" + long(40) + "\xff\"}", "Secret: must be valid UTF-8"},
		{"secret lone surrogate", `{"WebHookUri":"` + ok + `","Secret":"` + long(40) + `\ud800"}`, "Secret: must not contain a lone UTF-16 surrogate"},
		{"description lone surrogate", `{"WebHookUri":"` + ok + `","Description":"\udc00x"}`, "Description: must not contain a lone UTF-16 surrogate"},
		{"property invalid utf-8", "{\"WebHookUri\":\"" + ok + "\",\"Properties\":{\"a\":\"\xff\"}}", "Properties: must be valid UTF-8"},
		{"ordered not boolean", `{"WebHookUri":"` + ok + `","Ordered":"yes"}`, "Ordered: must be a boolean"},
		{"max per second negative", map[string]any{"WebHookUri": ok, "MaxPerSecond": -1}, "MaxPerSecond: must be 0 (no limit) or between 0.01 and 1000"},
		{"max per second too small", map[string]any{"WebHookUri": ok, "MaxPerSecond": 0.001}, "MaxPerSecond: must be 0 (no limit) or between 0.01 and 1000"},
		{"max per second too large", map[string]any{"WebHookUri": ok, "MaxPerSecond": 1001}, "MaxPerSecond: must be 0 (no limit) or between 0.01 and 1000"},
		{"max per second not number", `{"WebHookUri":"` + ok + `","MaxPerSecond":"5"}`, "MaxPerSecond: must be a number"},
		{"max per second overflow", `{"WebHookUri":"` + ok + `","MaxPerSecond":1e400}`, "MaxPerSecond"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{"POST", "PUT"} {
				path := "/api/webhooks/registrations"
				if method == "PUT" {
					path += "/0123456789abcdef0123456789abcdef"
				}
				before := countHooks(t, e)
				res := e.do(method, path, tok, c.body)
				var msg struct{ Message string }
				res.json(t, &msg)
				if res.status != 400 || !strings.Contains(msg.Message, c.msg) {
					t.Errorf("%s: %d %q, want 400 containing %q", method, res.status, msg.Message, c.msg)
				}
				if countHooks(t, e) != before {
					t.Errorf("%s: a refused request stored a webhook", method)
				}
			}
		})
	}
	t.Run("Ordered and MaxPerSecond", func(t *testing.T) {
		res := e.do("POST", "/api/webhooks/registrations", tok, map[string]any{"WebHookUri": ok})
		var w rswebhooks.Webhook
		res.json(t, &w)
		sensitive.add(w.Secret)
		if res.status != 201 || w.Ordered || w.MaxPerSecond != 0 || !strings.Contains(string(res.body), `"Ordered":false`) || !strings.Contains(string(res.body), `"MaxPerSecond":0`) {
			t.Fatalf("without the extensions: %d %s; want Ordered false and MaxPerSecond 0", res.status, res.body)
		}
		path := "/api/webhooks/registrations/" + w.ID
		res = e.do("PUT", path, tok, map[string]any{"Id": w.ID, "WebHookUri": ok, "Ordered": true, "MaxPerSecond": 2.5})
		if res.status != 200 {
			t.Fatalf("PUT with the extensions: %d %s", res.status, res.body)
		}
		res = e.do("GET", path, tok, nil)
		res.json(t, &w)
		if !w.Ordered || w.MaxPerSecond != 2.5 {
			t.Fatalf("after PUT: Ordered %v MaxPerSecond %g, want true 2.5", w.Ordered, w.MaxPerSecond)
		}
		// A client of the report server's own API does not know them: a
		// PUT without them (or with null) keeps them.
		for _, body := range []string{`{"Id":"` + w.ID + `","WebHookUri":"` + ok + `","Description":"kept"}`,
			`{"Id":"` + w.ID + `","WebHookUri":"` + ok + `","Ordered":null,"MaxPerSecond":null}`} {
			if res = e.send("PUT", path, tok, "application/json", body); res.status != 200 {
				t.Fatalf("PUT %s: %d %s", body, res.status, res.body)
			}
			res = e.do("GET", path, tok, nil)
			res.json(t, &w)
			if !w.Ordered || w.MaxPerSecond != 2.5 {
				t.Fatalf("after PUT %s: Ordered %v MaxPerSecond %g, want them kept", body, w.Ordered, w.MaxPerSecond)
			}
		}
		if res = e.do("PUT", path, tok, map[string]any{"Id": w.ID, "WebHookUri": ok, "Ordered": false, "MaxPerSecond": 0}); res.status != 200 {
			t.Fatalf("PUT turning them off: %d %s", res.status, res.body)
		}
		res = e.do("GET", path, tok, nil)
		var off rswebhooks.Webhook
		res.json(t, &off)
		if res.status != 200 || off.Ordered || off.MaxPerSecond != 0 {
			t.Fatalf("after turning them off: Ordered %v MaxPerSecond %g", off.Ordered, off.MaxPerSecond)
		}
	})
	t.Run("accepted and normalised", func(t *testing.T) {
		res := e.do("POST", "/api/webhooks/registrations", tok, map[string]any{
			"webhookuri": ok, "FILTERS": []string{"Tasks", "reports", "TASKS"}, "Unknown": 1, "User": map[string]string{"Id": "forged", "Name": "forged"},
			"Headers": map[string]string{"X-Api-Key": "k\tv"}, "Properties": map[string]any{"env": "test", "n": 1.5e300},
		})
		var w rswebhooks.Webhook
		res.json(t, &w)
		sensitive.add(w.Secret)
		if res.status != 201 || strings.Join(w.Filters, ",") != "reports,tasks" || len(w.Secret) != 64 || w.User.Name != "alice" || w.Headers["X-Api-Key"] != "k\tv" {
			t.Errorf("%d %s", res.status, res.body)
		}
		res = e.do("POST", "/api/webhooks/registrations", tok, map[string]any{"WebHookUri": ok, "Filters": []string{}})
		res.json(t, &w)
		if strings.Join(w.Filters, ",") != "*" {
			t.Errorf("empty filters stored as %v", w.Filters)
		}
		res = e.do("POST", "/api/webhooks/registrations", tok, map[string]any{"WebHookUri": ok, "Filters": []string{"alerts", "*"}})
		res.json(t, &w)
		if strings.Join(w.Filters, ",") != "*" {
			t.Errorf("wildcard stored as %v", w.Filters)
		}
	})
}

// TestRoundTripExact: what a 2xx accepted reads back byte for byte (numbers
// that float64 cannot hold included) and is what a notification carries;
// null for a string, array or object member means absent, as with the
// report server's own (Newtonsoft) binder.
func TestRoundTripExact(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token("alice")
	props := `{"big":1e400,"neg":-1e309,"int":9007199254740993,"long":123456789012345678901234567890,` +
		`"frac":0.1000000000000000055511151231257827,"esc":"\u00e9\ud83d\ude00\"","nested":{"a":[1,2.50,{"b":null}]}}`
	body := `{"WebHookUri":"` + e.recv.URL + `/in?noecho=1&a=%C3%A9","Secret":null,"Description":null,"Id":null,"Filters":null,` +
		`"Headers":{"X-Value":"é \"q\" \u00e9\tx"},"Properties":` + props + `}`
	res := e.do("POST", "/api/webhooks/registrations", tok, body)
	if res.status != 201 {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	var created struct {
		ID         string                     `json:"Id"`
		Headers    map[string]string          `json:"Headers"`
		Properties map[string]json.RawMessage `json:"Properties"`
	}
	res.json(t, &created)
	want := map[string]string{"big": "1e400", "neg": "-1e309", "int": "9007199254740993", "long": "123456789012345678901234567890",
		"frac": "0.1000000000000000055511151231257827", "esc": `"\u00e9\ud83d\ude00\""`, "nested": `{"a":[1,2.50,{"b":null}]}`}
	check := func(what string, got map[string]json.RawMessage) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: Properties %v", what, got)
		}
		for k, v := range want {
			if string(got[k]) != v {
				t.Errorf("%s: Properties[%q] = %s, want %s", what, k, got[k], v)
			}
		}
	}
	check("201", created.Properties)
	got := e.do("GET", "/api/webhooks/registrations/"+created.ID, tok, nil)
	var read rswebhooks.Webhook
	got.json(t, &read)
	check("GET", read.Properties)
	if read.Headers["X-Value"] != "é \"q\" é\tx" || read.Description != "" || len(read.Secret) != 64 || strings.Join(read.Filters, ",") != "*" {
		t.Errorf("GET: %s", got.body)
	}
	if !bytes.Contains(got.body, []byte(`a=%C3%A9"`)) {
		t.Errorf("GET: WebHookUri changed: %s", got.body)
	}
	// The notification body carries the Properties exactly as read back.
	nb, err := deliver.MarshalBody(&rswebhooks.Delivery{ID: "D1"}, &read, 1)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct{ Properties map[string]json.RawMessage }
	if err := json.Unmarshal(nb, &sent); err != nil {
		t.Fatal(err)
	}
	for k, v := range sent.Properties { // MarshalIndent re-indents nested values only
		var c bytes.Buffer
		_ = json.Compact(&c, v)
		sent.Properties[k] = c.Bytes()
	}
	check("notification", sent.Properties)
}

// FuzzDecodeWebhook posts arbitrary bodies (as the operator, with an echo
// check that always passes) straight into the handler: it must never panic,
// must answer 201, 400 or 413, and a refusal must leave the store unchanged.
func FuzzDecodeWebhook(f *testing.F) {
	for _, s := range []string{
		`{"WebHookUri":"http://x.example/h?noecho=1","Secret":"` + strings.Repeat("k", 40) + `","Filters":["reports"]}`,
		`{"WebHookUri":"http://x.example/h","Headers":{"X-A":"b"},"Properties":{"a":[1,{"b":null}]}}`,
		`{"webhookuri":"https://x.example","filters":["*","ALERTS"],"IsPaused":true}`,
		`{"WebHookUri":5}`, `null`, `[]`, `{"Headers":{"a b":"c"}}`, "{\"WebHookUri\":\"http://\\u0000\"}",
		`{"WebHookUri":"http://[::1]:80/","Description":"\ud800"}`, `{"Properties":{"a":1e999}}`,
	} {
		f.Add([]byte(s))
	}
	db, err := store.Open(store.Options{Dir: f.TempDir(), Logger: testLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	base, _ := url.Parse("http://127.0.0.1:1")
	client, err := reportserver.New(reportserver.Options{BaseURL: base})
	if err != nil {
		f.Fatal(err)
	}
	res, err := identity.New(identity.Options{Client: client, OperatorToken: operatorToken})
	if err != nil {
		f.Fatal(err)
	}
	h, err := admin.New(admin.Options{Store: db, Identity: res, Logger: testLogger(),
		Verifier: admin.VerifierFunc(func(context.Context, *rswebhooks.Webhook) error { return nil })})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before, err := db.ListWebhooks(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/api/webhooks/registrations", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+operatorToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after, err := db.ListWebhooks(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Code {
		case 201:
			if len(after) != len(before)+1 {
				t.Fatalf("201 but %d -> %d webhooks", len(before), len(after))
			}
		case 400, 413:
			if len(after) != len(before) {
				t.Fatalf("refused (%d) but %d -> %d webhooks", rec.Code, len(before), len(after))
			}
			var m struct{ Message string }
			if json.Unmarshal(rec.Body.Bytes(), &m) != nil || m.Message == "" {
				t.Fatalf("refusal without a Message: %s", rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
