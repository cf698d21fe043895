package simulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

var file = map[string]any{"FileName": "r.trdp", "Buffer": base64.StdEncoding.EncodeToString([]byte("PK report"))}

// TestCreateResponses pins the create answers per API generation: v1 a bare
// JSON string (200), v2 an object with Id (200), v3 an object with Id
// (201 + Location).
func TestCreateResponses(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	cat, rep := e.fixture()

	bodies := map[string]func(n int) any{
		"categories": func(n int) any { return map[string]any{"Name": fmt.Sprint("C", n)} },
		"dataconnections": func(n int) any {
			return map[string]any{"Name": fmt.Sprint("D", n), "Provider": "Npgsql", "ConnectionString": "Host=x"}
		},
		"reports": func(n int) any {
			return map[string]any{"Name": fmt.Sprint("R", n), "CategoryId": cat, "ReportFile": file}
		},
		"scheduledtasks": func(n int) any {
			return map[string]any{"Name": fmt.Sprint("T", n), "Enabled": true, "Reports": []any{map[string]any{"ReportId": rep, "DocumentFormat": "PDF"}}}
		},
		"dataalerts": func(n int) any {
			return map[string]any{"Name": fmt.Sprint("A", n), "ReportId": rep, "DocumentFormat": "PDF",
				"Rules": []any{map[string]any{"DataItemName": "t", "Clauses": []any{map[string]any{"Column": "c", "Operator": "Equal", "Value": 1}}}}}
		},
	}
	v3name := map[string]string{"categories": "categories", "dataconnections": "data-connections", "reports": "reports",
		"scheduledtasks": "scheduled-tasks", "dataalerts": "data-alerts"}
	filter := map[string]string{"categories": "categories", "dataconnections": "connections", "reports": "reports",
		"scheduledtasks": "tasks", "dataalerts": "alerts"}

	n := 0
	for res, body := range bodies {
		for _, tc := range []struct {
			base   string
			code   int
			bare   bool
			header bool
		}{
			{"/api/reportserver/", 200, true, false},
			{"/api/reportserver/v1/", 200, true, false},
			{"/api/reportserver/v2/", 200, false, false},
			{"/api/reportserver/v3/", 201, false, true},
		} {
			path := tc.base + res
			if strings.HasSuffix(tc.base, "v3/") {
				path = tc.base + v3name[res]
			}
			t.Run(path, func(t *testing.T) {
				n++
				r := e.do(admin, "POST", path, body(n))
				want(t, r, tc.code)
				if tc.bare != (r.body[0] == '"') {
					t.Fatalf("bare string = %v, body %s", r.body[0] == '"', r.body)
				}
				id := r.id(t)
				if len(id) != 11 {
					t.Errorf("id %q is not 11 hex characters", id)
				}
				loc := r.header.Get("Location")
				if tc.header != (loc != "") || (loc != "" && !strings.HasSuffix(loc, "/"+id)) {
					t.Errorf("Location %q", loc)
				}
				if got, _ := e.sim.Lookup(id); got != filter[res] {
					t.Errorf("Lookup(%s) = %q, want %q", id, got, filter[res])
				}
			})
		}
	}

	t.Run("documents answer 201 with Location", func(t *testing.T) {
		for _, base := range []string{"/api/reportserver/", "/api/reportserver/v2/", "/api/reportserver/v3/"} {
			r := e.do(admin, "POST", base+"documents", map[string]any{"ReportId": rep, "Format": "PDF"})
			want(t, r, 201)
			id := r.id(t)
			if !strings.HasSuffix(r.header.Get("Location"), "/documents/"+id) {
				t.Fatalf("Location %q", r.header.Get("Location"))
			}
			d := e.do(admin, "GET", base+"documents/"+id+"?content-disposition=attachment", nil)
			want(t, d, 200)
			if d.header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(d.header.Get("Content-Disposition"), "attachment") {
				t.Fatalf("document headers %v", d.header)
			}
			if _, ok := e.sim.Lookup(id); ok {
				t.Fatal("a document is not a resource")
			}
		}
	})
}

