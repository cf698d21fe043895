// Package spanexport builds the optional OpenTelemetry span export of
// rswebhooks: the SDK's tracer provider with an OTLP/HTTP exporter,
// configured by the standard OTEL_* environment variables. It is apart from
// package tracing so the parts that only carry trace context do not link
// the SDK and its exporter.
package spanexport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names the tracer of every rswebhooks span.
const InstrumentationName = "github.com/rswebhooks/rswebhooks"

// Options configure NewProvider.
type Options struct {
	// Enabled turns export on (the serve flag --otel). Export is also on
	// when OTEL_TRACES_EXPORTER is "otlp", and off whatever the flag says
	// when OTEL_SDK_DISABLED is "true" or OTEL_TRACES_EXPORTER is "none".
	Enabled bool
	// Version is the service.version resource attribute.
	Version string
	// Logger receives export errors (at most one line a minute).
	Logger zerolog.Logger
	// Getenv reads the environment; nil means os.Getenv. The OTLP exporter
	// itself reads OTEL_EXPORTER_OTLP_* from the process environment.
	Getenv func(string) string
	// Exporter replaces the OTLP exporter (tests use tracetest's in-memory
	// one, with a synchronous span processor).
	Exporter sdktrace.SpanExporter
}

// Provider is the span export when it is on.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Enabled reports whether opts turn export on (see Options.Enabled).
func Enabled(opts Options) bool {
	env := opts.Getenv
	if env == nil {
		env = os.Getenv
	}
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(env("OTEL_TRACES_EXPORTER"))) {
	case "otlp":
		return true
	case "none":
		return false
	}
	return opts.Enabled
}

// NewProvider returns the span export, or nil (and no error) when it is
// off. The exporter speaks OTLP over HTTP (http/protobuf), configured by
// the standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout,
// certificates, compression); sampling by OTEL_TRACES_SAMPLER; resource
// attributes by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func NewProvider(ctx context.Context, opts Options) (*Provider, error) {
	if !Enabled(opts) {
		return nil, nil
	}
	env := opts.Getenv
	if env == nil {
		env = os.Getenv
	}
	exp := opts.Exporter
	if exp == nil {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
			if p := strings.TrimSpace(env(k)); p != "" {
				if p != "http/protobuf" {
					return nil, fmt.Errorf("span export: %s=%q is not supported: rswebhooks exports OTLP over HTTP (http/protobuf, port 4318)", k, p)
				}
				break
			}
		}
		var err error
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return nil, fmt.Errorf("span export: OTLP exporter: %w", err)
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.version", opts.Version)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("span export: resource: %w", err)
	}
	if env("OTEL_SERVICE_NAME") == "" && !strings.Contains(env("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
		res, _ = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "rswebhooks")))
	}
	var proc sdktrace.SpanProcessor
	if opts.Exporter != nil {
		proc = sdktrace.NewSimpleSpanProcessor(exp)
	} else {
		// Batched, bounded: spans are dropped (not queued without limit,
		// never waited for) when the collector is slow or gone.
		proc = sdktrace.NewBatchSpanProcessor(&loggingExporter{SpanExporter: exp, log: opts.Logger})
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(res))
	return &Provider{tp: tp}, nil
}

// Tracer returns the tracer components use; nil when p is nil (export off).
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tp.Tracer(InstrumentationName)
}

// Shutdown flushes pending spans within ctx's deadline and stops export.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// loggingExporter logs export failures, at most once a minute: a missing
// collector must neither flood the log nor go unnoticed.
type loggingExporter struct {
	sdktrace.SpanExporter
	log  zerolog.Logger
	last time.Time // only the batch processor's goroutine exports
}

func (l *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := l.SpanExporter.ExportSpans(ctx, spans)
	if err != nil && time.Since(l.last) > time.Minute {
		l.last = time.Now()
		l.log.Warn().Err(err).Int("spans", len(spans)).Msg("span export failed; spans dropped (next failures are logged at most once a minute)")
	}
	// Reported here; returned, the SDK would print it to stderr through
	// OpenTelemetry's process-wide error handler.
	return nil
}
