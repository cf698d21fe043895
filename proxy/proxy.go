// Package proxy is the transparent reverse proxy in front of the report
// server. It passes every method, path, header and body through unchanged
// (streamed, byte-identical, hop-by-hop headers handled as RFC 9110 says),
// and offers each non-safe exchange to a Tap (the detect side) before the
// client sees the response.
//
// What github.com/elazarl/goproxy does for us, behind one boundary
// (forwarder, in goproxy.go, the only file that imports it): it runs the
// request through its handler pipeline, in which our round trip sends it
// upstream, and writes the response back (status, headers copied as they
// are, the body copied as it streams, trailers), dropping the Proxy-*
// request headers on the way. Everything a reverse proxy needs beyond that
// is ours, because goproxy is a forward proxy and its defaults are wrong
// here: absolute-URI requests to other hosts and CONNECT are refused, the
// upstream transport is tuned (NewTransport), compression passes through,
// hop-by-hop headers are stripped and X-Forwarded-* set, streams are flushed
// (the responseWriter), a missing upstream answer is a logged 502, the tap
// runs inside the round trip so the response keeps its framing, and Upgrade
// requests (WebSocket, SignalR) are tunnelled by net/http/httputil, which
// closes both sides. The conformance test runs the same cases through
// httputil.ReverseProxy to keep the two in step.
//
// A client that hangs up cancels its upstream request, except for non-safe
// requests the Tap wants: those run to the end so their outcome is observed.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/tap"
)

// badGatewayBody is the body of the 502 answered when the upstream gives no response.
const badGatewayBody = `{"Message":"upstream unavailable"}`

// statusClientClosed is logged and counted (not sent) when the client went
// away before the upstream answered, as nginx does.
const statusClientClosed = 499

// Proxy is an http.Handler that forwards to the upstream. Build it with New.
type Proxy struct {
	upstream   *url.URL
	transport  http.RoundTripper
	hostHeader string
	trusted    []netip.Prefix
	tap        tap.Tap
	tracer     trace.Tracer
	capture    int64
	budget     *budget
	idle       time.Duration
	routes     []Route
	log        zerolog.Logger
	metrics    *Metrics
	now        func() time.Time

	fwd      *forwarder // goproxy, the only use of it
	upgrader *httputil.ReverseProxy
	bufs     *sync.Pool
}

var _ http.Handler = (*Proxy)(nil)

// exchangeKey is the context key of a request's exchange. Requests that
// came through Proxy.ServeHTTP carry one; the forwarder refuses any request
// without it, so goproxy can never act as a forward proxy.
type exchangeKey struct{}

// exchange is the per-request state shared by ServeHTTP, the forwarder and
// the round trip (which reaches it through the request's context), holding
// the per-request objects the hot path would otherwise allocate one by one.
type exchange struct {
	start     time.Time
	w         *responseWriter
	rw        responseWriter
	trace     httptrace.ClientTrace // forwards 1xx responses to the client
	body      body                  // the response body wrapper
	fwd       [4]string             // backing array of the X-Forwarded-* and X-Request-Id values
	path      string                // escaped, as the client sent it
	query     string
	requestID string
	observe   bool     // non-safe method and a Tap is set
	wants     bool     // the Tap wants bodies
	fields    []string // FieldTap: the fields it wants; nil: whole bodies
	reqBody   *captureBody
	err       error      // no upstream response
	span      trace.Span // with a Tracer only
}

