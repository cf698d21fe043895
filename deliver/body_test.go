package deliver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// referenceBody encodes the whole Body at once, as the body was built
// before it was assembled from parts: the bytes receivers have verified.
// (The notification itself is the one the parts use; the golden files pin
// its fields.)
func referenceBody(t *testing.T, d *rswebhooks.Delivery, w *rswebhooks.Webhook, n int, links Links, offNote string, now time.Time) []byte {
	t.Helper()
	props := w.Properties
	if props == nil {
		props = map[string]json.RawMessage{}
	}
	nt := notificationWithLinks(d, w, links, offNote, now)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Body{ID: d.ID, Attempt: n, Properties: props, Notifications: []Notification{nt}}); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

type fixedLinks struct{}

func (fixedLinks) URL(webhookID string, ev *rswebhooks.Event, docID string, _ time.Time) string {
	return "https://rsw.example/d/" + webhookID + "/" + ev.ID + "/" + docID + "?a=1&b=<2>"
}

// TestBodyPartsMatchEncoder: the body assembled from parts, with the
// event's part from the cache or not, is byte for byte the encoding of the
// whole Body, for every shape of event, webhook and link setting.
func TestBodyPartsMatchEncoder(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.FixedZone("X", 3600))
	exec := at.Add(-time.Hour)
	no := false
	events := []rswebhooks.Event{
		{ID: "01J0000000000000000000000A", Filter: "reports", Type: "Created", ResourceID: "r1", ResourceName: "Sales <Q1> & \"Q2\" \u2028 é 日本", UserID: "u", UserName: "Ann", Time: at, APIVersion: "v2", Method: "POST", Path: "/api/reportserver/v2/reports", Source: rswebhooks.SourceProxy},
		{ID: "01J0000000000000000000000B", Filter: "tasks", Type: "Executed", Time: at, ExecutionID: "x", ExecutionDateUTC: &exec, AlertTriggered: &no, DocumentIDs: []string{"d1", "d2"},
			Documents: []rswebhooks.Document{{ID: "d1", Name: "a&b", Format: "PDF"}, {ID: "d2", MimeType: "text/html"}}, Missing: []string{"ExecutionId"}, Note: "n <1>"},
		{ID: "01J0000000000000000000000C", Filter: "tasks", Type: "Executed", Time: at, Documents: []rswebhooks.Document{{ID: "d1"}}, Note: "kept"},
		{ID: "01J0000000000000000000000D", Filter: PingAction, Type: PingEventType, Time: at},
		{},
	}
	hooks := []*rswebhooks.Webhook{
		{ID: "W1"},
		{ID: "W2", Properties: map[string]json.RawMessage{}},
		{ID: "W3", Properties: map[string]json.RawMessage{"z": json.RawMessage(`{"b":[1,2,{"c":"<&>"}],"a":null}`), "a": json.RawMessage(`"x\u003cy"`), "m": json.RawMessage(`12.50`), "e": json.RawMessage(`[]`), "o": json.RawMessage(`{}`)}},
	}
	var cache notificationCache
	for _, ev := range events {
		for _, w := range hooks {
			for _, links := range []Links{nil, fixedLinks{}} {
				for _, off := range []string{"", "links are off"} {
					for n := range 3 {
						d := &rswebhooks.Delivery{ID: rswebhooks.DeliveryID(&ev, w.ID), EventID: ev.ID, Event: ev}
						want := referenceBody(t, d, w, n, links, off, at)
						for _, c := range []*notificationCache{nil, &cache, &cache} {
							got, err := marshalBody(d, w, n, links, off, at, c)
							if err != nil {
								t.Fatal(err)
							}
							if !bytes.Equal(got, want) {
								t.Fatalf("event %s webhook %s attempt %d links %v off %q:\n--- got\n%s\n--- want\n%s", ev.ID, w.ID, n, links != nil, off, got, want)
							}
						}
					}
				}
			}
		}
	}
	// Delivery ids that JSON escapes take the encoder's way.
	for _, id := range []string{"D<1>&\"x\"", "é\u2028", "", "01J0-x_y.z"} {
		d := &rswebhooks.Delivery{ID: id, EventID: events[0].ID, Event: events[0]}
		got, err := marshalBody(d, hooks[2], 1, nil, "", at, &cache)
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceBody(t, d, hooks[2], 1, nil, "", at); !bytes.Equal(got, want) {
			t.Fatalf("delivery id %q:\n--- got\n%s\n--- want\n%s", id, got, want)
		}
	}
	// Another snapshot under a cached event id gets its own part.
	ev := events[0]
	ev.ResourceName = "renamed"
	d := &rswebhooks.Delivery{ID: "D", EventID: ev.ID, Event: ev}
	got, err := marshalBody(d, hooks[0], 1, nil, "", at, &cache)
	if err != nil {
		t.Fatal(err)
	}
	if want := referenceBody(t, d, hooks[0], 1, nil, "", at); !bytes.Equal(got, want) {
		t.Fatalf("changed snapshot served from the cache:\n%s", got)
	}
}

