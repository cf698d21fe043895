// Package tracing carries W3C trace context from a report-server call to the
// webhook attempts it causes, and builds the optional OpenTelemetry span
// export (OTLP over HTTP).
//
// Trace context works without export: an event remembers the traceparent of
// the call that caused it (Event.TraceParent), and every attempt sends a
// traceparent in that trace with a span id of its own. An event without one
// (no incoming traceparent, or found by the watcher or the reconciler) gets
// a trace of its own, derived from its id, so all its attempts share it.
//
// Export is off by default and then costs nothing: components take a nil
// trace.Tracer and skip every span. Package spanexport builds the SDK when
// it is enabled.
package tracing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
)

// Header is the W3C trace context request header.
const Header = "traceparent"

// StateHeader is the W3C header carrying vendor trace state alongside
// Header; it travels with the traceparent it belongs to and never alone.
const StateHeader = "tracestate"

var propagator = propagation.TraceContext{}

// Parse reads a traceparent value. It returns an invalid SpanContext when v
// is not a valid version-00 (or later, read as 00) traceparent.
func Parse(v string) trace.SpanContext {
	return ParseWithState(v, "")
}

// ParseWithState reads a traceparent and the tracestate that came with it.
// An invalid tracestate is dropped (the traceparent still counts), as W3C
// asks of a participant that cannot parse it.
func ParseWithState(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	c := propagation.MapCarrier{Header: traceparent}
	if tracestate != "" {
		c[StateHeader] = tracestate
	}
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), c))
}

// FromHeader returns the request's traceparent, normalised, and its
// tracestate (several header lines joined, as W3C allows; "" when absent or
// invalid), or two empty strings when it has no valid traceparent.
func FromHeader(h http.Header) (traceparent, tracestate string) {
	vs := h.Values(Header)
	if len(vs) != 1 {
		return "", "" // absent, or ambiguous: W3C says ignore
	}
	sc := ParseWithState(vs[0], strings.Join(h.Values(StateHeader), ","))
	return Format(sc), State(sc.WithTraceState(trimState(sc.TraceState())))
}

// MaxStateLen bounds a kept tracestate: longer ones lose list members from
// the end until they fit (W3C's 512-character propagation guarantee).
const MaxStateLen = 512

func trimState(ts trace.TraceState) trace.TraceState {
	for ts.Len() > 0 && len(ts.String()) > MaxStateLen {
		var last string
		ts.Walk(func(k, _ string) bool { last = k; return true })
		ts = ts.Delete(last)
	}
	return ts
}

// Format returns the traceparent value of sc ("" when sc is invalid).
func Format(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	// What the W3C propagator writes (version 00; of the flags only
	// sampled), without its carrier map and context on every attempt.
	flags := "-00"
	if sc.IsSampled() {
		flags = "-01"
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + flags
}

// State returns sc's tracestate value ("" when it has none).
func State(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceState().String()
}

// Inject sets h's traceparent to sc, and its tracestate to sc's when it has
// one (removing any other).
func Inject(h http.Header, sc trace.SpanContext) {
	h.Del(StateHeader)
	if v := Format(sc); v != "" {
		h.Set(Header, v)
	}
	if v := State(sc); v != "" {
		h.Set(StateHeader, v)
	}
}

// EventParent is the span context an event's work continues: its stored
// TraceParent (with its TraceState), or for an event without a valid one, a trace derived from
// the event id (the same for every attempt; sampled, so receivers that
// trace record it).
func EventParent(ev *rswebhooks.Event) trace.SpanContext {
	if sc := ParseWithState(ev.TraceParent, ev.TraceState); sc.IsValid() {
		return sc.WithRemote(true)
	}
	h := sha256.Sum256([]byte("rswebhooks-event/" + ev.ID))
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], h[:16])
	copy(sid[:], h[16:24])
	tid[0] |= 1 // never all zero
	sid[0] |= 1
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// ChildOf returns a span context in parent's trace with a new random span
// id: what an attempt sends when spans are not exported.
func ChildOf(parent trace.SpanContext) trace.SpanContext {
	var sid trace.SpanID
	for !sid.IsValid() {
		_, _ = rand.Read(sid[:])
	}
	return parent.WithSpanID(sid).WithRemote(false)
}
