package detect

import (
	"strings"
	"testing"
)

func TestCheckRules(t *testing.T) {
	parse := func(y string) []Rule {
		t.Helper()
		rs, err := ParseRules([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	for _, c := range []struct {
		name, rules string
		want        []string // kind: message fragment
	}{
		{"clean", `rules:
  - {method: POST, path: "Category/Rename/{categoryId}", filter: categories, event: Updated, id: "path:categoryId"}
  - {method: POST, path: "api/reportserver/v2/reports/{reportId}/copy", filter: reports, event: Created, id: response}
`, nil},
		{"override", `rules:
  - {method: DELETE, path: "api/reportserver/v2/reports/{id}", filter: reports, event: Updated, id: "path:id"}
`, []string{"override: DELETE api/reportserver/v2/reports/{id} replaces the built-in rule DELETE api/reportserver/v2/reports/{reportId} (reports Deleted, id path:reportId)"}},
		// Literals are more specific: a catch-all takes no built-in route.
		{"catch-all below the literals", `rules:
  - {method: POST, path: "api/reportserver/v2/{rest*}", filter: reports, event: Updated, id: body}
`, nil},
		{"unreachable", `rules:
  - {method: POST, path: "api/things/{thingId}", filter: reports, event: Updated, id: "path:thingId"}
  - {method: POST, path: "api/things/0a1b2c3d4e2", filter: reports, event: Created, id: response}
`, []string{"unreachable: POST api/things/{thingId} never matches: for POST /api/things/0a1b2c3d4e2, rule POST api/things/0a1b2c3d4e2 is more specific"}},
		{"shadow of an ignore rule", `rules:
  - {method: POST, path: "api/webhooks/custom", filter: reports, event: Updated, id: body}
`, []string{"shadow: POST api/webhooks/custom takes POST /api/webhooks/custom from the built-in rule * api/webhooks/{rest*} (ignored)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs, err := CheckRules("", parse(c.rules))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				got = append(got, f.Kind+": "+f.Message)
			}
			if len(c.want) == 0 && len(got) != 0 {
				t.Fatalf("findings %q, want none", got)
			}
			for _, w := range c.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("findings %q lack %q", got, w)
				}
			}
		})
	}
}
