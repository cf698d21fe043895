package store

import (
	"bytes"
	"math/rand/v2"
	"reflect"
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
		want, werr := encodeJSON([]byte("d/x"), &rec)
		got, gerr := encodeDelivery([]byte("d/x"), &rec)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("record %+v:\n got %s (%v)\nwant %s (%v)", rec, got, gerr, want, werr)
		}
	}
}
