package rswebhooks

import (
	"sort"
	"strings"
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
	// Two calls in the same millisecond: the random part must tell them apart.
	if a, b := NewID(base), NewID(base); a == b {
		t.Fatalf("two ids in the same millisecond are equal: %s", a)
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

func TestIDFromIsDeterministic(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e := [10]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	a, b := IDFrom(at, e), IDFrom(at, e)
	if a != b || len(a) != 26 {
		t.Fatalf("IDFrom: %q, %q", a, b)
	}
	if IDFrom(at.Add(time.Millisecond), e) <= a {
		t.Fatal("a later time does not sort after")
	}
	if IDFrom(at, [10]byte{2}) == a {
		t.Fatal("other entropy gives the same id")
	}
	if got := IDFrom(time.Unix(-5, 0), e); got[:10] != "0000000000" {
		t.Fatalf("a time before 1970 encodes as %q, want time bits 0", got)
	}
}

func TestIDSourceMonotonic(t *testing.T) {
	var s IDSource
	base := time.Now()
	times := []time.Time{base, base, base, base.Add(-time.Second), base.Add(time.Millisecond), base.Add(time.Millisecond)}
	prev := ""
	for i, at := range times {
		id := s.Next(at)
		if len(id) != 26 || id <= prev {
			t.Fatalf("id %d = %q, not after %q", i, id, prev)
		}
		prev = id
	}
	// A later millisecond starts from that millisecond's time.
	later := base.Add(time.Hour)
	if id := s.Next(later); id[:10] != IDFrom(later, [10]byte{})[:10] {
		t.Fatalf("id %q does not carry the time of %s", id, later)
	}
}

func TestSigningSecrets(t *testing.T) {
	now := time.Now()
	rot := func(until time.Time, promoted bool) *Rotation {
		return &Rotation{PreviousSecret: "old", StartedUTC: now.Add(-time.Hour), GraceUntilUTC: until, Promoted: promoted}
	}
	for _, tc := range []struct {
		name     string
		rotation *Rotation
		standard []string
		ms       string
	}{
		{"no rotation", nil, []string{"new"}, "new"},
		{"grace, not promoted", rot(now.Add(time.Minute), false), []string{"new", "old"}, "old"},
		{"grace, promoted", rot(now.Add(time.Minute), true), []string{"new", "old"}, "new"},
		{"grace over, not yet erased", rot(now, false), []string{"new"}, "new"},
		{"erased previous secret", &Rotation{GraceUntilUTC: now.Add(time.Hour)}, []string{"new"}, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Webhook{Secret: "new", Rotation: tc.rotation}
			std, ms := w.SigningSecrets(now)
			if strings.Join(std, " ") != strings.Join(tc.standard, " ") || ms != tc.ms {
				t.Fatalf("SigningSecrets = %q, %q; want %q, %q", std, ms, tc.standard, tc.ms)
			}
		})
	}
}