func TestUpdatesAndDeletes(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")

	newCat := func() string {
		id, err := e.sim.CreateCategory("cat" + simulatorID(t))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	newConn := func() string {
		id, err := e.sim.CreateDataConnection("conn" + simulatorID(t))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	_, rep := e.fixture()
	newTask := func() string {
		id, err := e.sim.CreateTask(rep, "t", "")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	newAlert := func() string {
		id, err := e.sim.CreateAlert(rep, "a", "")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	conn := func(id string) map[string]any {
		return map[string]any{"Id": id, "Name": "renamed" + id, "Provider": "Npgsql", "ConnectionString": "Host=y"}
	}
	task := func(id string) map[string]any {
		return map[string]any{"Id": id, "Name": "renamed", "Reports": []any{map[string]any{"ReportId": rep}},
			"Rules": []any{map[string]any{"DataItemName": "t"}}}
	}

	tests := []struct {
		name   string
		id     func() string
		method string
		path   string // %s = id
		body   func(id string) any
		code   int
		check  string // substring of the response
	}{
		{"v1 PUT categories (body Id)", newCat, "PUT", "/api/reportserver/categories", func(id string) any { return map[string]any{"Id": id, "Name": "n" + id} }, 200, `"Name":"n`},
		{"v2 PUT categories (body Id)", newCat, "PUT", "/api/reportserver/v2/categories", func(id string) any { return map[string]any{"id": id, "name": "m" + id} }, 200, `"Name":"m`},
		{"v3 PUT categories/{id}", newCat, "PUT", "/api/reportserver/v3/categories/%s", func(id string) any { return map[string]any{"Name": "k" + id} }, 200, `"Name":"k`},
		{"DELETE categories/{id}", newCat, "DELETE", "/api/reportserver/categories/%s", nil, 204, ""},
		{"v3 DELETE categories/{id}", newCat, "DELETE", "/api/reportserver/v3/categories/%s", nil, 204, ""},
		{"v1 PUT dataconnections (body Id)", newConn, "PUT", "/api/reportserver/dataconnections", func(id string) any { return conn(id) }, 200, `"Provider":"Npgsql"`},
		{"v2 PUT dataconnections (body Id)", newConn, "PUT", "/api/reportserver/v2/dataconnections", func(id string) any { return conn(id) }, 200, `"ConnectionString":"Host=y"`},
		{"v3 PUT data-connections/{id}", newConn, "PUT", "/api/reportserver/v3/data-connections/%s", func(id string) any { c := conn(id); delete(c, "Id"); return c }, 200, `"Name":"renamed`},
		{"v2 DELETE dataconnections/{id}", newConn, "DELETE", "/api/reportserver/v2/dataconnections/%s", nil, 204, ""},
		{"v3 DELETE data-connections/{id}", newConn, "DELETE", "/api/reportserver/v3/data-connections/%s", nil, 204, ""},
		{"v1 PUT scheduledtasks (body Id) answers ScheduledTaskV1", newTask, "PUT", "/api/reportserver/scheduledtasks", func(id string) any { return task(id) }, 200, `"ReportId":"`},
		{"v2 PUT scheduledtasks answers ScheduledTask", newTask, "PUT", "/api/reportserver/v2/scheduledtasks", func(id string) any { return task(id) }, 200, `"Reports":[`},
		{"v3 PUT scheduled-tasks/{id}", newTask, "PUT", "/api/reportserver/v3/scheduled-tasks/%s", func(id string) any { return task(id) }, 200, `"Name":"renamed"`},
		{"v1 DELETE scheduledtasks/{id}", newTask, "DELETE", "/api/reportserver/v1/scheduledtasks/%s", nil, 204, ""},
		{"v3 DELETE scheduled-tasks/{id}", newTask, "DELETE", "/api/reportserver/v3/scheduled-tasks/%s", nil, 204, ""},
		{"v1 PUT dataalerts answers rules", newAlert, "PUT", "/api/reportserver/dataalerts", func(id string) any { return task(id) }, 200, `"Rules":[{"DataItemName":"t"`},
		{"v2 PUT dataalerts", newAlert, "PUT", "/api/reportserver/v2/dataalerts", func(id string) any { return task(id) }, 200, `"Index":0`},
		{"v3 PUT data-alerts/{id}", newAlert, "PUT", "/api/reportserver/v3/data-alerts/%s", func(id string) any { return task(id) }, 200, `"Rules"`},
		{"v2 DELETE dataalerts/{id}", newAlert, "DELETE", "/api/reportserver/v2/dataalerts/%s", nil, 204, ""},
		{"v3 DELETE data-alerts/{id}", newAlert, "DELETE", "/api/reportserver/v3/data-alerts/%s", nil, 204, ""},
		// Errors.
		{"PUT unknown id", newCat, "PUT", "/api/reportserver/v2/categories", func(string) any { return map[string]any{"Id": "00000000000", "Name": "x"} }, 404, `"Message"`},
		{"PUT without Id", newCat, "PUT", "/api/reportserver/v2/categories", func(string) any { return map[string]any{"Name": "x"} }, 400, "Id is required"},
		{"PUT bad JSON", newCat, "PUT", "/api/reportserver/v2/categories", func(string) any { return "{" }, 400, "not valid JSON"},
		{"PUT empty name", newCat, "PUT", "/api/reportserver/v2/categories", func(id string) any { return map[string]any{"Id": id} }, 400, "Name is required"},
		{"DELETE unknown", newCat, "DELETE", "/api/reportserver/v2/scheduledtasks/00000000000", nil, 404, ""},
		{"task id on the alert route", newTask, "DELETE", "/api/reportserver/v2/dataalerts/%s", nil, 404, ""},
		{"task with unknown report", newTask, "PUT", "/api/reportserver/v2/scheduledtasks", func(id string) any {
			return map[string]any{"Id": id, "Name": "x", "Reports": []any{map[string]any{"ReportId": "nope"}}}
		}, 400, "ReportId"},
		{"alert without rules", newAlert, "PUT", "/api/reportserver/v2/dataalerts", func(id string) any {
			return map[string]any{"Id": id, "Name": "x", "ReportId": rep}
		}, 400, "Rules"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id()
			path := tc.path
			if strings.Contains(path, "%s") {
				path = fmt.Sprintf(path, id)
			}
			var body any
			if tc.body != nil {
				body = tc.body(id)
			}
			r := e.do(admin, tc.method, path, body)
			want(t, r, tc.code)
			if !strings.Contains(string(r.body), tc.check) {
				t.Fatalf("body %s lacks %s", r.body, tc.check)
			}
			_, exists := e.sim.Lookup(id)
			if tc.method == "DELETE" && tc.code == 204 && exists {
				t.Fatal("still exists after DELETE")
			}
			if tc.code >= 400 && !exists {
				t.Fatal("a refused call removed the resource")
			}
		})
	}
}

func TestCategoryDeleteOnlyWhenEmpty(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	cat, rep := e.fixture()
	r := e.do(admin, "DELETE", "/api/reportserver/v2/categories/"+cat, nil)
	want(t, r, 400)
	if !strings.Contains(string(r.body), "contains reports") {
		t.Fatalf("body %s", r.body)
	}
	want(t, e.do(admin, "DELETE", "/api/reportserver/v2/reports/"+rep, nil), 204)
	want(t, e.do(admin, "DELETE", "/api/reportserver/v2/categories/"+cat, nil), 204)
	want(t, e.do(admin, "GET", "/api/reportserver/v2/categories/"+cat, nil), 404)
}

func TestReportLifecycle(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice := e.token("admin"), e.token("alice")
	cat, _ := e.fixture()
	cat2, _ := e.fixture()

	r := e.do(admin, "POST", "/api/reportserver/v2/reports", map[string]any{"name": "Sales", "categoryId": cat, "reportFile": file})
	want(t, r, 200)
	var info simulator.ReportInfo
	r.decode(t, &info)
	id := info.Id
	if info.Extension != ".trdp" || info.CreatedByName != "admin" || info.LastRevisionId == "" || !info.CanEdit {
		t.Fatalf("ReportInfo %+v", info)
	}
	rev := func() []simulator.RevisionInfo {
		var out []simulator.RevisionInfo
		e.do(admin, "GET", "/api/reportserver/v2/reports/"+id+"/revisions", nil).decode(t, &out)
		return out
	}

	steps := []struct {
		name, token, method, path string
		body                      any
		code                      int
	}{
		{"v1 PUT reports/{id}", admin, "PUT", "/api/reportserver/reports/" + id, map[string]any{"Name": "Sales 2", "CategoryId": cat2}, 200},
		{"v2 PUT reports (body Id)", admin, "PUT", "/api/reportserver/v2/reports", map[string]any{"Id": id, "Name": "Sales 3"}, 200},
		{"v3 PUT reports/{id}", admin, "PUT", "/api/reportserver/v3/reports/" + id, map[string]any{"Name": "Sales 4", "Description": "d"}, 200},
		{"v2 PUT reports without Id", admin, "PUT", "/api/reportserver/v2/reports", map[string]any{"Name": "x"}, 400},
		{"v1 add revision", admin, "POST", "/api/reportserver/reports/" + id + "/revisions", map[string]any{"Comment": "c1", "RevisionFile": file}, 204},
		{"v2 add revision", admin, "POST", "/api/reportserver/v2/reports/" + id + "/revisions", map[string]any{"Comment": "c2", "RevisionFile": file}, 204},
		{"revision without file", admin, "POST", "/api/reportserver/v2/reports/" + id + "/revisions", map[string]any{"Comment": "c3"}, 400},
		{"shelve", admin, "PUT", "/api/reportserver/v2/reports/" + id + "/shelve", "raw shelve bytes", 204},
		{"get shelve", admin, "GET", "/api/reportserver/v2/reports/" + id + "/shelve", nil, 200},
		{"unshelve", admin, "DELETE", "/api/reportserver/reports/" + id + "/shelve", nil, 204},
		{"get shelve after delete", admin, "GET", "/api/reportserver/v2/reports/" + id + "/shelve", nil, 404},
		{"favorite (Read is enough)", alice, "PUT", "/api/reportserver/reports/" + id + "/favorite", nil, 204},
		{"unfavorite", alice, "DELETE", "/api/reportserver/v2/reports/" + id + "/favorite", nil, 204},
		{"lock", admin, "PUT", "/api/reportserver/reports/" + id + "/lock", nil, 204},
		{"unlock (2016 spelling)", admin, "DELETE", "/api/reportserver/reports/" + id + "/lock", nil, 204},
		{"lock v2", admin, "PUT", "/api/reportserver/v2/reports/" + id + "/lock", nil, 204},
		{"unlock (current spelling)", admin, "DELETE", "/api/reportserver/v2/reports/" + id + "/unlock", nil, 204},
		{"user without Modify cannot lock", alice, "PUT", "/api/reportserver/reports/" + id + "/lock", nil, 403},
		{"user without Modify cannot update", alice, "PUT", "/api/reportserver/v2/reports", map[string]any{"Id": id, "Name": "x"}, 403},
		{"user without Delete cannot delete", alice, "DELETE", "/api/reportserver/v2/reports/" + id, nil, 403},
		{"v3 publish", admin, "POST", "/api/reportserver/v3/reports/" + id + "/publish", `"Initial published version."`, 204},
		{"v3 publish needs a JSON string", admin, "POST", "/api/reportserver/v3/reports/" + id + "/publish", map[string]any{"x": 1}, 400},
		{"parameters", admin, "GET", "/api/reportserver/reports/" + id + "/parameters", nil, 200},
		{"unknown report", admin, "GET", "/api/reportserver/v2/reports/00000000000", nil, 404},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { want(t, e.do(st.token, st.method, st.path, st.body), st.code) })
	}

	var got simulator.ReportInfo
	e.do(admin, "GET", "/api/reportserver/v3/reports/"+id, nil).decode(t, &got)
	if got.Name != "Sales 4" || got.CategoryId != cat2 || got.Description != "d" || got.LockedBy != "" {
		t.Fatalf("after updates %+v", got)
	}
	revs := rev()
	if len(revs) != 4 || revs[3].Comment != "Initial published version." {
		t.Fatalf("revisions %+v", revs)
	}

	t.Run("revision content and latest", func(t *testing.T) {
		var c simulator.ReportRevisionContent
		e.do(admin, "GET", "/api/reportserver/v2/reports/"+id+"/revisions/"+revs[1].Id, nil).decode(t, &c)
		if string(c.Content) != "PK report" {
			t.Fatalf("content %q", c.Content)
		}
		e.do(admin, "GET", "/api/reportserver/v2/reports/"+id+"/revisions/latest", nil).decode(t, &c)
		if c.Id != revs[3].Id {
			t.Fatalf("latest %s, want %s", c.Id, revs[3].Id)
		}
	})
	t.Run("delete revisions both ways", func(t *testing.T) {
		want(t, e.do(admin, "DELETE", "/api/reportserver/reports/"+id+"/"+revs[0].Id, nil), 204)
		want(t, e.do(admin, "DELETE", "/api/reportserver/v2/reports/"+id+"/revisions/"+revs[1].Id, nil), 204)
		want(t, e.do(admin, "DELETE", "/api/reportserver/v2/reports/"+id+"/revisions/"+revs[1].Id, nil), 404)
		if n := len(rev()); n != 2 {
			t.Fatalf("%d revisions left", n)
		}
	})
	t.Run("lock conflict between users", func(t *testing.T) {
		if _, err := e.sim.Grant("alice", simulator.AccessModify, simulator.ScopeSpecificReport, id); err != nil {
			t.Fatal(err)
		}
		want(t, e.do(admin, "PUT", "/api/reportserver/reports/"+id+"/lock", nil), 204)
		want(t, e.do(alice, "PUT", "/api/reportserver/reports/"+id+"/lock", nil), 409)
		want(t, e.do(alice, "PUT", "/api/reportserver/v2/reports", map[string]any{"Id": id, "Name": "x"}), 409)
		want(t, e.do(alice, "DELETE", "/api/reportserver/v2/reports/"+id+"/unlock", nil), 409)
		want(t, e.do(admin, "DELETE", "/api/reportserver/v2/reports/"+id+"/unlock", nil), 204)
		want(t, e.do(alice, "PUT", "/api/reportserver/v2/reports", map[string]any{"Id": id, "Name": "by alice"}), 200)
	})
	t.Run("deleting a report deletes tasks that only had it", func(t *testing.T) {
		task, err := e.sim.CreateTask(id, "t", "")
		if err != nil {
			t.Fatal(err)
		}
		alert, err := e.sim.CreateAlert(id, "a", "")
		if err != nil {
			t.Fatal(err)
		}
		want(t, e.do(admin, "DELETE", "/api/reportserver/v3/reports/"+id, nil), 204)
		for _, x := range []string{id, task, alert} {
			if _, ok := e.sim.Lookup(x); ok {
				t.Errorf("%s survived", x)
			}
		}
	})
}

func TestReportCreateRefusals(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice := e.token("admin"), e.token("alice")
	cat, _ := e.fixture()
	tests := []struct {
		name  string
		token string
		body  any
		code  int
		msg   string
	}{
		{"no name", admin, map[string]any{"CategoryId": cat, "ReportFile": file}, 400, "Name"},
		{"no file", admin, map[string]any{"Name": "x", "CategoryId": cat}, 400, "ReportFile"},
		{"bad base64", admin, `{"Name":"x","CategoryId":"` + cat + `","ReportFile":{"Buffer":"!!"}}`, 400, "JSON"},
		{"unknown category", admin, map[string]any{"Name": "x", "CategoryId": "nope", "ReportFile": file}, 400, "CategoryId"},
		{"duplicate name", admin, map[string]any{"Name": "Report", "CategoryId": cat, "ReportFile": file}, 400, "already exists"},
		{"empty body", admin, "", 400, "empty"},
		{"user without Create", alice, map[string]any{"Name": "x", "CategoryId": cat, "ReportFile": file}, 403, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.token, "POST", "/api/reportserver/v2/reports", tc.body)
			want(t, r, tc.code)
			if !strings.Contains(string(r.body), tc.msg) {
				t.Fatalf("body %s lacks %q", r.body, tc.msg)
			}
		})
	}

	t.Run("v3 multipart upload and revision", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("Name", "Multipart")
		_ = mw.WriteField("CategoryId", cat)
		fw, _ := mw.CreateFormFile("ReportFile", "m.trdx")
		_, _ = fw.Write([]byte("<Report/>"))
		_ = mw.Close()
		r := postMultipart(t, e.srv.URL+"/api/reportserver/v3/reports", admin, mw, buf.Bytes())
		want(t, r, 201)
		var info simulator.ReportInfo
		r.decode(t, &info)
		if info.Extension != ".trdx" {
			t.Fatalf("%+v", info)
		}
		want(t, postMultipart(t, e.srv.URL+"/api/reportserver/v3/reports/"+info.Id+"/revisions", admin, mw, buf.Bytes()), 204)
	})

	// Files under two field names: every upload stores the same one (the
	// first field by name), never one picked by map order.
	t.Run("v3 multipart with two files", func(t *testing.T) {
		for i := range 12 {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			_ = mw.WriteField("Name", fmt.Sprint("Two files ", i))
			_ = mw.WriteField("CategoryId", cat)
			for _, f := range []struct{ field, name string }{{"ZFile", "z.trdp"}, {"ReportFile", "m.trdx"}} {
				fw, _ := mw.CreateFormFile(f.field, f.name)
				_, _ = fw.Write([]byte("<Report/>"))
			}
			_ = mw.Close()
			r := postMultipart(t, e.srv.URL+"/api/reportserver/v3/reports", admin, mw, buf.Bytes())
			want(t, r, 201)
			var info simulator.ReportInfo
			r.decode(t, &info)
			if info.Extension != ".trdx" {
				t.Fatalf("upload %d stored the file with extension %q, want .trdx (field ReportFile)", i, info.Extension)
			}
		}
	})
}