func withExchange(ctx context.Context, ex *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// New validates opts and returns a Proxy.
func New(opts Options) (*Proxy, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	up := *opts.Upstream
	p := &Proxy{
		upstream:   &up,
		transport:  opts.Transport,
		hostHeader: opts.HostHeader,
		trusted:    append([]netip.Prefix(nil), opts.TrustedProxies...),
		tap:        opts.Tap,
		tracer:     opts.Tracer,
		capture:    opts.CaptureLimit,
		budget:     &budget{limit: opts.CaptureBudget, gauge: opts.Metrics.captureBytes},
		idle:       max(opts.UpgradeIdleTimeout, 0),
		routes:     append([]Route(nil), opts.Routes...),
		log:        opts.Logger,
		metrics:    opts.Metrics,
		now:        opts.Now,
		bufs:       newBufPool(),
	}

	p.fwd = newForwarder(p.log, p.transport,
		func(r *http.Request) bool { return exchangeOf(r.Context()) != nil }, p.roundTrip,
		`{"Message":"requests for other hosts are refused: this is a reverse proxy"}`, p.refuseNonproxy)

	p.upgrader = &httputil.ReverseProxy{
		Rewrite:      p.rewriteUpgrade,
		Transport:    p.transport,
		ErrorLog:     log.New(stdLogWriter{log: p.log}, "", 0),
		ErrorHandler: p.upgradeError,
	}
	return p, nil
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{start: p.now(), path: r.URL.EscapedPath(), query: r.URL.RawQuery}
	ex.rw = responseWriter{w: w, idle: p.idle}
	rw := &ex.rw
	rw.flusher, _ = w.(http.Flusher)
	ex.w = rw
	defer p.finish(ex, r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel value compared as net/http does
				panic(v)
			}
			ex.err = fmt.Errorf("proxy: panic: %v", v)
			if rw.status == 0 {
				p.writeJSON(rw, http.StatusBadGateway, badGatewayBody)
			}
		}
	}()

	if r.Method == http.MethodConnect {
		p.writeJSON(rw, http.StatusMethodNotAllowed, `{"Message":"CONNECT is not supported: this is a reverse proxy"}`)
		return
	}
	if r.URL.IsAbs() || r.URL.Host != "" {
		if !strings.EqualFold(r.URL.Host, p.upstream.Host) && !strings.EqualFold(r.URL.Host, p.hostHeader) {
			p.writeJSON(rw, http.StatusForbidden, `{"Message":"requests for other hosts are refused: this is a reverse proxy"}`)
			return
		}
		u := *r.URL
		u.Scheme, u.Host = "", ""
		r = r.Clone(r.Context())
		r.URL = &u
	}

	ex.requestID = r.Header.Get("X-Request-Id")
	if ex.requestID == "" || len(ex.requestID) > 128 {
		ex.requestID = newRequestID(ex.start)
		ex.fwd[3] = ex.requestID
		r.Header["X-Request-Id"] = ex.fwd[3:4:4]
	}

	if p.tracer != nil {
		r = p.startSpan(ex, r)
	}

	for _, rt := range p.routes {
		if hasPathPrefix(r.URL.Path, rt.Prefix) {
			l := p.log.With().Str("request_id", ex.requestID).Logger()
			rt.Handler.ServeHTTP(rw, r.WithContext(l.WithContext(r.Context())))
			return
		}
	}

	if isWebSocketHandshake(r) {
		p.upgrader.ServeHTTP(rw, r.WithContext(withExchange(r.Context(), ex)))
		return
	}

	ctx := r.Context()
	if p.tap != nil && !isSafe(r.Method) {
		ex.observe = true
		ex.wants, ex.fields = p.tapWants(r.Method, ex.path, ex.requestID)
		if ex.wants {
			// A watched mutation runs to its end even if the client hangs up,
			// so the tap still sees its outcome (no lost events). Everything
			// else is cancelled upstream as soon as the client goes away.
			ctx = context.WithoutCancel(ctx)
		}
	}
	ex.trace.Got1xxResponse = ex.got1xx
	out := r.WithContext(withExchange(httptrace.WithClientTrace(ctx, &ex.trace), ex))
	// The request goes to goproxy in absolute form, so its pipeline
	// (onRequest, roundTrip) runs on the first pass. The path goes upstream
	// as sent: the upstream URL's path is the virtual directory the server
	// lives under, not a mount point, so the server's own absolute links,
	// Location headers and cookie paths stay valid through the proxy.
	u := *r.URL
	u.Scheme, u.Host = p.upstream.Scheme, p.upstream.Host
	out.URL = &u
	if p.hostHeader != "" {
		out.Host = p.hostHeader
	}
	out.Close = false // a client's Connection: close must not close the pooled upstream connection
	teTrailers := removeHopByHop(out.Header)
	if teTrailers {
		out.Header.Set("Te", "trailers")
	}
	p.setForwarded(out.Header, r, ex.fwd[:3])
	p.fwd.ServeHTTP(rw, out)
}

// refuseNonproxy answers origin-form requests that reach the forwarder.
// ServeHTTP hands it only absolute-form requests for the upstream, so such a
// request did not come through it and is refused.
func (p *Proxy) refuseNonproxy(w http.ResponseWriter, _ *http.Request) {
	p.writeJSON(w, http.StatusForbidden, `{"Message":"not a proxied request"}`)
}

