package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// TestEncodeDeliveryMatchesJSON: the hand-written encoding of a delivery
// record is byte for byte encoding/json's, over every field, set or empty,
// and strings JSON must escape; a new field of rswebhooks.Delivery fails
// here until encodeDelivery writes it.
func TestEncodeDeliveryMatchesJSON(t *testing.T) {
	if n := reflect.TypeFor[rswebhooks.Delivery]().NumField(); n != 14 {
		t.Fatalf("rswebhooks.Delivery has %d fields; encodeDelivery knows 14: teach it the new ones", n)
	}
	r := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "01J0000000000000000000000A", "pending", "gave up after 3 attempts: 503", `Post "http://x": EOF`, "a\nb", "é", "<&>", "\u2028", "back\\slash", "\x7f"}
	times := []time.Time{{}, time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -3600)),
		time.Unix(0, 1).UTC(), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	tm := func() time.Time { return times[r.IntN(len(times))] }
	for i := range 5000 {
		rec := deliveryRecord{Delivery: rswebhooks.Delivery{ID: pick(strs), WebhookID: pick(strs), EventID: pick(strs),
			Ping: r.IntN(2) == 0, State: pick(strs), Reason: pick(strs), Attempts: r.IntN(20) - 2, NextUTC: tm(), CreatedUTC: tm(),
			UpdatedUTC: tm(), LastStatus: r.IntN(3) * 250, LastError: pick(strs), AccessPending: r.IntN(2) == 0},
			OrderKey: r.IntN(2) == 0}
		if i%50 == 0 {
			rec.Event = &rswebhooks.Event{ID: rec.EventID, Filter: "reports", Time: tm()}
		}
		if i%3 == 0 {
			rec.FinalAttempt = &rswebhooks.Attempt{DeliveryID: pick(strs), N: r.IntN(5), StartedUTC: tm(), Duration: time.Duration(r.IntN(1e9)),
				StatusCode: r.IntN(3) * 250, Error: pick(strs), ResponseBody: pick(strs)}
			if i%2 == 0 {
				rec.FinalAttempt.ResponseHeaders = map[string][]string{"Content-Length": {"0"}, pick(strs): {pick(strs), pick(strs)}}
			}
		}
		want, werr := encodeJSON([]byte("d/x"), &rec)
		got, gerr := encodeDelivery([]byte("d/x"), &rec)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("record %+v:\n got %s (%v)\nwant %s (%v)", rec, got, gerr, want, werr)
		}
		if gerr == nil {
			decodeBoth(t, got)
		}
	}
}

