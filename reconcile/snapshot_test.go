package reconcile

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

func TestFingerprints(t *testing.T) {
	fp := func(filter, raw string) item {
		t.Helper()
		it, err := decodeItem(filter, json.RawMessage(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return it
	}
	// Reports: revision, date, name, category, description count; per-caller
	// fields do not.
	base := fp("reports", `{"Id":"r1","Name":"A","CategoryId":"c","LastRevisionId":"v1","LastModifiedDateUtc":"2026-01-01T00:00:00Z","IsFavorite":false,"CanEdit":true,"CreatedBy":"u1","CreatedByName":"bob"}`)
	if base.UserID != "u1" || base.UserName != "bob" || base.Name != "A" {
		t.Errorf("report item %+v", base)
	}
	for _, same := range []string{
		`{"Id":"r1","Name":"A","CategoryId":"C","LastRevisionId":"v1","LastModifiedDateUtc":"2026-01-01T00:00:00Z","IsFavorite":true,"CanEdit":false,"LockedBy":"x"}`,
	} {
		if got := fp("reports", same); got.FP != base.FP {
			t.Errorf("per-caller change moved the fingerprint: %s", same)
		}
	}
	for _, diff := range []string{
		`{"Id":"r1","Name":"A","CategoryId":"c","LastRevisionId":"v2","LastModifiedDateUtc":"2026-01-01T00:00:00Z"}`,
		`{"Id":"r1","Name":"A","CategoryId":"c","LastRevisionId":"v1","LastModifiedDateUtc":"2026-01-01T00:00:01Z"}`,
		`{"Id":"r1","Name":"B","CategoryId":"c","LastRevisionId":"v1","LastModifiedDateUtc":"2026-01-01T00:00:00Z"}`,
	} {
		if got := fp("reports", diff); got.FP == base.FP {
			t.Errorf("a real change kept the fingerprint: %s", diff)
		}
	}
	// Others: every listed field but the per-caller ones, in any key order.
	task := fp("tasks", `{"Id":"t1","Name":"n","UserId":"u2","Enabled":true,"Reports":[{"ReportId":"r1"}],"CanEdit":true,"NextOccurrence":"x"}`)
	if task.UserID != "u2" {
		t.Errorf("task creator %q", task.UserID)
	}
	if got := fp("tasks", `{"Reports":[{"ReportId":"r1"}],"Enabled":true,"UserId":"u2","Name":"n","Id":"t1","CanEdit":false,"NextOccurrence":"y"}`); got.FP != task.FP {
		t.Error("key order or per-caller fields moved a task's fingerprint")
	}
	if got := fp("tasks", `{"Id":"t1","Name":"n","UserId":"u2","Enabled":true,"Reports":[{"ReportId":"r1"},{"ReportId":"r2"}]}`); got.FP == task.FP {
		t.Error("a task's reports changed but its fingerprint did not")
	}
	for _, bad := range []string{`{"Name":"no id"}`, `[1]`} {
		if _, err := decodeItem("categories", json.RawMessage(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func TestEventIDsAreDeterministic(t *testing.T) {
	prev := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c := change{filter: "reports", typ: rswebhooks.EventUpdated, key: "r1", old: entry{FP: "a"}, cur: item{entry: entry{ID: "R1", FP: "b"}}}
	// The same change twice (a restarted node seeing it again) gets one id.
	if first, again := eventID(c, prev), eventID(c, prev); first != again {
		t.Fatalf("same change, different ids: %s and %s", first, again)
	}
	other := c
	other.cur.FP = "c"
	if eventID(other, prev) == eventID(c, prev) {
		t.Fatal("a different change got the same id")
	}
	if eventID(c, prev.Add(time.Minute)) == eventID(c, prev) {
		t.Fatal("the same change after another read got the same id")
	}
}
