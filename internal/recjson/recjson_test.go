package recjson

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// marshalJSON is the reference: Marshal, encoding/json with HTML escaping
// off, as both stores wrote records before AppendAttempt
// (TestMarshalIsUnescapedJSON).
func marshalJSON(v any) ([]byte, error) { return Marshal(v) }

// TestMarshalIsUnescapedJSON: Marshal is encoding/json's output with '<',
// '>' and '&' kept as they are and no trailing newline.
func TestMarshalIsUnescapedJSON(t *testing.T) {
	v := map[string]any{"a": "<&>", "raw": json.RawMessage(`{"x":"<b>"}`), "n": 1}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	escaped, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"<&>","n":1,"raw":{"x":"<b>"}}`; string(got) != want {
		t.Errorf("Marshal = %s, want %s", got, want)
	}
	if bytes.Equal(got, escaped) {
		t.Errorf("Marshal = %s, the same as json.Marshal's HTML-escaped output", got)
	}
}

// TestMarshalAttemptMatchesJSON: the hand-written encoding of an attempt
// record is byte for byte encoding/json's, over every field, set or empty,
// response headers (none, empty, nil values, several sorted) and strings
// JSON must escape; a new field of rswebhooks.Attempt fails here until
// AppendAttempt writes it.
func TestMarshalAttemptMatchesJSON(t *testing.T) {
	if n := reflect.TypeFor[rswebhooks.Attempt]().NumField(); n != 8 {
		t.Fatalf("rswebhooks.Attempt has %d fields; AppendAttempt knows 8: teach it the new ones", n)
	}
	r := rand.New(rand.NewPCG(5, 6))
	strs := []string{"", "01J0000000000000000000000A", "no answer within the attempt timeout of 10s", `Post "http://x": EOF`, "a\nb", "é", "<&>", "\u2028", "back\\slash", "\x7f", `{"ok":true}`}
	times := []time.Time{{}, time.Date(2026, 12, 2, 0, 1, 2, 300400500, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	names := []string{"Date", "Content-Length", "X-A", "x-a", "Content-Type", "Ü", "B\"q"}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	fast := 0
	for range 5000 {
		a := &rswebhooks.Attempt{DeliveryID: pick(strs), N: r.IntN(30) - 2, StartedUTC: times[r.IntN(len(times))],
			Duration: time.Duration(r.Int64N(1e10) - 1e3), StatusCode: r.IntN(3) * 250, Error: pick(strs), ResponseBody: pick(strs)}
		switch r.IntN(4) {
		case 0:
		case 1:
			a.ResponseHeaders = map[string][]string{}
		default:
			a.ResponseHeaders = map[string][]string{}
			for range r.IntN(4) + 1 {
				var vs []string
				switch r.IntN(4) {
				case 0:
				case 1:
					vs = []string{}
				default:
					for range r.IntN(3) + 1 {
						vs = append(vs, pick(strs))
					}
				}
				a.ResponseHeaders[pick(names)] = vs
			}
		}
		want, werr := marshalJSON(a)
		got, gerr := MarshalAttempt(a)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("attempt %+v:\n got %s (%v)\nwant %s (%v)", a, got, gerr, want, werr)
		}
		if _, ok := AppendAttempt(nil, a); ok && len(a.ResponseHeaders) > 0 {
			fast++
		}
	}
	if fast == 0 {
		t.Fatal("no generated attempt with plain strings and headers")
	}
}
