package admin_test

import (
	"context"
	"testing"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/tap"
)

type noEvents struct{}

func (noEvents) AppendEvent(context.Context, *rswebhooks.Event) error { return nil }

func TestUnmatchedListForAdministratorsOnly(t *testing.T) {
	table := detect.NewUnmatched(0, nil)
	det, err := detect.New(detect.Options{Store: noEvents{}, Unmatched: table})
	if err != nil {
		t.Fatal(err)
	}
	det.Observe(context.Background(), &tap.Exchange{Method: "PUT", Path: "/api/reportserver/v3/reports/0a1b2c3d4e5/tags/x", Status: 204})
	e := newEnv(t, envOptions{unmatched: table})
	if res := e.do("GET", "/api/webhooks/unmatched", e.token("alice"), nil); res.status != 403 {
		t.Fatalf("alice: %d %s, want 403", res.status, res.body)
	}
	res := e.do("GET", "/api/webhooks/unmatched", operatorToken, nil)
	var rs []rswebhooks.UnmatchedRoute
	res.json(t, &rs)
	if res.status != 200 || len(rs) != 1 {
		t.Fatalf("operator: %d %s", res.status, res.body)
	}
	r := rs[0]
	if r.Method != "PUT" || r.Path != "api/reportserver/v3/reports/{reportId}/tags/x" || r.Status != 204 || r.Count != 1 ||
		r.Rule.Filter != "reports" || r.Rule.Event != "Updated" || r.Rule.ID != "path:reportId" || r.Snippet == "" {
		t.Fatalf("route %+v", r)
	}
	d := loadOpenAPI(t)
	s := d.resolve(*d.resolve(d.op(t, "GET", "/api/webhooks/unmatched").Responses["200"].Content["application/json"].Schema).Items)
	for _, k := range s.Required {
		if _, ok := map[string]bool{"Method": true, "Path": true, "Status": true, "Count": true, "FirstSeenUtc": true, "LastSeenUtc": true, "Rule": true, "Snippet": true}[k]; !ok {
			t.Errorf("schema requires %q, which the answer lacks", k)
		}
	}
}
