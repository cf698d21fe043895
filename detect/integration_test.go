package detect

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/store"
)

// stack is the simulator behind the real proxy with the detector as its tap
// and a real store.
type stack struct {
	t      *testing.T
	sim    *simulator.Server
	up     *httptest.Server // the simulator, direct (for setup)
	front  *httptest.Server // the proxy
	d      *Detector
	db     *store.DB
	token  string
	seq    atomic.Int64
	prefix string
}

func newStack(t *testing.T, prefix string) *stack {
	t.Helper()
	return newStackWith(t, prefix, nil, nil)
}

// newStackWith is newStack on sim (nil: a new simulator) with the
// detector's options changed by tweak.
func newStackWith(t *testing.T, prefix string, sim *simulator.Server, tweak func(*Options)) *stack {
	t.Helper()
	s := &stack{t: t, prefix: prefix, sim: sim}
	if s.sim == nil {
		s.sim = simulator.New(simulator.Options{Prefix: prefix})
	}
	s.up = httptest.NewServer(s.sim)
	t.Cleanup(s.up.Close)
	tok, err := s.sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	s.token = tok
	s.db = openStore(t)
	opts := Options{
		Store:      s.db,
		Prefix:     prefix,
		Registerer: prometheus.NewRegistry(),
		Actors: actorsFn(func(bearer string) (*rswebhooks.Identity, bool) {
			if bearer == tok {
				return &rswebhooks.Identity{User: rswebhooks.User{ID: "admin-id", Name: "admin"}, Admin: true}, true
			}
			return nil, false
		}),
	}
	if tweak != nil {
		tweak(&opts)
	}
	s.d, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// As serve wires it: the upstream URL carries the virtual directory,
	// which is also the detector's prefix.
	u, _ := url.Parse(s.up.URL + prefix)
	px, err := proxy.New(proxy.Options{Upstream: u, Tap: s.d})
	if err != nil {
		t.Fatal(err)
	}
	s.front = httptest.NewServer(px)
	t.Cleanup(s.front.Close)
	return s
}

type reply struct {
	status int
	header http.Header
	body   []byte // decompressed
}

// call sends a request to base (the proxy or the simulator) with the admin
// token (a string body sent as a JSON string), asking for gzip and decoding
// the answer itself so the proxy and the detector see the compressed
// upstream body.
func (s *stack) call(base, method, path string, body any) reply {
	s.t.Helper()
	if str, ok := body.(string); ok { // a JSON string body, such as a revision comment
		b, err := json.Marshal(str)
		if err != nil {
			s.t.Fatal(err)
		}
		body = b
	}
	req := testutil.NewRequest(s.t, method, base+s.prefix+path, s.token, body)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		s.t.Fatal(err)
	}
	b := testutil.ReadBody(s.t, res, true)
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

func (s *stack) name(kind string) string { return fmt.Sprintf("%s %d", kind, s.seq.Add(1)) }

func (s *stack) must(id string, err error) string {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *stack) category() string { return s.must(s.sim.CreateCategory(s.name("cat"))) }
func (s *stack) report() string {
	return s.must(s.sim.CreateReport(s.category(), s.name("rep"), "admin"))
}
func (s *stack) connection() string { return s.must(s.sim.CreateDataConnection(s.name("conn"))) }
func (s *stack) task() string       { return s.must(s.sim.CreateTask(s.report(), s.name("task"), "admin")) }
func (s *stack) alert() string {
	return s.must(s.sim.CreateAlert(s.report(), s.name("alert"), "admin"))
}

// reportWithRevisions returns a report with two revisions and the id of the
// older one.
func (s *stack) reportWithRevisions(api string) (string, string) {
	id := s.report()
	if r := s.call(s.up.URL, "POST", api+"/reports/"+id+"/revisions", revision()); r.status/100 != 2 {
		s.t.Fatalf("add revision: %d %s", r.status, r.body)
	}
	r := s.call(s.up.URL, "GET", api+"/reports/"+id+"/revisions", nil)
	var revs []struct{ ID string }
	if err := json.Unmarshal(r.body, &revs); err != nil || len(revs) < 2 {
		s.t.Fatalf("revisions: %v %s", err, r.body)
	}
	return id, revs[0].ID
}

