package deliver

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestAppendNotesMatchesIndented: the hand-written Notifications element
// is byte for byte indented's, over every field set or empty, strings
// JSON escapes, times JSON cannot write and the lists left to indented;
// a new field of Notification fails here until appendNotes writes it.
func TestAppendNotesMatchesIndented(t *testing.T) {
	if n := reflect.TypeFor[Notification]().NumField(); n != 21 {
		t.Fatalf("Notification has %d fields; appendNotes knows 21: teach it the new ones", n)
	}
	r := rand.New(rand.NewPCG(13, 14))
	plainStrs := []string{"", "reports", "01J0000000000000000000000A", "/api/reportserver/v2/reports", "Sales Q1 (draft)"}
	otherStrs := []string{"a\nb", "é", "<&>", "\u2028", "back\\slash", `say "hi"`, "\x7f", "日本"}
	times := []time.Time{{}, time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -3600)),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("S", 3600+30)), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("Far", 25*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	fast := 0
	for i := range 5000 {
		strs := plainStrs
		if i%2 == 0 {
			strs = append(plainStrs[:len(plainStrs):len(plainStrs)], otherStrs...)
		}
		pick := func() string { return strs[r.IntN(len(strs))] }
		tm := times[r.IntN(3)]
		if i%3 == 0 {
			tm = times[r.IntN(len(times))]
		}
		nt := Notification{Action: pick(), EventType: pick(), EventID: pick(), Source: pick(), ResourceID: pick(), ResourceName: pick(),
			UserID: pick(), UserName: pick(), TimestampUTC: tm, APIVersion: pick(), Method: pick(), Path: pick(), CategoryID: pick(),
			CategoryName: pick(), ExecutionID: pick(), Note: pick()}
		if r.IntN(2) == 0 {
			exec := times[r.IntN(len(times))]
			nt.ExecutionDateUTC = &exec
		}
		if v := r.IntN(3); v > 0 {
			alert := v == 2
			nt.AlertTriggered = &alert
		}
		switch r.IntN(8) {
		case 0:
			nt.DocumentIDs = []string{"d1"}
		case 1:
			nt.Documents = []Document{{ID: "d1", Name: pick()}}
		case 2:
			nt.Missing = []string{"ResourceName"}
		case 3:
			nt.DocumentIDs, nt.Missing = []string{}, []string{}
		}
		want, werr := indented([]Notification{nt})
		got, ok := appendNotes(nil, &nt)
		if ok {
			fast++
			if werr != nil || !bytes.Equal(got, want) {
				t.Fatalf("notification %+v:\n got %s\nwant %s (%v)", nt, got, want, werr)
			}
		}
	}
	if fast < 1000 {
		t.Fatalf("only %d of 5000 notifications took the fast path", fast)
	}
}

// BenchmarkNotes: one event's Notifications element, by appendNotes and by
// indented, in the same run.
func BenchmarkNotes(b *testing.B) {
	at := time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC)
	nt := Notification{Action: "reports", EventType: "Created", EventID: "01M8TC2GVCN2K6EQXVHR4VXHDG", Source: "proxy",
		ResourceID: "9b1f4c1e0e5a4d7c", ResourceName: "Quarterly sales", UserID: "u1", UserName: "ann", TimestampUTC: at,
		APIVersion: "v2", Method: "POST", Path: "/api/reportserver/v2/reports"}
	b.Run("appendNotes", func(b *testing.B) {
		for b.Loop() {
			_, _ = appendNotes(nil, &nt)
		}
	})
	b.Run("indented", func(b *testing.B) {
		for b.Loop() {
			_, _ = indented([]Notification{nt})
		}
	})
}
