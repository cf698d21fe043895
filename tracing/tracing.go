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

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
)

// Header is the W3C trace context request header.
const Header = "traceparent"

var propagator = propagation.TraceContext{}

// Parse reads a traceparent value. It returns an invalid SpanContext when v
// is not a valid version-00 (or later, read as 00) traceparent.
func Parse(v string) trace.SpanContext {
	if v == "" {
		return trace.SpanContext{}
	}
	ctx := propagator.Extract(context.Background(), propagation.MapCarrier{Header: v})
	return trace.SpanContextFromContext(ctx)
}

// FromHeader returns the request's traceparent, normalised, or "" when it
// has none or an invalid one.
func FromHeader(h http.Header) string {
	vs := h.Values(Header)
	if len(vs) != 1 {
		return "" // absent, or ambiguous: W3C says ignore
	}
	return Format(Parse(vs[0]))
}

// Format returns the traceparent value of sc ("" when sc is invalid).
func Format(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c[Header]
}

// EventParent is the span context an event's work continues: its stored
// TraceParent, or for an event without a valid one, a trace derived from
// the event id (the same for every attempt; sampled, so receivers that
// trace record it).
func EventParent(ev *rswebhooks.Event) trace.SpanContext {
	if sc := Parse(ev.TraceParent); sc.IsValid() {
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