func revision() any {
	return map[string]any{"Comment": "c", "RevisionFile": map[string]any{"FileName": "r.trdp", "Buffer": []byte("<Report/>")}}
}

// responseID reads the id the client got back: a bare string or an object's Id.
func responseID(t *testing.T, r reply) string {
	t.Helper()
	var s string
	if json.Unmarshal(r.body, &s) == nil && s != "" {
		return s
	}
	var o struct {
		ID   string
		Data []struct{ ID string }
	}
	if json.Unmarshal(r.body, &o) == nil && o.ID == "" && len(o.Data) == 1 {
		o.ID = o.Data[0].ID // a grid answer
	}
	if o.ID == "" {
		t.Fatalf("no id in response %s", r.body)
	}
	return o.ID
}

// routeCase is one call through the proxy and the event it must produce.
type routeCase struct {
	name   string
	filter string
	event  string
	// run prepares what it needs directly on the simulator, returns the
	// method, path, body and (when known beforehand) the expected id; an
	// empty id means "the id in the response".
	run func(s *stack) (method, path string, body any, id string)
}

func routeCases() []routeCase {
	var cs []routeCase
	add := func(name, filter, event string, run func(s *stack) (string, string, any, string)) {
		cs = append(cs, routeCase{name, filter, event, run})
	}
	const (
		rep, cat, conn, task, alrt = "reports", "categories", "connections", "tasks", "alerts"
		cr, up, del, ex            = "Created", "Updated", "Deleted", "Executed"
	)
	upload := func(s *stack) any {
		return map[string]any{"Name": s.name("up"), "CategoryId": s.category(),
			"ReportFile": map[string]any{"FileName": "a.trdp", "Buffer": []byte("<Report/>")}}
	}
	connBody := func(s *stack, id string) map[string]any {
		m := map[string]any{"Name": s.name("conn"), "Provider": "System.Data.SqlClient", "ConnectionString": "Server=x"}
		if id != "" {
			m["Id"] = id
		}
		return m
	}
	taskBody := func(s *stack, id string, alert bool) map[string]any {
		m := map[string]any{"Name": s.name("task"), "Enabled": true, "Reports": []any{map[string]any{"ReportId": s.report()}}}
		if alert {
			m["Rules"] = []any{map[string]any{"Index": 0, "DataItemName": "table1", "Clauses": []any{}}}
		}
		if id != "" {
			m["Id"] = id
		}
		return m
	}
	for _, p := range []string{"/api/reportserver", "/api/reportserver/v1", "/api/reportserver/v2"} {
		v2 := strings.HasSuffix(p, "v2")
		add(p+" POST reports", rep, cr, func(s *stack) (string, string, any, string) {
			return "POST", p + "/reports", upload(s), ""
		})
		if v2 {
			add(p+" PUT reports", rep, up, func(s *stack) (string, string, any, string) {
				id := s.report()
				return "PUT", p + "/reports", map[string]any{"Id": id, "Name": s.name("rn")}, id
			})
		} else {
			add(p+" PUT reports/{id}", rep, up, func(s *stack) (string, string, any, string) {
				id := s.report()
				return "PUT", p + "/reports/" + id, map[string]any{"Name": s.name("rn")}, id
			})
		}
		add(p+" DELETE reports/{id}", rep, del, func(s *stack) (string, string, any, string) {
			id := s.report()
			return "DELETE", p + "/reports/" + id, nil, id
		})
		add(p+" DELETE reports/{id}/{rev}", rep, up, func(s *stack) (string, string, any, string) {
			id, rev := s.reportWithRevisions(p)
			return "DELETE", p + "/reports/" + id + "/" + rev, nil, id
		})
		add(p+" POST reports/{id}/revisions", rep, up, func(s *stack) (string, string, any, string) {
			id := s.report()
			return "POST", p + "/reports/" + id + "/revisions", revision(), id
		})
		add(p+" DELETE reports/{id}/revisions/{rev}", rep, up, func(s *stack) (string, string, any, string) {
			id, rev := s.reportWithRevisions(p)
			return "DELETE", p + "/reports/" + id + "/revisions/" + rev, nil, id
		})
		add(p+" POST reports/{id}/publish", rep, up, func(s *stack) (string, string, any, string) {
			id := s.report()
			return "POST", p + "/reports/" + id + "/publish", "Published.", id
		})
		add(p+" POST categories", cat, cr, func(s *stack) (string, string, any, string) {
			return "POST", p + "/categories", map[string]any{"Name": s.name("cat")}, ""
		})
		add(p+" PUT categories", cat, up, func(s *stack) (string, string, any, string) {
			id := s.category()
			return "PUT", p + "/categories", map[string]any{"Id": id, "Name": s.name("cat")}, id
		})
		add(p+" DELETE categories/{id}", cat, del, func(s *stack) (string, string, any, string) {
			id := s.category()
			return "DELETE", p + "/categories/" + id, nil, id
		})
		add(p+" POST dataconnections", conn, cr, func(s *stack) (string, string, any, string) {
			return "POST", p + "/dataconnections", connBody(s, ""), ""
		})
		add(p+" PUT dataconnections", conn, up, func(s *stack) (string, string, any, string) {
			id := s.connection()
			return "PUT", p + "/dataconnections", connBody(s, id), id
		})
		add(p+" DELETE dataconnections/{id}", conn, del, func(s *stack) (string, string, any, string) {
			id := s.connection()
			return "DELETE", p + "/dataconnections/" + id, nil, id
		})
		for _, k := range []struct {
			seg, filter string
			alert       bool
		}{{"scheduledtasks", task, false}, {"dataalerts", alrt, true}} {
			mk := s2(k.alert)
			add(p+" POST "+k.seg, k.filter, cr, func(s *stack) (string, string, any, string) {
				return "POST", p + "/" + k.seg, taskBody(s, "", k.alert), ""
			})
			add(p+" PUT "+k.seg, k.filter, up, func(s *stack) (string, string, any, string) {
				id := mk(s)
				return "PUT", p + "/" + k.seg, taskBody(s, id, k.alert), id
			})
			add(p+" DELETE "+k.seg+"/{id}", k.filter, del, func(s *stack) (string, string, any, string) {
				id := mk(s)
				return "DELETE", p + "/" + k.seg + "/" + id, nil, id
			})
			add(p+" POST executions/"+k.seg+"/{id}", k.filter, ex, func(s *stack) (string, string, any, string) {
				id := mk(s)
				return "POST", p + "/executions/" + k.seg + "/" + id, nil, id
			})
		}
	}
	p := "/api/reportserver/v3"
	add("v3 POST reports", rep, cr, func(s *stack) (string, string, any, string) {
		return "POST", p + "/reports", upload(s), ""
	})
	add("v3 PUT reports/{id}", rep, up, func(s *stack) (string, string, any, string) {
		id := s.report()
		return "PUT", p + "/reports/" + id, map[string]any{"Name": s.name("rn")}, id
	})
	add("v3 DELETE reports/{id}", rep, del, func(s *stack) (string, string, any, string) {
		id := s.report()
		return "DELETE", p + "/reports/" + id, nil, id
	})
	add("v3 POST reports/{id}/revisions", rep, up, func(s *stack) (string, string, any, string) {
		id := s.report()
		return "POST", p + "/reports/" + id + "/revisions", revision(), id
	})
	add("v3 POST reports/{id}/publish", rep, up, func(s *stack) (string, string, any, string) {
		id := s.report()
		return "POST", p + "/reports/" + id + "/publish", "Initial published version.", id
	})
	for _, k := range []struct {
		seg, filter string
		mk          func(*stack) string
		body        func(*stack, string) any
	}{
		{"categories", cat, (*stack).category, func(s *stack, _ string) any { return map[string]any{"Name": s.name("cat")} }},
		{"data-connections", conn, (*stack).connection, func(s *stack, _ string) any { return connBody(s, "") }},
		{"scheduled-tasks", task, (*stack).task, func(s *stack, _ string) any { return taskBody(s, "", false) }},
		{"data-alerts", alrt, (*stack).alert, func(s *stack, _ string) any { return taskBody(s, "", true) }},
	} {
		add("v3 POST "+k.seg, k.filter, cr, func(s *stack) (string, string, any, string) {
			return "POST", p + "/" + k.seg, k.body(s, ""), ""
		})
		add("v3 PUT "+k.seg+"/{id}", k.filter, up, func(s *stack) (string, string, any, string) {
			id := k.mk(s)
			return "PUT", p + "/" + k.seg + "/" + id, k.body(s, id), id
		})
		add("v3 DELETE "+k.seg+"/{id}", k.filter, del, func(s *stack) (string, string, any, string) {
			id := k.mk(s)
			return "DELETE", p + "/" + k.seg + "/" + id, nil, id
		})
		if k.filter == task || k.filter == alrt {
			add("v3 POST "+k.seg+"/{id}/execute", k.filter, ex, func(s *stack) (string, string, any, string) {
				id := k.mk(s)
				return "POST", p + "/" + k.seg + "/" + id + "/execute", nil, id
			})
		}
	}
	// The manager's routes (inferred rules).
	add("manager POST api/reportserver/report", rep, cr, func(s *stack) (string, string, any, string) {
		return "POST", "/api/reportserver/report", map[string]any{"reportName": s.name("up"), "categoryName": s.catName(),
			"description": "d", "reportContent": []byte("<Report/>"), "extension": "trdp"}, ""
	})
	add("manager POST Category/Create", cat, cr, func(s *stack) (string, string, any, string) {
		return "POST", "/Category/Create", map[string]any{"Name": s.name("cat"), "CanModify": true, "CanDelete": true, "ReportsCount": 0}, ""
	})
	return cs
}

