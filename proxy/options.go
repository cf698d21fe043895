package proxy

import (
	"errors"
	"fmt"
	"github.com/rswebhooks/rswebhooks/tap"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// DefaultCaptureLimit is the default Options.CaptureLimit: at most this many
// bytes of each tapped request and response body are offered to the Tap.
const DefaultCaptureLimit = 1 << 20

// DefaultCaptureBudget is the default Options.CaptureBudget: all captures
// together hold at most this many bytes.
const DefaultCaptureBudget = 64 << 20

// DefaultUpgradeIdleTimeout is the default Options.UpgradeIdleTimeout. It is
// well above SignalR's 15 s keep-alive ping and IIS's 120 s connection timeout.
const DefaultUpgradeIdleTimeout = 10 * time.Minute

// Route serves some paths on the proxy listener itself instead of sending them
// upstream (for example the registrations API with --registrations-on-proxy).
type Route struct {
	// Prefix is a path such as "/api/webhooks/registrations". It matches the
	// path itself and anything below it ("/x" matches "/x", "/x/" and "/x/1",
	// not "/xy"), ignoring ASCII case as IIS does. Required; must start with "/".
	Prefix string
	// Handler serves the matching requests. Required.
	Handler http.Handler
}

// Options configures New. Only Upstream is required.
type Options struct {
	// Upstream is the report server's base URL (http or https). Required.
	// A path ("https://rs.example/reporting") names the virtual directory
	// the server is hosted under; request paths are forwarded unchanged
	// (clients keep using /reporting/...), so the server's Location headers,
	// cookie paths and links stay valid. Query, fragment and user info are
	// refused.
	Upstream *url.URL

	// Transport sends requests upstream. Default: NewTransport with zero
	// TransportOptions (256 idle connections per host, 60 s idle timeout,
	// TLS verification on, no proxy from the environment, no compression).
	Transport http.RoundTripper

	// HostHeader, when set, replaces the Host header sent upstream. Default
	// "": the client's Host is passed on unchanged.
	HostHeader string

	// TrustedProxies are the peers (load balancers, edge proxies) whose
	// X-Forwarded-For, X-Real-IP and Forwarded headers are passed on, with
	// the peer appended to X-Forwarded-For. From any other peer those
	// headers are replaced (X-Forwarded-For: the peer) or dropped. Default
	// none: rswebhooks is the edge.
	TrustedProxies []netip.Prefix

	// Tap is offered every non-safe exchange (see Tap). Nil: no tap.
	Tap tap.Tap

	// Tracer, when set, records a server span per request, continuing the
	// client's W3C traceparent; the Tap sees it in Observe's context. Nil
	// (the default): no spans and no cost. The request goes upstream
	// unchanged either way.
	Tracer trace.Tracer

	// CaptureLimit caps how many bytes of each tapped body are captured.
	// 0 means DefaultCaptureLimit (1 MiB); negative is refused.
	CaptureLimit int64

	// CaptureBudget caps the bytes all captures hold at once, whatever the
	// load. A body that would take the total past it is not captured: it
	// streams on untouched (never blocked, never buffered), the Exchange says
	// so (RequestSkipped, ResponseSkipped = SkipBudget) and
	// rswebhooks_capture_skipped_total{reason="budget"} counts it. 0 means
	// DefaultCaptureBudget (64 MiB); negative is refused.
	CaptureBudget int64

	// UpgradeIdleTimeout closes a WebSocket (or other Upgrade) tunnel after
	// no byte has moved in either direction for this long. 0 means
	// DefaultUpgradeIdleTimeout (10 min); negative disables it.
	UpgradeIdleTimeout time.Duration

	// Routes are served locally; the first matching Prefix wins. Nil: none.
	Routes []Route

	// Logger receives one access-log line per request (info; warn when the
	// upstream gave no answer) and goproxy's own messages (lib=goproxy). The
	// caller adds its component field. Zero value: discards.
	Logger zerolog.Logger

	// Registerer receives the proxy metrics (see NewMetrics). Nil: the metrics
	// are kept but not registered. Ignored when Metrics is set.
	Registerer prometheus.Registerer

	// Metrics, when set, is used instead of NewMetrics(Registerer), so several
	// proxies can share one set of metrics.
	Metrics *Metrics

	// Now is the clock for request timing and Exchange.Time. Default time.Now.
	Now func() time.Time
}

// validate checks opts and fills in defaults. Errors name the field and rule.
func (o *Options) validate() error {
	var errs []error
	switch u := o.Upstream; {
	case u == nil:
		errs = append(errs, errors.New("proxy: Options.Upstream is required"))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("proxy: Options.Upstream must be an http or https URL, got scheme %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, errors.New("proxy: Options.Upstream must have a host"))
	case u.User != nil:
		errs = append(errs, errors.New("proxy: Options.Upstream must not contain user info"))
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		errs = append(errs, errors.New("proxy: Options.Upstream must not have a query or fragment"))
	}
	if o.CaptureLimit < 0 {
		errs = append(errs, fmt.Errorf("proxy: Options.CaptureLimit must be >= 0, got %d", o.CaptureLimit))
	}
	if o.CaptureBudget < 0 {
		errs = append(errs, fmt.Errorf("proxy: Options.CaptureBudget must be >= 0, got %d", o.CaptureBudget))
	}
	if strings.ContainsAny(o.HostHeader, " \t\r\n/") {
		errs = append(errs, fmt.Errorf("proxy: Options.HostHeader must be a host[:port], got %q", o.HostHeader))
	}
	for i, rt := range o.Routes {
		if !strings.HasPrefix(rt.Prefix, "/") {
			errs = append(errs, fmt.Errorf("proxy: Options.Routes[%d].Prefix must start with \"/\", got %q", i, rt.Prefix))
		}
		if rt.Handler == nil {
			errs = append(errs, fmt.Errorf("proxy: Options.Routes[%d].Handler is required", i))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if o.CaptureLimit == 0 {
		o.CaptureLimit = DefaultCaptureLimit
	}
	if o.CaptureBudget == 0 {
		o.CaptureBudget = DefaultCaptureBudget
	}
	if o.UpgradeIdleTimeout == 0 {
		o.UpgradeIdleTimeout = DefaultUpgradeIdleTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		tr, err := NewTransport(TransportOptions{})
		if err != nil {
			return err
		}
		o.Transport = tr
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(o.Registerer)
	}
	return nil
}
