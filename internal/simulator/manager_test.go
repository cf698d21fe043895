package simulator_test

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestManagerCategoryCreate(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice := e.token("admin"), e.token("alice")
	body := map[string]any{"Name": "From the grid", "CanModify": true, "CanDelete": true, "ReportsCount": 0}
	r := e.do(admin, http.MethodPost, "/Category/Create", body)
	want(t, r, http.StatusOK)
	var grid struct {
		Data []struct {
			Id, Name  string
			CanModify bool
		}
		Total int
	}
	r.decode(t, &grid)
	if grid.Total != 1 || len(grid.Data) != 1 || grid.Data[0].Name != "From the grid" || grid.Data[0].Id == "" || !grid.Data[0].CanModify {
		t.Fatalf("grid answer %s", r.body)
	}
	got := e.do(admin, http.MethodGet, "/api/reportserver/v2/categories/"+grid.Data[0].Id, nil)
	want(t, got, http.StatusOK)
	want(t, e.do(admin, http.MethodPost, "/Category/Create", body), http.StatusBadRequest) // name taken
	want(t, e.do(admin, http.MethodPost, "/Category/Create", map[string]any{"Name": ""}), http.StatusBadRequest)
	want(t, e.do(alice, http.MethodPost, "/Category/Create", map[string]any{"Name": "alice's"}), http.StatusForbidden)
	want(t, e.do("", http.MethodPost, "/Category/Create", map[string]any{"Name": "anon"}), http.StatusUnauthorized)
}

func TestManagerCategoryRename(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin, alice := e.token("admin"), e.token("alice")
	id, err := e.sim.CreateCategory("Old")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.CreateCategory("Taken"); err != nil {
		t.Fatal(err)
	}
	r := e.do(admin, http.MethodPost, "/Category/Rename/"+id, map[string]any{"Name": "New"})
	want(t, r, http.StatusOK)
	got := e.do(admin, http.MethodGet, "/api/reportserver/v2/categories/"+id, nil)
	want(t, got, http.StatusOK)
	var c struct{ Name string }
	got.decode(t, &c)
	if c.Name != "New" {
		t.Fatalf("after rename: %s", got.body)
	}
	want(t, e.do(admin, http.MethodPost, "/Category/Rename/"+id, map[string]any{"Name": "Taken"}), http.StatusBadRequest)
	want(t, e.do(admin, http.MethodPost, "/Category/Rename/"+id, map[string]any{"Name": " "}), http.StatusBadRequest)
	want(t, e.do(admin, http.MethodPost, "/Category/Rename/nope", map[string]any{"Name": "X"}), http.StatusNotFound)
	want(t, e.do(alice, http.MethodPost, "/Category/Rename/"+id, map[string]any{"Name": "X"}), http.StatusForbidden)
}

func TestManagerReportUpload(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	if _, err := e.sim.CreateCategory("Sales"); err != nil {
		t.Fatal(err)
	}
	content := base64.StdEncoding.EncodeToString([]byte("PK report"))
	body := map[string]any{"reportName": "Q1", "categoryName": "sales", "description": "d", "reportContent": content, "extension": "trdp"}
	r := e.do(admin, http.MethodPost, "/api/reportserver/report", body)
	want(t, r, http.StatusOK)
	var info struct{ Id, Name, Extension string }
	r.decode(t, &info)
	if info.Id == "" || info.Name != "Q1" || info.Extension != ".trdp" {
		t.Fatalf("answer %s", r.body)
	}
	want(t, e.do(admin, http.MethodGet, "/api/reportserver/v2/reports/"+info.Id, nil), http.StatusOK)
	want(t, e.do(admin, http.MethodPost, "/api/reportserver/report", body), http.StatusBadRequest) // taken
	body["categoryName"] = "nope"
	body["reportName"] = "Q2"
	want(t, e.do(admin, http.MethodPost, "/api/reportserver/report", body), http.StatusBadRequest)
	body["categoryName"], body["reportContent"] = "Sales", "%%%"
	want(t, e.do(admin, http.MethodPost, "/api/reportserver/report", body), http.StatusBadRequest)
}

func TestPublishEveryVersion(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	_, rep := e.fixture()
	for i, p := range []string{"/api/reportserver", "/api/reportserver/v1", "/api/reportserver/v2", "/api/reportserver/v3"} {
		want(t, e.do(admin, http.MethodPost, p+"/reports/"+rep+"/publish", `"published"`), http.StatusNoContent)
		var revs []struct{ Comment string }
		e.do(admin, http.MethodGet, "/api/reportserver/v2/reports/"+rep+"/revisions", nil).decode(t, &revs)
		if len(revs) != i+2 || revs[i+1].Comment != "published" {
			t.Fatalf("after %s publish: %d revisions", p, len(revs))
		}
	}
}

func TestStorageControls(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	cat, rep := e.fixture()
	task, err := e.sim.CreateTask(rep, "nightly", "")
	if err != nil {
		t.Fatal(err)
	}
	var before struct{ LastModifiedDateUtc string }
	e.do(admin, http.MethodGet, "/api/reportserver/v2/reports/"+rep, nil).decode(t, &before)

	// Create through storage.
	r := e.do("", http.MethodPost, "/_sim/storage/connections", map[string]any{"Name": "warehouse"})
	want(t, r, http.StatusOK)
	var created struct{ Id string }
	r.decode(t, &created)
	want(t, e.do(admin, http.MethodGet, "/api/reportserver/v2/dataconnections/"+created.Id, nil), http.StatusOK)

	// Rename: the report's name and date move.
	want(t, e.do("", http.MethodPut, "/_sim/storage/reports/"+rep, map[string]any{"Name": "renamed"}), http.StatusNoContent)
	var after struct{ Name, LastModifiedDateUtc string }
	e.do(admin, http.MethodGet, "/api/reportserver/v2/reports/"+rep, nil).decode(t, &after)
	if after.Name != "renamed" {
		t.Fatalf("name %q", after.Name)
	}
	if err := e.sim.RenameResource("categories", cat, "cat2"); err != nil {
		t.Fatal(err)
	}

	// Delete a report: its only task goes with it.
	want(t, e.do("", http.MethodDelete, "/_sim/storage/categories/"+cat, nil), http.StatusBadRequest) // still holds the report
	want(t, e.do("", http.MethodDelete, "/_sim/storage/reports/"+rep, nil), http.StatusNoContent)
	want(t, e.do(admin, http.MethodGet, "/api/reportserver/v2/scheduledtasks/"+task, nil), http.StatusNotFound)
	want(t, e.do("", http.MethodDelete, "/_sim/storage/reports/"+rep, nil), http.StatusNotFound)
	want(t, e.do("", http.MethodDelete, "/_sim/storage/widgets/x", nil), http.StatusBadRequest)
	if err := e.sim.DeleteResource("categories", cat); err != nil {
		t.Fatal(err)
	}
}
