package detect

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rswebhooks/rswebhooks/tap"
)

const callerTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func categoryCreate(h http.Header) *tap.Exchange {
	return &tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/categories", RequestHeader: h,
		RequestBody: []byte(`{"Name":"Finance"}`), Status: http.StatusOK, ResponseHeader: http.Header{},
		ResponseBody: []byte(`{"Id":"c1","Name":"Finance"}`)}
}

// The stored event remembers the call's traceparent (normalised); an
// invalid one is not kept.
func TestEventRemembersTheCallsTraceParent(t *testing.T) {
	for _, c := range []struct{ name, header, want string }{
		{"valid", callerTraceParent, callerTraceParent},
		{"invalid", "00-xyz", ""},
		{"absent", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			h := http.Header{}
			if c.header != "" {
				h.Set("Traceparent", c.header)
			}
			f.d.Observe(context.Background(), categoryCreate(h))
			es := storedEvents(t, f.db)
			if len(es) != 1 || es[0].TraceParent != c.want {
				t.Fatalf("stored %d events, TraceParent %q; want %q", len(es), es[0].TraceParent, c.want)
			}
		})
	}
}

// The call's tracestate travels with its traceparent (lines joined, as W3C
// allows); without a valid traceparent, or when malformed, it is not kept.
func TestEventRemembersTheCallsTraceState(t *testing.T) {
	for _, c := range []struct {
		name, parent string
		states       []string
		want         string
	}{
		{"one line", callerTraceParent, []string{"congo=t61rcWkgMzE"}, "congo=t61rcWkgMzE"},
		{"two lines", callerTraceParent, []string{"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"}, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		{"malformed", callerTraceParent, []string{"not a list member"}, ""},
		{"without traceparent", "", []string{"congo=t61rcWkgMzE"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			h := http.Header{}
			if c.parent != "" {
				h.Set("Traceparent", c.parent)
			}
			for _, v := range c.states {
				h.Add("Tracestate", v)
			}
			f.d.Observe(context.Background(), categoryCreate(h))
			es := storedEvents(t, f.db)
			if len(es) != 1 || es[0].TraceState != c.want || es[0].TraceParent != c.parent {
				t.Fatalf("stored %d events, TraceParent %q TraceState %q; want %q, %q", len(es), es[0].TraceParent, es[0].TraceState, c.parent, c.want)
			}
		})
	}
}

// With a tracer the event continues an "event append" span, a child of the
// span in Observe's context (the proxy's).
func TestEventAppendSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	f := newFixture(t, func(o *Options) { o.Tracer = tp.Tracer("test") })
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": callerTraceParent})
	ctx, parent := tp.Tracer("test").Start(ctx, "proxy POST")
	f.d.Observe(ctx, categoryCreate(http.Header{}))
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "event append" {
		t.Fatalf("spans = %v, want event append then proxy POST", spans)
	}
	app := spans[0]
	if app.Parent.SpanID() != parent.SpanContext().SpanID() || app.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("event append: parent %s trace %s", app.Parent.SpanID(), app.SpanContext.TraceID())
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + app.SpanContext.SpanID().String() + "-01"
	if es := storedEvents(t, f.db); len(es) != 1 || es[0].TraceParent != want {
		t.Fatalf("stored TraceParent %q, want the append span's %q", es[0].TraceParent, want)
	}
}