// roundTrip sends the request upstream. It never returns an error: a missing
// upstream answer becomes a 502 response. The tap runs here, inside the round
// trip, so the forwarder sees the body it gets back as the original one and
// keeps the response's framing (Content-Length) as the upstream sent it.
func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	ex := exchangeOf(req.Context())
	if ex == nil { // cannot happen: the forwarder admits only requests with one
		return nil, errors.New("proxy: request without exchange state")
	}
	if ex.wants && req.Body != nil && req.Body != http.NoBody && (ex.fields == nil || len(ex.fields) > 0) {
		ex.reqBody = &captureBody{rc: req.Body, limit: p.capture, hint: req.ContentLength,
			grant: grant{b: p.budget}, metrics: p.metrics}
		if ex.fields != nil && identity(req.Header) {
			ex.reqBody.scan = newScanner(req.Header, ex.fields)
		}
		req.Body = ex.reqBody
		defer ex.reqBody.release()
	}

	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		ex.err = err
		if req.Context().Err() == nil {
			p.metrics.upstreamErrors.Inc()
		}
		return badGateway(req), nil
	}
	removeHopByHop(resp.Header)
	if ex.observe {
		p.observe(ex, req, resp)
	}
	if resp.Body != nil && resp.Body != http.NoBody {
		if _, ok := resp.Body.(*body); !ok {
			ex.body = body{r: resp.Body, c: resp.Body, bufs: p.bufs}
			resp.Body = &ex.body
		}
	}
	return resp, nil
}

// observe builds the Exchange, captures the response prefix of a wanted 2xx,
// and calls the Tap synchronously. A panicking Tap is logged, not fatal.
func (p *Proxy) observe(ex *exchange, req *http.Request, resp *http.Response) {
	x := &tap.Exchange{
		Method:         req.Method,
		Path:           ex.path,
		Query:          ex.query,
		RequestHeader:  req.Header,
		Status:         resp.StatusCode,
		ResponseHeader: resp.Header,
		RequestID:      ex.requestID,
		Time:           ex.start,
	}
	if ex.wants {
		if ex.reqBody != nil {
			x.RequestBody, x.RequestTruncated, x.RequestSkipped = ex.reqBody.take()
			if ex.fields != nil && ex.reqBody.scan == nil && !x.RequestTruncated && len(x.RequestBody) > 0 {
				x.RequestBody, x.RequestTruncated, x.RequestDecoded = p.scanCompressed(ex, x.RequestBody, req.Header, newScanner(req.Header, ex.fields))
			}
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 && req.Method != http.MethodHead &&
			resp.Body != nil && resp.Body != http.NoBody && (ex.fields == nil || len(ex.fields) > 0) {
			var scan *fieldScanner
			sg := grant{b: p.budget} // the scanner's own bytes, held until Observe returns
			defer sg.free()
			if ex.fields != nil && identity(resp.Header) {
				scan = newFieldScanner(ex.fields)
			}
			p.captureResponse(x, resp, scan, &sg)
			if ex.fields != nil && scan == nil && !x.ResponseTruncated && len(x.ResponseBody) > 0 {
				x.ResponseBody, x.ResponseTruncated, x.ResponseDecoded = p.scanCompressed(ex, x.ResponseBody, resp.Header, newFieldScanner(ex.fields))
			}
		}
	}
	defer func() {
		if v := recover(); v != nil {
			p.log.Error().Str("request_id", ex.requestID).Interface("panic", v).Msg("tap panicked; response passed through")
		}
	}()
	// The upstream has already acted on the request: a client that hangs up
	// now must not cancel what the tap records about it.
	p.tap.Observe(context.WithoutCancel(req.Context()), x)
}

// captureResponse reads the response's prefix (up to the capture limit, within
// the budget) into x and puts it back in front of the rest of the body, so the
// client gets every byte. The prefix's bytes go back to the budget once
// replayed.
func (p *Proxy) captureResponse(x *tap.Exchange, resp *http.Response, scan *fieldScanner, sg *grant) {
	pr := &prefixReader{grant: grant{b: p.budget}}
	var buf []byte
	var spent bool
	var rerr error
	if scan == nil || sg.grow(scanReserve) {
		buf, spent, rerr = readPrefix(resp.Body, p.capture, resp.ContentLength, &pr.grant, scan)
	} else {
		spent = true
	}
	pr.b = buf
	x.ResponseBody = buf
	if scan != nil {
		b, complete := scan.result()
		x.ResponseBody, x.ResponseTruncated = b, !complete
		if spent {
			x.ResponseBody = nil
		}
	}
	switch {
	case spent:
		x.ResponseTruncated, x.ResponseSkipped = true, tap.SkipBudget
		p.metrics.captureSkipped(tap.SkipBudget)
	case int64(len(buf)) > p.capture && scan != nil:
		x.ResponseSkipped = tap.SkipLimit
		p.metrics.captureSkipped(tap.SkipLimit)
	case int64(len(buf)) > p.capture:
		x.ResponseBody, x.ResponseTruncated, x.ResponseSkipped = buf[:p.capture], true, tap.SkipLimit
		p.metrics.captureSkipped(tap.SkipLimit)
	}
	rest := resp.Body
	var tail io.Reader = rest
	if rerr != nil {
		x.ResponseTruncated = true
		tail = errReader{err: rerr}
	}
	resp.Body = &body{r: io.MultiReader(pr, tail), c: prefixCloser{c: rest, p: pr}, bufs: p.bufs}
}

// scanCompressed inflates a captured compressed body through s (see
// decodeScan). The inflater's window and the scanner take scanReserve and
// 64 KiB of the budget for the moment; without them, or with an encoding it
// does not know, the body is offered as captured (still encoded). A body that
// does not inflate, or inflates past the capture limit, is offered as
// nothing, truncated.
func (p *Proxy) scanCompressed(ex *exchange, b []byte, h http.Header, s bodyScanner) (out []byte, truncated, decoded bool) {
	g := grant{b: p.budget}
	defer g.free()
	if !g.grow(scanReserve + 64<<10) {
		return b, false, false
	}
	complete, err := decodeScan(b, h.Get("Content-Encoding"), s, p.capture)
	switch {
	case errors.Is(err, tap.ErrUnsupportedEncoding):
		return b, false, false
	case err != nil:
		p.log.Debug().Err(err).Str("request_id", ex.requestID).Msg("compressed body not scanned")
		return nil, true, true
	}
	res, _ := s.result()
	return res, !complete, true
}

// tapWants asks the Tap whether it wants bodies and, for a FieldTap, which
// fields; a panic counts as no.
func (p *Proxy) tapWants(method, path, requestID string) (wants bool, fields []string) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error().Str("request_id", requestID).Interface("panic", v).Msg("tap panicked in Wants")
			wants, fields = false, nil
		}
	}()
	if !p.tap.Wants(method, path) {
		return false, nil
	}
	if ft, ok := p.tap.(tap.FieldTap); ok {
		return true, ft.Fields(method, path)
	}
	return true, nil
}