// catName creates a category and returns its name.
func (s *stack) catName() string {
	n := s.name("cat")
	s.must(s.sim.CreateCategory(n))
	return n
}

func s2(alert bool) func(*stack) string {
	if alert {
		return (*stack).alert
	}
	return (*stack).task
}

// newEvents returns the stored events whose ids are not in seen, and adds
// them to seen.
func newEvents(t *testing.T, db *store.DB, seen map[string]bool) []*rswebhooks.Event {
	t.Helper()
	var out []*rswebhooks.Event
	for _, e := range storedEvents(t, db) {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// TestEveryRouteThroughProxy walks every event rule of BuiltinRules through
// the real proxy against the simulator and checks the exact event.
func TestEveryRouteThroughProxy(t *testing.T) {
	for _, prefix := range []string{"", "/reporting"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			s := newStack(t, prefix)
			seen := map[string]bool{}
			covered := map[*compiled]bool{}
			for _, c := range routeCases() {
				t.Run(c.name, func(t *testing.T) {
					method, path, body, id := c.run(s)
					r := s.call(s.front.URL, method, path, body)
					if r.status/100 != 2 {
						t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
					}
					if id == "" {
						id = responseID(t, r)
					}
					es := newEvents(t, s.db, seen)
					if len(es) != 1 {
						t.Fatalf("%s %s: %d events, want 1: %+v", method, path, len(es), es)
					}
					e := es[0]
					if e.Filter != c.filter || e.Type != c.event || e.ResourceID != id {
						t.Fatalf("%s %s: event (%s, %s, %q), want (%s, %s, %q)", method, path,
							e.Filter, e.Type, e.ResourceID, c.filter, c.event, id)
					}
					if e.Method != method || e.Path != s.prefix+path || e.UserName != "admin" || e.RequestID == "" || e.Source != rswebhooks.SourceProxy {
						t.Errorf("event details: %+v", e)
					}
					if mb, ok := body.(map[string]any); ok && mb["Name"] != nil && e.ResourceName != mb["Name"] {
						t.Errorf("ResourceName = %q, want %q", e.ResourceName, mb["Name"])
					}
					if mb, ok := body.(map[string]any); ok && mb["reportName"] != nil && e.ResourceName != mb["reportName"] {
						t.Errorf("ResourceName = %q, want reportName %q", e.ResourceName, mb["reportName"])
					}
					m, ok := s.d.m.lookup(method, s.prefix+path)
					if !ok {
						t.Fatal("no rule matched")
					}
					covered[m.rule] = true
					if e.APIVersion != m.rule.APIVersion {
						t.Errorf("ApiVersion = %q, want %q", e.APIVersion, m.rule.APIVersion)
					}
				})
			}
			// Every event rule of the built-in table was exercised.
			for _, r := range BuiltinRules() {
				if r.Ignore() {
					continue
				}
				m, ok := s.d.m.lookup(r.Method, s.prefix+"/"+strings.NewReplacer("{", "x", "}", "", "?", "").Replace(r.Path))
				if !ok || !covered[m.rule] {
					t.Errorf("rule %s has no route case", r)
				}
			}
			if got := promtest.ToFloat64(s.d.metrics.Lost.WithLabelValues("error")); got != 0 {
				t.Errorf("events_lost_total = %v", got)
			}
		})
	}
}