// decodeBoth decodes b with decodeDeliveryRecord and with encoding/json and
// fails t unless both give the same record, or both fail.
func decodeBoth(t *testing.T, b []byte) {
	t.Helper()
	var want, got deliveryRecord
	werr := json.Unmarshal(b, &want)
	gerr := decodeDeliveryRecord([]byte("d/x"), b, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("record %q: error %v, encoding/json's %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("record %q:\n got %+v\nwant %+v", b, got, want)
	}
	if gerr != nil && !errors.Is(gerr, rswebhooks.ErrUnreadable) {
		t.Fatalf("record %q: error %v is not ErrUnreadable", b, gerr)
	}
}

// TestDecodeDeliveryMatchesJSON: the hand-written decoding of a delivery
// record gives what encoding/json gives, for every record encodeDelivery
// writes (set or empty fields, strings JSON escapes, inline snapshots,
// times in other zones) and for records written otherwise (reordered,
// spaced, with unknown or misspelt fields, truncated, numbers JSON reads
// differently), which it leaves to encoding/json.
func TestDecodeDeliveryMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "01J0000000000000000000000A", "pending", "gave up after 3 attempts: 503", `Post "http://x": EOF`, "a\nb", "é", "<&>", "back\\slash", "\x7f"}
	times := []time.Time{{}, time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -3600)),
		time.Unix(0, 1).UTC(), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	tm := func() time.Time { return times[r.IntN(len(times))] }
	fast := 0
	for i := range 5000 {
		rec := deliveryRecord{Delivery: rswebhooks.Delivery{ID: pick(strs), WebhookID: pick(strs), EventID: pick(strs),
			Ping: r.IntN(2) == 0, State: pick(strs), Reason: pick(strs), Attempts: r.IntN(40) - 2, NextUTC: tm(), CreatedUTC: tm(),
			UpdatedUTC: tm(), LastStatus: r.IntN(3) * 250, LastError: pick(strs), AccessPending: r.IntN(2) == 0},
			OrderKey: r.IntN(2) == 0}
		if i%50 == 0 {
			rec.Event = &rswebhooks.Event{ID: rec.EventID, Filter: "reports", Time: tm()}
		}
		b, err := encodeDelivery([]byte("d/x"), &rec)
		if err != nil {
			t.Fatal(err)
		}
		decodeBoth(t, b)
		var got deliveryRecord
		if decodeDeliveryFast(b, &got) {
			fast++
		}
	}
	// About one in twenty generated records has only plain strings (the
	// rest exercise the fallback); the parser must take those.
	if fast < 150 {
		t.Fatalf("only %d of 5000 records took the fast path", fast)
	}
	plainRec := `{"Id":"01J0000000000000000000000A","WebhookId":"01HOOK","EventId":"01EV","State":"pending","Attempts":0,` +
		`"NextAttemptUtc":"2026-12-02T00:01:02.3004005Z","CreatedUtc":"2026-12-02T00:01:02Z","UpdatedUtc":"2026-12-02T00:01:02Z","AccessPending":true}`
	var got deliveryRecord
	if !decodeDeliveryFast([]byte(plainRec), &got) {
		t.Fatalf("the fast path refused %s", plainRec)
	}
	for _, b := range []string{
		plainRec,
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":-0`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":01`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":1.0`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":1e2`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":99999999999999999999`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":"0"`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts": 0`, 1),
		strings.Replace(plainRec, `"Id"`, `"id"`, 1),
		strings.Replace(plainRec, `"State":"pending"`, `"State":"pend\u0069ng"`, 1),
		strings.Replace(plainRec, `"State":"pending"`, `"State":"pend\ning"`, 1),
		strings.Replace(plainRec, `"State":"pending"`, `"State":null`, 1),
		strings.Replace(plainRec, `"AccessPending":true`, `"AccessPending":false`, 1),
		strings.Replace(plainRec, `"AccessPending":true`, `"AccessPending":true,"Extra":[1,{"a":2}]`, 1),
		strings.Replace(plainRec, `2026-12-02T00:01:02Z`, `2026-12-02T00:01:02+01:00`, 1),
		strings.Replace(plainRec, `2026-12-02T00:01:02Z`, `2026-12-02 00:01:02Z`, 1),
		strings.Replace(plainRec, `2026-12-02T00:01:02Z`, `2026-13-02T00:01:02Z`, 1),
		strings.Replace(plainRec, `2026-12-02T00:01:02Z`, `2026-12-02T00:01:02\u005a`, 1),
		strings.Replace(plainRec, `,"State"`, `,"Ping":true,"State"`, 1),
		strings.Replace(plainRec, `,"State"`, `,"Ping":false,"State"`, 1),
		strings.Replace(plainRec, `"Attempts":0`, `"Attempts":0,"Reason":"x"`, 1),
		plainRec + " ",
		plainRec + "}",
		plainRec[:len(plainRec)-1],
		plainRec[:40],
		"",
		"null",
		"{}",
	} {
		decodeBoth(t, []byte(b))
	}
}

// FuzzDecodeDelivery: on any input the hand-written decoding of a delivery
// record gives encoding/json's result or error.
func FuzzDecodeDelivery(f *testing.F) {
	now := time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC)
	for _, rec := range []deliveryRecord{
		{Delivery: rswebhooks.Delivery{ID: "01J0000000000000000000000A", WebhookID: "01HOOK", EventID: "01EV", State: "pending", NextUTC: now, CreatedUTC: now, UpdatedUTC: now, AccessPending: true}},
		{Delivery: rswebhooks.Delivery{ID: "a", WebhookID: "b", EventID: "c", Ping: true, State: "failed", Reason: "r", Attempts: 3, LastStatus: 503, LastError: "e"}, OrderKey: true},
	} {
		b, err := encodeDelivery([]byte("d/x"), &rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeBoth(t, b) })
}
