package proxy

import (
	"net/http"
	"net/http/httputil"
	"net/textproto"
)

// rewriteUpgrade prepares an Upgrade request (WebSocket, SignalR, h2c…) for
// httputil.ReverseProxy, which tunnels it and closes both sides when either
// ends. goproxy's own WebSocket path leaves the client open, so it is not used.
func (p *Proxy) rewriteUpgrade(pr *httputil.ProxyRequest) {
	out := pr.Out
	out.URL.Scheme, out.URL.Host = p.upstream.Scheme, p.upstream.Host
	out.URL.Path, out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath // as sent, see toUpstream
	out.Host = pr.In.Host
	if p.hostHeader != "" {
		out.Host = p.hostHeader
	}
	out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	p.setForwarded(out.Header, pr.In, make([]string, 3))
}

// upgradeError answers 502 when an Upgrade request gets no upstream response.
func (p *Proxy) upgradeError(w http.ResponseWriter, r *http.Request, err error) {
	if ex := exchangeOf(r.Context()); ex != nil {
		ex.err = err
	}
	if r.Context().Err() == nil {
		p.metrics.upstreamErrors.Inc()
	}
	p.writeJSON(w, http.StatusBadGateway, badGatewayBody)
}

// got1xx forwards 1xx informational responses (103 Early Hints, …) to the
// client as httputil.ReverseProxy does. It is the exchange's
// httptrace.ClientTrace.Got1xxResponse.
func (ex *exchange) got1xx(code int, header textproto.MIMEHeader) error {
	if code == http.StatusContinue {
		return nil // the client's own 100-continue is answered by net/http
	}
	w := ex.w
	h := w.Header()
	for k, vv := range header {
		h[k] = append(h[k][:0:0], vv...)
	}
	w.w.WriteHeader(code)
	clear(h)
	return nil
}