// identity reports whether a body is sent as is (no Content-Encoding), so
// it can be scanned as it streams.
func identity(h http.Header) bool {
	ce := strings.TrimSpace(h.Get("Content-Encoding"))
	return ce == "" || strings.EqualFold(ce, "identity")
}

// finish writes the access-log line and the metrics of one request.
func (p *Proxy) finish(ex *exchange, r *http.Request) {
	d := p.now().Sub(ex.start)
	status := ex.w.status
	if status == 0 {
		status = http.StatusOK
	}
	clientGone := ex.err != nil && r.Context().Err() != nil
	if clientGone {
		status = statusClientClosed
	}
	p.metrics.observe(r.Method, status, d.Seconds())
	if ex.span != nil {
		endSpan(ex.span, status)
	}

	ev := p.log.Info()
	if ex.err != nil && !clientGone {
		ev = p.log.Warn()
	}
	if !ev.Enabled() {
		return
	}
	ev = ev.Str("method", r.Method).
		Str("path", r.URL.EscapedPath()).
		Int("status", status).
		Int64("bytes", ex.w.written).
		Float64("duration_ms", float64(d.Microseconds())/1000).
		Str("request_id", ex.requestID).
		Str("remote", r.RemoteAddr)
	if ex.err != nil {
		ev = ev.Str("error", rswebhooks.RedactError(ex.err))
	}
	ev.Msg("request")
}

func (p *Proxy) writeJSON(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func badGateway(req *http.Request) *http.Response {
	return &http.Response{
		Status:     "502 Bad Gateway",
		StatusCode: http.StatusBadGateway,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":           {"application/json; charset=utf-8"},
			"Content-Length":         {fmt.Sprint(len(badGatewayBody))},
			"X-Content-Type-Options": {"nosniff"},
		},
		ContentLength: int64(len(badGatewayBody)),
		Body:          io.NopCloser(strings.NewReader(badGatewayBody)),
		Request:       req,
	}
}

// isSafe reports whether a method is safe (RFC 9110 §9.2.1): never tapped.
func isSafe(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// CheckUpstream reports whether the upstream answers at all (any HTTP status
// counts), with a 5 s bound. Meant for /readyz.
func (p *Proxy) CheckUpstream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, p.upstream.String(), nil)
	if err != nil {
		return fmt.Errorf("proxy: upstream check: %w", err)
	}
	if p.hostHeader != "" {
		req.Host = p.hostHeader
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("proxy: upstream %s unreachable: %s", rswebhooks.RedactURL(p.upstream.String()), rswebhooks.RedactError(err))
	}
	_ = resp.Body.Close()
	return nil
}