// A webhook's Properties come from the cache only while they are the ones
// encoded: the same webhook value changed in place gets its own.
func TestPropertiesCacheFollowsChanges(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ev := rswebhooks.Event{ID: "E1", Filter: rswebhooks.FilterReports, Type: "Created", Time: at}
	d := &rswebhooks.Delivery{ID: "D1", EventID: ev.ID, Event: ev}
	w := &rswebhooks.Webhook{ID: "W1", Properties: map[string]json.RawMessage{"env": json.RawMessage(`"one"`)}}
	var cache notificationCache
	for i, props := range []map[string]json.RawMessage{
		{"env": json.RawMessage(`"one"`)},
		{"env": json.RawMessage(`"one"`)}, // from the cache
		{"env": json.RawMessage(`"two"`)},
		{"env": json.RawMessage(`"two"`), "extra": json.RawMessage(`1`)},
		{"other": json.RawMessage(`"two"`)},
		nil,
		{"env": json.RawMessage(`"one"`)},
	} {
		w.Properties = props
		got, err := marshalBody(d, w, 1, nil, "", at, &cache)
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceBody(t, d, w, 1, nil, "", at); !bytes.Equal(got, want) {
			t.Fatalf("step %d, Properties %s:\n--- got\n%s\n--- want\n%s", i, props, got, want)
		}
	}
	// Changing a value in place, in the map the cache saw, is seen too.
	w.Properties["env"][1] = 'X'
	got, err := marshalBody(d, w, 1, nil, "", at, &cache)
	if err != nil {
		t.Fatal(err)
	}
	if want := referenceBody(t, d, w, 1, nil, "", at); !bytes.Equal(got, want) {
		t.Fatalf("value changed in place:\n--- got\n%s\n--- want\n%s", got, want)
	}
}

// sameEvent compares every field of rswebhooks.Event: a snapshot that
// differs from the cached one in any field is not served the cached
// notification. A field added to Event fails this test until sameEvent
// (and this test) know it.
func TestSameEventComparesEveryField(t *testing.T) {
	exec := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	alert := true
	base := rswebhooks.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ExecutionDateUTC: &exec, AlertTriggered: &alert,
		Missing: []string{"m"}, DocumentIDs: []string{"d"}, Documents: []rswebhooks.Document{{ID: "doc"}}}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString(v.Type().Field(i).Name)
		}
	}
	clone := func() rswebhooks.Event {
		c := base
		c.Missing, c.DocumentIDs, c.Documents = slices.Clone(base.Missing), slices.Clone(base.DocumentIDs), slices.Clone(base.Documents)
		e, a := *base.ExecutionDateUTC, *base.AlertTriggered
		c.ExecutionDateUTC, c.AlertTriggered = &e, &a
		return c
	}
	if c := clone(); !sameEvent(&base, &c) {
		t.Fatal("a copy is not the same event")
	}
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		c := clone()
		f := reflect.ValueOf(&c).Elem().Field(i)
		switch x := f.Addr().Interface().(type) {
		case *string:
			*x += "'"
		case *time.Time:
			*x = x.Add(time.Second)
		case *[]string:
			*x = append(*x, "more")
		case **time.Time:
			t2 := (*x).Add(time.Second)
			*x = &t2
		case **bool:
			b := !**x
			*x = &b
		case *[]rswebhooks.Document:
			(*x)[0].Name = "changed"
		default:
			t.Fatalf("Event.%s (%s): teach sameEvent and this test to compare it", name, f.Type())
		}
		if sameEvent(&base, &c) {
			t.Errorf("Event.%s changed, sameEvent still true", name)
		}
	}
	// Pointers: one nil and one set differ; both nil are the same.
	c := clone()
	c.ExecutionDateUTC, c.AlertTriggered = nil, nil
	if sameEvent(&base, &c) {
		t.Error("nil ExecutionDateUTC and AlertTriggered against set ones: sameEvent true")
	}
	d := c
	if !sameEvent(&c, &d) {
		t.Error("both nil: sameEvent false")
	}
}