func TestReadPermissionsFilterAndForbid(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice, bob := e.token("admin"), e.token("alice"), e.token("bob")
	_, rep := e.fixture()
	conn, _ := e.sim.CreateDataConnection("secret db")
	adminTask, _ := e.sim.CreateTask(rep, "admin's", "")

	// alice creates a task and an alert through the API.
	r := e.do(alice, "POST", "/api/reportserver/v2/scheduledtasks", map[string]any{"Name": "mine", "Reports": []any{map[string]any{"ReportId": rep}}})
	want(t, r, 200)
	aliceTask := r.id(t)
	r = e.do(alice, "POST", "/api/reportserver/dataalerts", map[string]any{"Name": "mine", "ReportId": rep, "Rules": []any{map[string]any{"DataItemName": "x"}}})
	want(t, r, 200)
	aliceAlert := r.id(t)

	count := func(token, path string) int {
		var list []json.RawMessage
		r := e.do(token, "GET", path, nil)
		want(t, r, 200)
		r.decode(t, &list)
		return len(list)
	}
	tests := []struct {
		name, token, path string
		n                 int
	}{
		{"admin sees all tasks", admin, "/api/reportserver/v2/scheduledtasks", 2},
		{"alice sees her task", alice, "/api/reportserver/v2/scheduledtasks", 1},
		{"alice sees her task v3", alice, "/api/reportserver/v3/scheduled-tasks", 1},
		{"bob sees no task", bob, "/api/reportserver/scheduledtasks", 0},
		{"alice sees her alert", alice, "/api/reportserver/v2/dataalerts", 1},
		{"bob sees no alert", bob, "/api/reportserver/v3/data-alerts", 0},
		{"bob reads reports via the Users role", bob, "/api/reportserver/v2/reports", 1},
		{"bob reads categories via the Users role", bob, "/api/reportserver/v2/categories", 1},
		{"bob sees no data connections", bob, "/api/reportserver/v2/dataconnections", 0},
		{"admin sees data connections", admin, "/api/reportserver/v3/data-connections", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := count(tc.token, tc.path); n != tc.n {
				t.Fatalf("%d items, want %d", n, tc.n)
			}
		})
	}
	forbidden := []struct{ token, method, path string }{
		{bob, "GET", "/api/reportserver/v2/dataconnections/" + conn},
		{bob, "GET", "/api/reportserver/v2/scheduledtasks/" + aliceTask},
		{bob, "GET", "/api/reportserver/v2/dataalerts/" + aliceAlert},
		{bob, "GET", "/api/reportserver/v2/executions/scheduledtasks/" + aliceTask},
		{bob, "POST", "/api/reportserver/v2/executions/scheduledtasks/" + aliceTask},
		{bob, "DELETE", "/api/reportserver/v2/scheduledtasks/" + aliceTask},
		{alice, "GET", "/api/reportserver/v3/scheduled-tasks/" + adminTask},
		{bob, "POST", "/api/reportserver/v2/categories"},
		{bob, "POST", "/api/reportserver/v2/dataconnections"},
	}
	for _, tc := range forbidden {
		t.Run("403 "+tc.method+" "+tc.path, func(t *testing.T) {
			var body any
			if tc.method == "POST" {
				body = map[string]any{"Name": "x", "Provider": "p", "ConnectionString": "c"}
			}
			want(t, e.do(tc.token, tc.method, tc.path, body), 403)
		})
	}
	t.Run("alice holds specific permissions for her items only", func(t *testing.T) {
		aliceID := e.userID("alice")
		var ps []simulator.Permission
		e.do(alice, "GET", "/api/reportserver/v2/users/"+aliceID+"/permissions/3", nil).decode(t, &ps)
		if len(ps) != 1 || ps[0].Scope != simulator.ScopeSpecificScheduledTask || ps[0].ResourceId != aliceTask || ps[0].Access != simulator.AccessUnrestricted {
			t.Fatalf("task permissions %+v", ps)
		}
		e.do(alice, "GET", "/api/reportserver/v3/users/"+aliceID+"/permissions/DataAlert", nil).decode(t, &ps)
		if len(ps) != 1 || ps[0].Scope != simulator.ScopeSpecificDataAlert || ps[0].ResourceId != aliceAlert {
			t.Fatalf("alert permissions %+v", ps)
		}
		want(t, e.do(alice, "POST", "/api/reportserver/v2/executions/scheduledtasks/"+aliceTask, nil), 204)
		want(t, e.do(alice, "DELETE", "/api/reportserver/v2/scheduledtasks/"+aliceTask, nil), 204)
		e.do(alice, "GET", "/api/reportserver/v2/users/"+aliceID+"/permissions/3", nil).decode(t, &ps)
		if len(ps) != 0 {
			t.Fatalf("permission outlived its task: %+v", ps)
		}
	})
}

// postMultipart POSTs the multipart body written by mw to url as the user
// with token, and reads the result.
func postMultipart(t *testing.T, url, token string, mw *multipart.Writer, body []byte) result {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readResult(t, res)
}
