package simulator_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestGzip(t *testing.T) {
	tests := []struct {
		name    string
		opts    simulator.Options
		accept  string
		path    string
		gzipped bool
	}{
		{"json with gzip accepted", simulator.Options{}, "gzip, deflate", "/api/reportserver/v2/users", true},
		{"json with gzip;q=0", simulator.Options{}, "gzip;q=0", "/api/reportserver/v2/users", false},
		{"json without Accept-Encoding", simulator.Options{}, "identity", "/api/reportserver/v2/users", false},
		{"compression disabled", simulator.Options{DisableGzip: true}, "gzip", "/api/reportserver/v2/users", false},
		{"binary downloads are not compressed", simulator.Options{}, "gzip", "/api/reportserver/v2/documents/x/large?size=10", false},
		{"errors are JSON and compressed too", simulator.Options{}, "gzip", "/api/reportserver/v2/users/nope", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			r := e.do(e.token("admin"), "GET", tc.path, nil, "Accept-Encoding", tc.accept)
			if got := r.header.Get("Content-Encoding") == "gzip"; got != tc.gzipped {
				t.Fatalf("gzipped = %v; headers %v", got, r.header)
			}
			if tc.gzipped && !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary = %q", r.header.Get("Vary"))
			}
			if strings.Contains(tc.path, "users") && !strings.Contains(string(r.body), "Username") && r.status == 200 {
				t.Fatalf("body %s", r.body)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	e := newEnv(t, simulator.Options{Prefix: "reporting/"})
	if e.sim.Prefix() != "/reporting" {
		t.Fatalf("Prefix() = %q", e.sim.Prefix())
	}
	form := url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin"}}
	want(t, e.form("/Token", form), 404)
	want(t, e.form("/reportingx/Token", form), 404)
	r := e.form("/Reporting/Token", form)
	want(t, r, 200)
	tok, _ := e.sim.IssueToken("admin")
	want(t, e.do(tok, "GET", "/api/reportserver/v2/users", nil), 404)
	want(t, e.do(tok, "GET", "/reporting/api/reportserver/v2/users", nil), 200)
	r = e.do(tok, "POST", "/reporting/api/reportserver/v3/categories", map[string]string{"Name": "x"})
	want(t, r, 201)
	if loc := r.header.Get("Location"); loc != e.srv.URL+"/reporting/api/reportserver/v3/categories/"+r.id(t) {
		t.Fatalf("Location %q", loc)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	cat, _ := e.fixture()
	tests := []struct {
		name, method, path string
		code               int
	}{
		{"paths are case-insensitive", "GET", "/API/ReportServer/V2/Categories/" + cat, 200},
		{"ids are case-insensitive", "GET", "/api/reportserver/v2/categories/" + strings.ToUpper(cat), 200},
		{"2016 camel spelling", "GET", "/api/reportserver/dataConnections", 200},
		{"trailing slash", "GET", "/api/reportserver/v2/categories/", 200},
		{"unknown route", "GET", "/api/reportserver/v2/nothing", 404},
		{"unknown generation", "GET", "/api/reportserver/v4/categories", 404},
		{"v1-only route on v2", "GET", "/api/reportserver/v2/users/x/roles", 404},
		{"wrong method", "PATCH", "/api/reportserver/v2/categories", 405},
		{"v2 has no PUT reports/{id}", "PUT", "/api/reportserver/v2/reports/" + cat, 405},
		{"the management UI is not simulated", "GET", "/Report/Index", 404},
		{"webhooks registrations are off", "GET", "/api/webhooks/registrations", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(admin, tc.method, tc.path, nil)
			want(t, r, tc.code)
			if tc.code == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if r.header.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
			}
		})
	}
	t.Run("JSON field names are case-insensitive", func(t *testing.T) {
		r := e.do(admin, "POST", "/api/reportserver/v2/dataconnections", `{"NAME":"n","provider":"p","connectionstring":"c"}`)
		want(t, r, 200)
		if !strings.Contains(string(r.body), `"ConnectionString":"c"`) {
			t.Fatalf("body %s", r.body)
		}
	})
}

func TestFailureInjection(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	const p = "/api/reportserver/v2/categories"

	e.sim.FailNext(2, http.StatusServiceUnavailable)
	want(t, e.do(admin, "GET", p, nil), 503)
	want(t, e.do(admin, "GET", "/_sim/echo", nil), 200) // never failed
	want(t, e.do("", "POST", "/Token", nil), 503)
	want(t, e.do(admin, "GET", p, nil), 200)

	e.sim.FailWith(http.StatusInternalServerError)
	for i := 0; i < 3; i++ {
		r := e.do(admin, "POST", p, map[string]string{"Name": "never"})
		want(t, r, 500)
	}
	e.sim.SetFailing(0)
	var cats []simulator.Category
	e.do(admin, "GET", p, nil).decode(t, &cats)
	if len(cats) != 0 {
		t.Fatalf("a failed call changed state: %v", cats)
	}
	if n := e.sim.Count("POST", p); n != 3 {
		t.Fatalf("Count(POST) = %d", n)
	}
	if n := e.sim.Requests()["GET /api/reportserver/v2/categories"]; n != 3 {
		t.Fatalf("Requests = %v", e.sim.Requests())
	}
	e.sim.ResetCounters()
	if len(e.sim.Requests()) != 0 || e.sim.Count("", "") != 0 {
		t.Fatal("counters survived ResetCounters")
	}

	t.Run("latency is cut short by a cancelled request", func(t *testing.T) {
		e.sim.SetLatency(time.Hour)
		defer e.sim.SetLatency(0)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+p, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		if _, err := http.DefaultClient.Do(req); err == nil {
			t.Fatal("request did not time out")
		}
	})
}

func TestStreams(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")

	t.Run("large download streams deterministic bytes", func(t *testing.T) {
		const n = 5<<20 + 7
		for _, p := range []string{"/api/reportserver/v2/documents/any/large?size=5242887", "/_sim/large?size=5242887"} {
			req, _ := http.NewRequest("GET", e.srv.URL+p, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := sha256.New()
			m, err := io.Copy(got, res.Body)
			res.Body.Close()
			if err != nil || m != n || res.ContentLength != n {
				t.Fatalf("%s: read %d (Content-Length %d): %v", p, m, res.ContentLength, err)
			}
			exp := sha256.New()
			_, _ = io.Copy(exp, simulator.DeterministicBytes(n))
			if string(got.Sum(nil)) != string(exp.Sum(nil)) {
				t.Fatalf("%s: bytes differ from DeterministicBytes", p)
			}
		}
		want(t, e.do("", "GET", "/api/reportserver/v2/documents/any/large?size=1", nil), 401)
		want(t, e.do(admin, "GET", "/_sim/large?size=-1", nil), 400)
	})
	t.Run("slow chunked response", func(t *testing.T) {
		res, err := http.Get(e.srv.URL + "/_sim/slow?chunks=3&interval=1ms&size=4")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if string(b) != "aaa\nbbb\nccc\n" || res.ContentLength != -1 || len(res.TransferEncoding) == 0 {
			t.Fatalf("body %q, length %d, TE %v", b, res.ContentLength, res.TransferEncoding)
		}
	})
	t.Run("first chunk arrives before the rest is produced", func(t *testing.T) {
		res, err := http.Get(e.srv.URL + "/_sim/slow?chunks=2&interval=1h&size=2")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		line, err := bufio.NewReader(res.Body).ReadString('\n')
		if err != nil || line != "a\n" {
			t.Fatalf("first chunk %q: %v", line, err)
		}
	})
	t.Run("server-sent events", func(t *testing.T) {
		res, err := http.Get(e.srv.URL + "/_sim/sse?events=2&interval=1ms")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.Header.Get("Content-Type") != "text/event-stream" || strings.Count(string(b), "event: tick") != 2 {
			t.Fatalf("SSE %q", b)
		}
	})
	t.Run("echo", func(t *testing.T) {
		r := e.do("", "PUT", "/_sim/echo?a=1", "hello", "X-Test", "yes")
		var ec simulator.Echo
		r.decode(t, &ec)
		sum := sha256.Sum256([]byte("hello"))
		if ec.Method != "PUT" || ec.RawQuery != "a=1" || ec.BodyLength != 5 || ec.Header.Get("X-Test") != "yes" ||
			ec.BodySha256 != hexString(sum[:]) {
			t.Fatalf("%+v", ec)
		}
	})
	t.Run("echo answers as asked", func(t *testing.T) {
		// ?status= and repeatable ?header=Name:Value shape the answer, so
		// proxy checks can see redirects, cookies and CORS answers pass.
		q := "?status=302&header=Location:%2Freporting%2Fnext&header=Set-Cookie:a%3D1%3B%20Domain%3Drs.example%3B%20Path%3D%2F&header=Set-Cookie:b%3D2%3B%20Path%3D%2Freporting"
		r := e.do("", "GET", "/_sim/echo"+q, nil)
		if r.status != 302 || r.header.Get("Location") != "/reporting/next" ||
			strings.Join(r.header.Values("Set-Cookie"), "|") != "a=1; Domain=rs.example; Path=/|b=2; Path=/reporting" {
			t.Fatalf("status %d, header %v", r.status, r.header)
		}
		r = e.do("", "OPTIONS", "/_sim/echo?status=204&header=Access-Control-Allow-Origin:http%3A%2F%2Fapp.example", nil,
			"Origin", "http://app.example", "Access-Control-Request-Method", "PUT")
		if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "http://app.example" || len(r.body) != 0 {
			t.Fatalf("OPTIONS: status %d, header %v, body %q", r.status, r.header, r.body)
		}
		r = e.do("", "HEAD", "/_sim/echo", nil)
		if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") == "" {
			t.Fatalf("HEAD: status %d, header %v, body %q", r.status, r.header, r.body)
		}
		for _, bad := range []string{"?status=99", "?status=x", "?header=NoColon", "?header=Bad%20Name:v"} {
			if r := e.do("", "GET", "/_sim/echo"+bad, nil); r.status != 400 {
				t.Errorf("GET /_sim/echo%s: status %d, want 400", bad, r.status)
			}
		}
	})
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestRenderingService(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	var cl struct {
		ClientID string `json:"clientId"`
	}
	r := e.do("", "POST", "/api/reports/clients", "{}")
	want(t, r, 200)
	r.decode(t, &cl)
	var in struct {
		InstanceID string `json:"instanceId"`
	}
	r = e.do("", "POST", "/api/reports/clients/"+cl.ClientID+"/instances", `{"report":"Samples/Dashboard.trdp"}`)
	want(t, r, 201)
	r.decode(t, &in)
	var doc struct {
		DocumentID string `json:"documentId"`
	}
	base := "/api/reports/clients/" + cl.ClientID + "/instances/" + in.InstanceID + "/documents"
	r = e.do("", "POST", base, `{"format":"HTML5"}`)
	want(t, r, 202)
	r.decode(t, &doc)
	want(t, e.do("", "GET", base+"/"+doc.DocumentID+"/info", nil), 200)
	want(t, e.do("", "GET", base+"/"+doc.DocumentID, nil), 200)
	want(t, e.do("", "DELETE", "/api/reports/clients/"+cl.ClientID, nil), 200)
	want(t, e.do("", "POST", "/api/reports/clients/"+cl.ClientID+"/instances", "{}"), 410)
	want(t, e.do("", "GET", "/api/reports/version", nil), 200)
	for _, id := range []string{cl.ClientID, in.InstanceID, doc.DocumentID} {
		if _, ok := e.sim.Lookup(id); ok {
			t.Fatalf("rendering created resource %s", id)
		}
	}
}

func TestServe(t *testing.T) {
	sim := simulator.New(simulator.Options{SeedSamples: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Serve(ctx, ln) }()
	tok, _ := sim.IssueToken("admin")
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/reportserver/v2/scheduledtasks", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&tasks); err != nil || len(tasks) != 1 {
		t.Fatalf("samples: %d tasks, %v", len(tasks), err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestRoutesDocumented keeps the route table in doc.go in step with the
// code, both ways.
func TestRoutesDocumented(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	methods := map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true, "PATCH": true, "OPTIONS": true}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "//"))
		if !strings.HasPrefix(line, "//\t") || len(f) < 2 || !methods[f[0]] {
			continue
		}
		for _, p := range expandDocPath(f[1]) {
			documented[f[0]+" "+p] = true
		}
	}
	e := newEnv(t, simulator.Options{})
	served := map[string]bool{}
	for _, rt := range e.sim.Routes() {
		k := rt.Method + " " + rt.Path
		served[k] = true
		if !documented[k] {
			t.Errorf("doc.go does not list %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("doc.go lists %s, which is not served", k)
		}
	}
	if len(served) < 100 {
		t.Fatalf("only %d routes", len(served))
	}
}

// expandDocPath turns "{v1,v3}/reports" into the served paths.
func expandDocPath(p string) []string {
	if !strings.HasPrefix(p, "{v") {
		return []string{p}
	}
	vers, rest, _ := strings.Cut(strings.TrimPrefix(p, "{"), "}")
	var out []string
	for _, v := range strings.Split(vers, ",") {
		if v == "v1" {
			out = append(out, "/api/reportserver"+rest)
		}
		out = append(out, "/api/reportserver/"+v+rest)
	}
	return out
}

func TestBodies(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, simulator.Options{Now: func() time.Time { return now }})
	admin := e.token("admin")

	t.Run("non-JSON media type is 415", func(t *testing.T) {
		r := e.do(admin, "POST", "/api/reportserver/v2/categories", "Name=x", "Content-Type", "application/x-www-form-urlencoded")
		want(t, r, 415)
		want(t, e.do(admin, "POST", "/api/reportserver/v2/categories", `{"Name":"a"}`, "Content-Type", "text/json"), 200)
		want(t, e.do(admin, "POST", "/api/reportserver/v3/categories", `{"Name":"b"}`, "Content-Type", "application/problem+json; charset=utf-8"), 201)
	})
	t.Run("Date follows the server clock", func(t *testing.T) {
		e.sim.SetClockSkew(-time.Hour)
		defer e.sim.SetClockSkew(0)
		r := e.do(admin, "GET", "/api/reportserver/v2/categories", nil)
		if got := r.header.Get("Date"); got != now.Add(-time.Hour).Format(http.TimeFormat) {
			t.Fatalf("Date %q", got)
		}
	})
	t.Run("a stalled upload does not block other requests", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/reportserver/v2/categories", pr)
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		stalled := make(chan int, 1)
		go func() {
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				stalled <- 0
				return
			}
			res.Body.Close()
			stalled <- res.StatusCode
		}()
		if _, err := pw.Write([]byte(`{"Name":`)); err != nil { // the server is now reading the body
			t.Fatal(err)
		}
		done := make(chan int, 1)
		go func() { done <- e.do(admin, "GET", "/api/reportserver/v2/categories", nil).status }()
		select {
		case code := <-done:
			if code != 200 {
				t.Fatalf("status %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stalled upload blocked the server")
		}
		_, _ = pw.Write([]byte(`"late"}`))
		_ = pw.Close()
		select {
		case code := <-stalled:
			if code != 200 {
				t.Fatalf("stalled upload answered %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stalled upload never finished")
		}
	})
}

func TestWebSocketEcho(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /_sim/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 || res.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake %d %v", res.StatusCode, res.Header)
	}
	mask := []byte{1, 2, 3, 4}
	msg := []byte("hello")
	frame := append([]byte{0x81, 0x80 | byte(len(msg))}, mask...)
	for i, c := range msg {
		frame = append(frame, c^mask[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2+len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != 0x81 || int(got[1]) != len(msg) || string(got[2:]) != "hello" {
		t.Fatalf("echo frame % x", got)
	}
	want(t, e.do("", "GET", "/_sim/ws", nil), 400)
}
