package detect

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

func TestTemplateOfReplacesIDs(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"Category/Rename/0a1b2c3d4e5", "Category/Rename/{categoryId}"},
		{"api/reportserver/v2/reports/a1b2c3d4e5f/copy", "api/reportserver/v2/reports/{reportId}/copy"},
		{"api/reportserver/v3/scheduled-tasks/3f2504e0-4f89-11d3-9a0c-0305e82c3301/pause", "api/reportserver/v3/scheduled-tasks/{scheduledTaskId}/pause"},
		{"api/things/42/parts/7", "api/things/{thingId}/parts/{partId}"},
		{"api/reports/12/34", "api/reports/{reportId}/{id}"},
		{"x/12/34/56", "x/{xId}/{id}/{id2}"},
		{"api/items/has space", "api/items/{itemId}"},
		{"api/tokens/abcDEF0123456789xyz", "api/tokens/{tokenId}"},
		{"api/reportserver/v2/categories", "api/reportserver/v2/categories"},
		{"Manager/deadbeef", "Manager/deadbeef"}, // no digit: a word
	} {
		segs, _ := splitPath(c.path)
		if got := tmplString(templateOf(segs)); got != c.want {
			t.Errorf("%s: %s, want %s", c.path, got, c.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"POST", "Category/Rename/0a1b2c3d4e5", "POST Category/Rename/{categoryId} categories Updated path:categoryId "},
		{"POST", "api/reportserver/v2/reports/a1b2c3d4e5f/copy", "POST api/reportserver/v2/reports/{reportId}/copy reports Created response v2"},
		{"POST", "api/reportserver/dataalerts/a1b2c3d4e5f/run", "POST api/reportserver/dataalerts/{dataAlertId}/run alerts Executed path:dataAlertId v1"},
		{"DELETE", "api/reportserver/v3/data-connections/a1b2c3d4e5f", "DELETE api/reportserver/v3/data-connections/{dataConnectionId} connections Deleted path:dataConnectionId v3"},
		{"DELETE", "api/reportserver/v3/reports/a1b2c3d4e5f/tags/a1b2c3d4e50", "DELETE api/reportserver/v3/reports/{reportId}/tags/{tagId} reports Updated path:reportId v3"},
		{"POST", "Task/Destroy", "POST Task/Destroy tasks Deleted body "},
		{"PUT", "api/reportserver/v2/categories", "PUT api/reportserver/v2/categories categories Updated body v2"},
		{"POST", "Report/Create", "POST Report/Create reports Created response "},
		{"POST", "api/widgets/7", "POST api/widgets/{widgetId}  ignore  "},
		{"MKCOL", "api/reports/7", "* api/reports/{reportId}  ignore  "},
	} {
		segs, _ := splitPath(c.path)
		r := Suggest(c.method, templateOf(segs))
		got := fmt.Sprintf("%s %s %s %s %s %s", r.Method, r.Path, r.Filter, r.Event, r.ID, r.APIVersion)
		if got != c.want {
			t.Errorf("%s %s:\n got %q\nwant %q", c.method, c.path, got, c.want)
		}
		// Every suggestion is a valid rules file.
		if _, err := ParseRules([]byte(FormatSuggestions([]rswebhooks.SuggestedRule{r}))); err != nil {
			t.Errorf("%s %s: the snippet does not load: %v\n%s", c.method, c.path, err, FormatSuggestions([]rswebhooks.SuggestedRule{r}))
		}
	}
}

func TestUnmatchedCountsAndEvictsLeastRecentlySeen(t *testing.T) {
	now := time.Now().UTC()
	u := NewUnmatched(2, func() time.Time { return now })
	rec := func(method, path string) {
		segs, _ := splitPath(path)
		u.record(method, segs, 200)
		now = now.Add(time.Second)
	}
	start := now
	rec("POST", "a/1")
	rec("POST", "A/2") // same template, other id and case
	rec("PUT", "b/1")
	rec("POST", "a/3") // a is now the most recent
	rec("DELETE", "c/1")
	rs := u.Routes()
	if len(rs) != 2 || rs[0].Path != "c/{cId}" || rs[1].Path != "a/{aId}" {
		t.Fatalf("routes = %+v, want c then a (b evicted)", rs)
	}
	if a := rs[1]; a.Count != 3 || !a.FirstSeenUTC.Equal(start) || !a.LastSeenUTC.Equal(start.Add(3*time.Second)) || a.Status != 200 {
		t.Fatalf("a = %+v, want 3 calls from %s to %s", a, start, start.Add(3*time.Second))
	}
	long := "x" + strings.Repeat("/seg", maxUnmatchedSegments)
	rec("POST", long)
	if u.Len() != 2 || u.Routes()[0].Path == long {
		t.Fatal("a path past the bounds was kept")
	}
}

// TestUnmatchedRouteBecomesARule: a manager route no rule knows, called
// through the real proxy, is listed with a suggested rule; loaded as a
// --rules file, that rule makes the same call an event.
func TestUnmatchedRouteBecomesARule(t *testing.T) {
	for _, prefix := range []string{"", "/reporting"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			table := NewUnmatched(0, nil)
			s := newStackWith(t, prefix, nil, func(o *Options) { o.Unmatched = table })
			cat := s.category()
			if r := s.call(s.front.URL, "POST", "/Category/Rename/"+cat+"?from=grid", map[string]any{"Name": "renamed 1"}); r.status != 200 {
				t.Fatalf("rename: %d %s", r.status, r.body)
			}
			if es := storedEvents(t, s.db); len(es) != 0 {
				t.Fatalf("the unmatched call made events: %+v", es)
			}
			rs := table.Routes()
			if len(rs) != 1 {
				t.Fatalf("unmatched routes = %+v, want one", rs)
			}
			got := rs[0]
			if got.Method != "POST" || got.Path != "Category/Rename/{categoryId}" || got.Count != 1 || got.Status != 200 {
				t.Fatalf("unmatched route = %+v", got)
			}
			if strings.Contains(got.Snippet, "from=grid") || strings.Contains(got.Snippet, cat) {
				t.Fatalf("the snippet holds the query string or the id:\n%s", got.Snippet)
			}
			file := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(file, []byte(got.Snippet), 0o600); err != nil {
				t.Fatal(err)
			}
			extra, err := LoadRules(file)
			if err != nil {
				t.Fatalf("the suggested snippet does not load: %v\n%s", err, got.Snippet)
			}
			// The same call, now with the rule, on the same report server.
			s2 := newStackWith(t, prefix, s.sim, func(o *Options) { o.Rules = MergeRules(BuiltinRules(), extra) })
			if r := s2.call(s2.front.URL, "POST", "/Category/Rename/"+cat, map[string]any{"Name": "renamed 2"}); r.status != 200 {
				t.Fatalf("rename again: %d %s", r.status, r.body)
			}
			es := storedEvents(t, s2.db)
			if len(es) != 1 {
				t.Fatalf("events with the suggested rule: %+v, want one", es)
			}
			if e := es[0]; e.Filter != "categories" || e.Type != "Updated" || e.ResourceID != cat || e.ResourceName != "renamed 2" {
				t.Fatalf("event %+v, want categories Updated %s named %q", e, cat, "renamed 2")
			}
		})
	}
}
