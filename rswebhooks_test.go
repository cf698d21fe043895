package rswebhooks

import (
	"sort"
	"testing"
	"time"
)

func TestNewIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := 0; i < 100; i++ {
		ids = append(ids, NewID(base.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids not sorted by time: %v", ids[:5])
	}
	for _, id := range ids {
		if len(id) != 26 {
			t.Fatalf("id %q has length %d, want 26", id, len(id))
		}
	}
	if NewID(base) == NewID(base) {
		t.Fatal("two ids in the same millisecond are equal")
	}
}

func TestWebhookMatches(t *testing.T) {
	w := Webhook{Filters: []string{"Reports", "tasks"}}
	if !w.Matches("reports") || !w.Matches("tasks") || w.Matches("alerts") {
		t.Fatalf("Matches wrong for %v", w.Filters)
	}
	all := Webhook{Filters: []string{FilterAll}}
	if !all.Matches("alerts") {
		t.Fatal("wildcard does not match")
	}
}