// TestNoEventsThroughProxy: failures, reads, rendering, tokens, locks,
// favourites, documents and unmatched routes produce no event; an unmatched
// 2xx is counted.
func TestNoEventsThroughProxy(t *testing.T) {
	s := newStack(t, "")
	seen := map[string]bool{}
	newEvents(t, s.db, seen)
	rep, cat := s.report(), s.category()
	type step struct {
		method, path string
		body         any
		status       int // expected class: 2, 4 or 5
	}
	steps := []step{
		{"POST", "/api/reportserver/v2/categories", map[string]any{}, 4},
		{"DELETE", "/api/reportserver/v2/categories/nope", nil, 4},
		{"PUT", "/api/reportserver/v2/reports", map[string]any{"Id": "nope", "Name": "x"}, 4},
		{"GET", "/api/reportserver/v2/reports", nil, 2},
		{"GET", "/api/reportserver/v3/categories/" + cat, nil, 2},
		{"PUT", "/api/reportserver/v2/reports/" + rep + "/lock", nil, 2},
		{"DELETE", "/api/reportserver/v2/reports/" + rep + "/unlock", nil, 2},
		{"PUT", "/api/reportserver/reports/" + rep + "/lock", nil, 2},
		{"DELETE", "/api/reportserver/reports/" + rep + "/lock", nil, 2},
		{"PUT", "/api/reportserver/v1/reports/" + rep + "/favorite", nil, 2},
		{"DELETE", "/api/reportserver/v1/reports/" + rep + "/favorite", nil, 2},
		{"PUT", "/api/reportserver/v2/reports/" + rep + "/shelve", []byte("<Report/>"), 2},
		{"DELETE", "/api/reportserver/v2/reports/" + rep + "/shelve", nil, 2},
		{"POST", "/api/reportserver/v2/documents", map[string]any{"ReportId": rep, "Format": "PDF"}, 2},
		{"POST", "/api/reports/clients", map[string]any{}, 2},
	}
	for _, st := range steps {
		r := s.call(s.front.URL, st.method, st.path, st.body)
		if r.status/100 != st.status {
			t.Fatalf("%s %s: status %d, want %dxx: %s", st.method, st.path, r.status, st.status, r.body)
		}
	}
	// /Token with a form body.
	res, err := http.PostForm(s.front.URL+"/Token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/Token: %d", res.StatusCode)
	}
	// A 5xx from the server: the change did not happen, no event.
	s.sim.FailNext(1, http.StatusInternalServerError)
	if r := s.call(s.front.URL, "DELETE", "/api/reportserver/v2/categories/"+cat, nil); r.status != 500 {
		t.Fatalf("FailNext: status %d", r.status)
	}
	if es := newEvents(t, s.db, seen); len(es) != 0 {
		t.Fatalf("%d events, want none: first %+v", len(es), es[0])
	}
	for _, m := range unmatchedMethods {
		if got := promtest.ToFloat64(s.d.metrics.Unmatched.WithLabelValues(m)); got != 0 {
			t.Errorf("unmatched{%s} = %v before the unmatched calls", m, got)
		}
	}

	// Unmatched 2xx non-safe calls are counted, per method; GET is not.
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "GET"} {
		if r := s.call(s.front.URL, m, "/_sim/echo", []byte("x")); r.status/100 != 2 {
			t.Fatalf("%s /_sim/echo: %d", m, r.status)
		}
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if got := promtest.ToFloat64(s.d.metrics.Unmatched.WithLabelValues(m)); got != 1 {
			t.Errorf("unmatched{%s} = %v, want 1", m, got)
		}
	}
	if es := newEvents(t, s.db, seen); len(es) != 0 {
		t.Fatalf("unmatched calls produced %d events", len(es))
	}
	// And the category survived the failed delete: a real delete now fires.
	if r := s.call(s.front.URL, "DELETE", "/api/reportserver/v2/categories/"+cat, nil); r.status/100 != 2 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if es := newEvents(t, s.db, seen); len(es) != 1 || es[0].ResourceID != cat {
		t.Fatalf("events after the real delete: %+v", es)
	}
	// Logging out (last: it revokes the token) is not an event either.
	if r := s.call(s.front.URL, "POST", "/api/reportserver/v2/logout", nil); r.status/100 != 2 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if es := newEvents(t, s.db, seen); len(es) != 0 {
		t.Fatalf("logout produced %d events", len(es))
	}
	if got := promtest.ToFloat64(s.d.metrics.Unmatched.WithLabelValues("POST")); got != 1 {
		t.Errorf("unmatched{POST} = %v after logout, want 1", got)
	}
}

