package tracing

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks"
)

func TestFromHeader(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct {
		name string
		vals []string
		want string
	}{
		{"valid", []string{valid}, valid},
		{"upper case is invalid", []string{strings.ToUpper(valid)}, ""},
		{"zero trace id", []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{"zero span id", []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}, ""},
		{"garbage", []string{"hello"}, ""},
		{"two values", []string{valid, valid}, ""},
		{"absent", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.vals {
				h.Add("Traceparent", v)
			}
			if got := FromHeader(h); got != c.want {
				t.Fatalf("FromHeader = %q, want %q", got, c.want)
			}
		})
	}
}

func TestEventParent(t *testing.T) {
	ev := &rswebhooks.Event{ID: "01JDQ0000000000000000000AA", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
	if sc := EventParent(ev); sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.IsSampled() || !sc.IsRemote() {
		t.Fatalf("stored traceparent: %v", sc)
	}
	ev.TraceParent = ""
	a, b := EventParent(ev), EventParent(ev)
	other := EventParent(&rswebhooks.Event{ID: "01JDQ0000000000000000000AB"})
	if !a.IsValid() || a.TraceID() != b.TraceID() || a.TraceID() == other.TraceID() || !a.IsSampled() {
		t.Fatalf("derived parents: %v %v %v", a, b, other)
	}
	c1, c2 := ChildOf(a), ChildOf(a)
	if c1.TraceID() != a.TraceID() || c1.SpanID() == a.SpanID() || c1.SpanID() == c2.SpanID() {
		t.Fatalf("children %v %v of %v", c1, c2, a)
	}
}
