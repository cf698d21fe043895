package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

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
			h.Set("Tracestate", "congo=t61rcWkgMzE")
			got, state := FromHeader(h)
			wantState := ""
			if c.want != "" {
				wantState = "congo=t61rcWkgMzE"
			}
			if got != c.want || state != wantState {
				t.Fatalf("FromHeader = %q, %q; want %q, %q", got, state, c.want, wantState)
			}
		})
	}
}

// A tracestate over 512 characters loses members from the end until it fits.
func TestLongTraceStateTrimmed(t *testing.T) {
	h := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	for i := range 30 {
		h.Add("Tracestate", fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 40)))
	}
	_, state := FromHeader(h)
	if len(state) > MaxStateLen || !strings.HasPrefix(state, "k00=") || strings.Contains(state, "k29=") || strings.Count(state, "=") != 11 {
		t.Fatalf("trimmed tracestate (%d chars) %q", len(state), state)
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
	// The stored tracestate goes with the stored traceparent to every child.
	ev.TraceParent, ev.TraceState = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE,rojo=1"
	h := http.Header{"Tracestate": {"stale=1"}}
	Inject(h, ChildOf(EventParent(ev)))
	if h.Get("Tracestate") != ev.TraceState || !strings.HasPrefix(h.Get("Traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Fatalf("injected %v, want the event's trace and its tracestate", h)
	}
	Inject(h, a)
	if _, ok := h["Tracestate"]; ok {
		t.Fatalf("a parent without tracestate left %v", h)
	}
	if c1.TraceID() != a.TraceID() || c1.SpanID() == a.SpanID() || c1.SpanID() == c2.SpanID() {
		t.Fatalf("children %v %v of %v", c1, c2, a)
	}
}

// Format writes what the W3C propagator writes, sampled or not.
func TestFormatMatchesPropagator(t *testing.T) {
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, 0xff} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
			TraceFlags: flags,
		})
		c := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
		if got, want := Format(sc), c[Header]; got != want || got == "" {
			t.Errorf("flags %x: Format = %q, the propagator writes %q", flags, got, want)
		}
	}
}
