package pgstore

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

var (
	recordStrs = []string{"", "01J0000000000000000000000A", "pending", "gave up after 3 attempts: 503", `Post "http://x": EOF`,
		"a\nb", "é", "<&>", "\u2028", "back\\slash", "\x7f", `{"ok":true}`}
	recordTimes = []time.Time{{}, time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -3600)),
		time.Unix(0, 1).UTC(), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
)

// randomDelivery is a delivery with every field set or empty; half of
// them have strings JSON escapes or times it cannot write among them.
func randomDelivery(r *rand.Rand) *rswebhooks.Delivery {
	strs, times := recordStrs, recordTimes
	if r.IntN(2) == 0 {
		strs, times = strs[:4], times[:4] // written as they are
	}
	pick := func() string { return strs[r.IntN(len(strs))] }
	tm := func() time.Time { return times[r.IntN(len(times))] }
	d := &rswebhooks.Delivery{ID: pick(), WebhookID: pick(), EventID: pick(), Ping: r.IntN(2) == 0, State: pick(), Reason: pick(),
		Attempts: r.IntN(40) - 2, NextUTC: tm(), CreatedUTC: tm(), UpdatedUTC: tm(), LastStatus: r.IntN(3) * 250,
		LastError: pick(), AccessPending: r.IntN(2) == 0}
	if r.IntN(10) == 0 {
		d.Event = rswebhooks.Event{ID: d.EventID, Filter: "reports", Time: tm()}
	}
	return d
}

// TestRecordMatchesJSON: a delivery row's record is byte for byte what
// encoding/json writes for the delivery without its event, whether or not
// the delivery has one, over every field set or empty and strings JSON
// must escape; reading it back gives what encoding/json gives (the fast
// path taken for the plain ones), and so do records of schema 3 or older
// (their event inline) and records written otherwise.
func TestRecordMatchesJSON(t *testing.T) {
	if n := reflect.TypeFor[rswebhooks.Delivery]().NumField(); n != 14 {
		t.Fatalf("rswebhooks.Delivery has %d fields; recjson.AppendDelivery knows 14: teach it the new ones", n)
	}
	r := rand.New(rand.NewPCG(7, 8))
	fast := 0
	for range 5000 {
		d := randomDelivery(r)
		want, werr := recjson.Marshal(withoutEvent{Delivery: d})
		got, gerr := encodeRecord(d)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("delivery %+v:\n got %s (%v)\nwant %s (%v)", d, got, gerr, want, werr)
		}
		if gerr != nil {
			continue
		}
		decodeRecordBoth(t, got)
		if parseFast(got) {
			fast++
		}
		if whole, err := recjson.Marshal(d); err == nil { // a record of schema 3: the event inline
			decodeRecordBoth(t, whole)
		}
	}
	if fast < 1500 {
		t.Fatalf("only %d of 5000 records took the fast path", fast)
	}
	plainRec := `{"Id":"01J0000000000000000000000A","WebhookId":"01HOOK","EventId":"01EV","State":"pending","Attempts":0,` +
		`"NextAttemptUtc":"2026-12-02T00:01:02.3004005Z","CreatedUtc":"2026-12-02T00:01:02Z","UpdatedUtc":"2026-12-02T00:01:02Z","AccessPending":true}`
	if !parseFast([]byte(plainRec)) {
		t.Fatalf("the fast path refused %s", plainRec)
	}
	for _, b := range []string{
		plainRec,
		strings.Replace(plainRec, `"AccessPending":true`, `"AccessPending":true,"OrderKey":true`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":01`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":1e2`, 1),
		strings.Replace(plainRec, `"State":"pending"`, `"State":"pend\u0069ng"`, 1),
		strings.Replace(plainRec, `"EventId":"01EV"`, `"EventId":"01EV","Event":{"Id":"01EV","Filter":"reports"}`, 1),
		strings.Replace(plainRec, `2026-12-02T00:01:02Z`, `2026-13-02T00:01:02Z`, 1),
		plainRec + " ",
		plainRec[:len(plainRec)-1],
		"",
		"null",
		"{}",
	} {
		decodeRecordBoth(t, []byte(b))
	}
}

// parseFast reports whether b takes decodeRecord's fast path.
func parseFast(b []byte) bool {
	var d rswebhooks.Delivery
	_, ok := recjson.ParseDelivery(b, &d)
	return ok
}

// decodeRecordBoth decodes b with decodeRecord and with encoding/json and
// fails t unless both give the same delivery, or both fail.
func decodeRecordBoth(t *testing.T, b []byte) {
	t.Helper()
	var want rswebhooks.Delivery
	werr := json.Unmarshal(b, &want)
	got, gerr := decodeRecord(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("record %q: error %v, encoding/json's %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(*got, want) {
		t.Fatalf("record %q:\n got %+v\nwant %+v", b, *got, want)
	}
}

// FuzzDecodeRecord: on any input decodeRecord gives encoding/json's result
// or error.
func FuzzDecodeRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 20 {
		if b, err := encodeRecord(randomDelivery(r)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeRecordBoth(t, b) })
}

// BenchmarkRecord: a pending delivery's record written and read back, by
// encodeRecord/decodeRecord and by encoding/json, in the same run.
func BenchmarkRecord(b *testing.B) {
	now := time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC)
	d := &rswebhooks.Delivery{ID: "01M8TC2GVCN2K6EQXVHR4VXHDG", WebhookID: "01M8TC2GVCN2K6EQXVHR4VXHDH", EventID: "01M8TC2GVCN2K6EQXVHR4VXHDJ",
		State: rswebhooks.DeliveryPending, Attempts: 1, NextUTC: now, CreatedUTC: now, UpdatedUTC: now, LastStatus: 503,
		LastError: "server answered 503"}
	rec, err := encodeRecord(d)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode/recjson", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeRecord(d)
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = recjson.Marshal(withoutEvent{Delivery: d})
		}
	})
	b.Run("decode/recjson", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeRecord(rec)
		}
	})
	b.Run("decode/json", func(b *testing.B) {
		for b.Loop() {
			_ = json.Unmarshal(rec, new(rswebhooks.Delivery))
		}
	})
}
