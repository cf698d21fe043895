package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/tap"
)

// nopEvents is an event store for a detector that only meets unmatched calls.
type nopEvents struct{}

func (nopEvents) AppendEvent(context.Context, *rswebhooks.Event) error { return nil }

func TestRulesSuggestAndCheck(t *testing.T) {
	table := detect.NewUnmatched(0, nil)
	det, err := detect.New(detect.Options{Store: nopEvents{}, Unmatched: table})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []*tap.Exchange{
		{Method: "POST", Path: "/Category/Rename/0a1b2c3d4e5", Status: 200},
		{Method: "POST", Path: "/Category/Rename/0a1b2c3d4e6", Status: 200},
		{Method: "DELETE", Path: "/api/reportserver/v3/reports/0a1b2c3d4e5/tags/1a2b3c4d5e6", Status: 204},
		{Method: "POST", Path: "/api/widgets/7/spin", Status: 200},
	} {
		det.Observe(context.Background(), ex)
	}
	a := startAdminWith(t, func(o *admin.Options) { o.Unmatched = table })
	out := a.ok(t, "rules", "suggest")
	for _, want := range []string{
		"# seen 2 times", "path: Category/Rename/{categoryId}", "id: path:categoryId",
		"path: api/reportserver/v3/reports/{reportId}/tags/{tagId}", "event: ignore",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("suggest output lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "suggested.yaml")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if rs, err := detect.LoadRules(file); err != nil || len(rs) != 3 {
		t.Fatalf("the suggested file loads as %d rules, %v; want 3", len(rs), err)
	}
	check := a.ok(t, "rules", "check", file)
	if !strings.Contains(check, "3 rules, 0 conflicts") {
		t.Fatalf("check of the suggestions:\n%s", check)
	}
	routes := decode[[]rswebhooks.UnmatchedRoute](t, a.ok(t, "rules", "suggest", "-o", "json"))
	if len(routes) != 3 || routes[0].Path != "api/widgets/{widgetId}/spin" {
		t.Fatalf("suggest -o json = %+v", routes)
	}

	conflicting := filepath.Join(dir, "conflicting.yaml")
	if err := os.WriteFile(conflicting, []byte(`rules:
  - method: DELETE
    path: api/reportserver/v2/reports/{id}
    filter: reports
    event: Updated
    id: path:id
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := a.run(t, operatorToken, "rules", "check", conflicting)
	if r.code != 1 || !strings.Contains(r.stdout, "override: DELETE api/reportserver/v2/reports/{id} replaces the built-in rule") {
		t.Fatalf("check of an override: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := a.ok(t, "rules", "check", "--allow-override", conflicting); !strings.Contains(out, "1 rules, 0 conflicts") {
		t.Fatalf("check --allow-override:\n%s", out)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("rules:\n  - method: GET\n    path: x\n    event: ignore\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := a.run(t, operatorToken, "rules", "check", broken); r.code != 1 || !strings.Contains(r.stderr, "line 2: method") {
		t.Fatalf("check of an invalid file: code %d, stderr %q", r.code, r.stderr)
	}
}
