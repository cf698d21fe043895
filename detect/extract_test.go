package detect

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"net/http"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/tap"
)

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zl(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestResourceExtraction(t *testing.T) {
	d := &Detector{m: mustMatcher(t, "", BuiltinRules()), bodyLimit: 64}
	big := `{"Id":"r1","Name":"` + strings.Repeat("x", 100) + `"}`
	tests := []struct {
		name        string
		ex          tap.Exchange
		id, resName string
	}{
		{"v1 create: bare string", tap.Exchange{Method: "POST", Path: "/api/reportserver/reports",
			RequestBody: []byte(`{"Name":"Sales","CategoryId":"c1"}`), ResponseBody: []byte(`"r-1"`)}, "r-1", "Sales"},
		{"v1 create: bare string with BOM and space", tap.Exchange{Method: "POST", Path: "/api/reportserver/categories",
			ResponseBody: []byte("\xef\xbb\xbf \n\"c-1\"")}, "c-1", ""},
		{"v2 create: object Id", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/categories",
			RequestBody: []byte(`{"Name":"Finance"}`), ResponseBody: []byte(`{"Id":"c9","Name":"Finance"}`)}, "c9", "Finance"},
		{"v2 create: camelCase keys", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/dataconnections",
			ResponseBody: []byte(`{"id":"d9","name":"Db"}`)}, "d9", "Db"},
		{"v2 create: upper-case keys", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/dataalerts",
			ResponseBody: []byte(`{"ID":"a9","NAME":"Alert"}`)}, "a9", "Alert"},
		{"v3 create: Location only", tap.Exchange{Method: "POST", Path: "/api/reportserver/v3/scheduled-tasks",
			ResponseHeader: hdr("Location", "http://rs/api/reportserver/v3/scheduled-tasks/t%2D7/")}, "t-7", ""},
		{"v3 create: relative Location", tap.Exchange{Method: "POST", Path: "/api/reportserver/v3/data-alerts",
			ResponseHeader: hdr("Location", "/api/reportserver/v3/data-alerts/a7?x=1")}, "a7", ""},
		{"create: body beats Location", tap.Exchange{Method: "POST", Path: "/api/reportserver/v3/categories",
			ResponseBody: []byte(`{"Id":"c1"}`), ResponseHeader: hdr("Location", "/x/c2")}, "c1", ""},
		{"create: gzip response", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: gz(t, `{"Id":"r5","Name":"Gz"}`), ResponseHeader: hdr("Content-Encoding", "gzip")}, "r5", "Gz"},
		{"create: deflate response", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: zl(t, `"r6"`), ResponseHeader: hdr("Content-Encoding", "deflate")}, "r6", ""},
		{"create: gzip bomb beyond the cap", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: gz(t, big), ResponseHeader: hdr("Content-Encoding", "gzip")}, "", ""},
		{"create: gzip header but plain body", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(`{"Id":"r1"}`), ResponseHeader: hdr("Content-Encoding", "gzip")}, "", ""},
		{"create: unknown encoding", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(`{"Id":"r1"}`), ResponseHeader: hdr("Content-Encoding", "br")}, "", ""},
		{"create: truncated response, Location still used", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(`{"Id":"r1","Na`), ResponseTruncated: true, ResponseHeader: hdr("Location", "/r/r8")}, "r8", ""},
		{"create: truncated response", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(`{"Id":"r1"}`), ResponseTruncated: true}, "", ""},
		{"create: response beyond the detector's limit", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(big)}, "", ""},
		{"create: numeric Id is not an id", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(`{"Id":42}`)}, "", ""},
		{"create: null Id", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports",
			ResponseBody: []byte(`{"Id":null,"Name":"n"}`)}, "", "n"},
		{"create: empty string", tap.Exchange{Method: "POST", Path: "/api/reportserver/reports",
			ResponseBody: []byte(`""`)}, "", ""},
		{"create: control characters", tap.Exchange{Method: "POST", Path: "/api/reportserver/reports",
			ResponseBody: []byte(`"a\nb"`)}, "", ""},
		{"create: array", tap.Exchange{Method: "POST", Path: "/api/reportserver/reports",
			ResponseBody: []byte(`["r1"]`)}, "", ""},
		{"create: HTML", tap.Exchange{Method: "POST", Path: "/api/reportserver/reports",
			ResponseBody: []byte(`<html>"r1"</html>`)}, "", ""},
		{"create: broken JSON", tap.Exchange{Method: "POST", Path: "/api/reportserver/reports",
			ResponseBody: []byte(`{"Id":"r1"`)}, "", ""},
		{"create: request Id is never used", tap.Exchange{Method: "POST", Path: "/api/reportserver/categories",
			RequestBody: []byte(`{"Id":"mine","Name":"x"}`)}, "", "x"},
		{"v1 update: body Id", tap.Exchange{Method: "PUT", Path: "/api/reportserver/categories",
			RequestBody: []byte(`{"Id":"c1","Name":"Renamed"}`)}, "c1", "Renamed"},
		{"v2 update reports: body Id", tap.Exchange{Method: "PUT", Path: "/api/reportserver/v2/reports",
			RequestBody: []byte(`{"id":"r1","name":"R"}`), ResponseBody: []byte(`{"Id":"r1","Name":"R"}`)}, "r1", "R"},
		{"update: truncated request falls back to response", tap.Exchange{Method: "PUT", Path: "/api/reportserver/v2/scheduledtasks",
			RequestBody: []byte(`{"Id":"t1","Na`), RequestTruncated: true, ResponseBody: []byte(`{"Id":"t1","Name":"T"}`)}, "t1", "T"},
		{"update: gzip request", tap.Exchange{Method: "PUT", Path: "/api/reportserver/v2/dataalerts",
			RequestBody: gz(t, `{"Id":"a1"}`), RequestHeader: hdr("Content-Encoding", "gzip")}, "a1", ""},
		{"update: garbage request", tap.Exchange{Method: "PUT", Path: "/api/reportserver/v2/dataalerts",
			RequestBody: []byte(`Id=a1`)}, "", ""},
		{"path id", tap.Exchange{Method: "DELETE", Path: "/api/reportserver/v2/reports/r%201"}, "r 1", ""},
		{"path id, truncated bodies", tap.Exchange{Method: "PUT", Path: "/api/reportserver/v3/categories/c3",
			RequestBody: []byte(`{"Na`), RequestTruncated: true, ResponseBody: []byte(`xx`), ResponseTruncated: true}, "c3", ""},
		{"path id, name from request", tap.Exchange{Method: "PUT", Path: "/api/reportserver/v3/data-connections/d3",
			RequestBody: []byte(`{"Name":"Conn","ConnectionString":"secret"}`)}, "d3", "Conn"},
		{"revision upload body is not read", tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports/r1/revisions",
			RequestBody: []byte(`{"Name":"not the report","Comment":"c"}`)}, "r1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := d.m.lookup(tt.ex.Method, tt.ex.Path)
			if !ok || m.rule.Ignore() {
				t.Fatalf("%s %s: no event rule", tt.ex.Method, tt.ex.Path)
			}
			if tt.ex.ResponseHeader == nil {
				tt.ex.ResponseHeader = http.Header{}
			}
			if tt.ex.RequestHeader == nil {
				tt.ex.RequestHeader = http.Header{}
			}
			id, name, _, reason := d.resource(m, &tt.ex)
			if id != tt.id || name != tt.resName {
				t.Fatalf("got id %q name %q (reason %q), want id %q name %q", id, name, reason, tt.id, tt.resName)
			}
			if id == "" && reason == "" {
				t.Error("empty id without a reason")
			}
		})
	}
}

func TestLocationID(t *testing.T) {
	tests := map[string]string{
		"":                                      "",
		"http://h/a/b/c":                        "c",
		"http://h/a/b/c/":                       "c",
		"/a/%41b":                               "Ab",
		"c":                                     "c",
		"http://h/":                             "",
		"http://h/a/%zz":                        "",
		"::::":                                  "",
		"http://h/a/%20x":                       "",
		"/a/" + strings.Repeat("y", maxIDLen+1): "",
	}
	for loc, want := range tests {
		got, ok := locationID(hdr("Location", loc))
		if got != want || ok != (want != "") {
			t.Errorf("Location %q: got %q %v, want %q", loc, got, ok, want)
		}
	}
}
