package deliver

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/tracing"
)

// traceAttempt sets the attempt's traceparent (and the event's tracestate,
// when the call had one): a new span in the event's
// trace (see tracing.EventParent). With a Tracer it is the span it starts
// and returns (the caller ends it); without, a span id of its own and nil.
func (e *Engine) traceAttempt(req *http.Request, d *rswebhooks.Delivery, w *rswebhooks.Webhook, n int) trace.Span {
	parent := tracing.EventParent(&d.Event)
	if e.opts.Tracer == nil {
		tracing.Inject(req.Header, tracing.ChildOf(parent))
		return nil
	}
	ctx := trace.ContextWithRemoteSpanContext(req.Context(), parent)
	_, span := e.opts.Tracer.Start(ctx, "webhook attempt", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("rswebhooks.delivery_id", d.ID),
			attribute.String("rswebhooks.webhook_id", w.ID),
			attribute.String("rswebhooks.event_id", d.EventID),
			attribute.Int("rswebhooks.attempt", n),
			attribute.String("http.request.method", http.MethodPost),
			attribute.String("server.address", req.URL.Hostname()),
		))
	tracing.Inject(req.Header, span.SpanContext())
	return span
}

// endAttemptSpan records the attempt's outcome on span (nil: none).
func endAttemptSpan(span trace.Span, status int, errText string) {
	if span == nil {
		return
	}
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case errText != "":
		span.SetStatus(codes.Error, errText)
	case status < 200 || status > 299:
		span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(status))
	}
	span.End()
}

// startFanOutSpan starts the span of the fan-out of ev; nil without a Tracer.
func (e *Engine) startFanOutSpan(ctx context.Context, ev *rswebhooks.Event, deliveries int) trace.Span {
	if e.opts.Tracer == nil {
		return nil
	}
	ctx = trace.ContextWithRemoteSpanContext(ctx, tracing.EventParent(ev))
	_, span := e.opts.Tracer.Start(ctx, "event fan-out", trace.WithAttributes(
		attribute.String("rswebhooks.event_id", ev.ID),
		attribute.Int("rswebhooks.deliveries", deliveries)))
	return span
}

// endSpan ends span (nil: none), marked failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