// TestStoreDownThroughProxy: with the store closed the client still gets the
// report server's response unchanged and the loss is counted.
func TestStoreDownThroughProxy(t *testing.T) {
	s := newStack(t, "")
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	r := s.call(s.front.URL, "POST", "/api/reportserver/v2/categories", map[string]any{"Name": "while down"})
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	var c struct{ ID, Name string }
	if err := json.Unmarshal(r.body, &c); err != nil || c.ID == "" || c.Name != "while down" {
		t.Fatalf("body %s changed or unreadable: %v", r.body, err)
	}
	if got := promtest.ToFloat64(s.d.metrics.Lost.WithLabelValues("error")); got != 1 {
		t.Errorf("events_lost_total = %v, want 1", got)
	}
}

// TestReportCategoryThroughProxy: a report's create and update through the
// real proxy carry ResourceName and the category the call names (CategoryId,
// or the manager upload's categoryName); other resources never do.
func TestReportCategoryThroughProxy(t *testing.T) {
	s := newStack(t, "")
	cat := s.category()
	rep := s.report()
	finance := s.must(s.sim.CreateCategory("Finance"))
	seen := map[string]bool{}
	newEvents(t, s.db, seen)
	for _, tc := range []struct {
		name, method, path  string
		body                any
		wantName, wantCat   string
		wantCatName, filter string
	}{
		{"v2 upload", "POST", "/api/reportserver/v2/reports", map[string]any{"Name": "Ledger", "CategoryId": cat,
			"ReportFile": map[string]any{"FileName": "a.trdp", "Buffer": []byte("<Report/>")}}, "Ledger", cat, "", "reports"},
		{"v2 update", "PUT", "/api/reportserver/v2/reports", map[string]any{"Id": rep, "Name": "Ledger 2", "CategoryId": cat}, "Ledger 2", cat, "", "reports"},
		{"v3 update", "PUT", "/api/reportserver/v3/reports/" + rep, map[string]any{"Name": "Ledger 3", "CategoryId": cat}, "Ledger 3", cat, "", "reports"},
		{"manager upload", "POST", "/api/reportserver/report", map[string]any{"reportName": "Ledger 4", "categoryName": "Finance",
			"description": "d", "reportContent": []byte("<Report/>"), "extension": "trdp"}, "Ledger 4", finance, "Finance", "reports"},
		{"a category", "POST", "/api/reportserver/v2/categories", map[string]any{"Name": "Plain", "CategoryId": "x"}, "Plain", "", "", "categories"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := s.call(s.front.URL, tc.method, tc.path, tc.body); r.status/100 != 2 {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
			}
			es := newEvents(t, s.db, seen)
			if len(es) != 1 {
				t.Fatalf("%d events, want 1", len(es))
			}
			e := es[0]
			if e.Filter != tc.filter || e.ResourceName != tc.wantName || e.CategoryID != tc.wantCat {
				t.Errorf("event %s %q category %q, want %s %q category %q", e.Filter, e.ResourceName, e.CategoryID, tc.filter, tc.wantName, tc.wantCat)
			}
			if tc.wantCatName != "" && e.CategoryName != tc.wantCatName {
				t.Errorf("CategoryName %q, want %q", e.CategoryName, tc.wantCatName)
			}
		})
	}
}
