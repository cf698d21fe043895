package proxy

import (
	"context"
	"net/http"
	"net/http/httptrace"
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
	setForwarded(out.Header, pr.In)
}

// upgradeError answers 502 when an Upgrade request gets no upstream response.
func (p *Proxy) upgradeError(w http.ResponseWriter, r *http.Request, err error) {
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.err = err
	}
	if r.Context().Err() == nil {
		p.metrics.upstreamErrors.Inc()
	}
	p.writeJSON(w, http.StatusBadGateway, badGatewayBody)
}

// with1xx forwards 1xx informational responses (103 Early Hints, …) to the
// client as httputil.ReverseProxy does.
func with1xx(ctx context.Context, w *responseWriter) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			if code == http.StatusContinue {
				return nil // the client's own 100-continue is answered by net/http
			}
			h := w.Header()
			for k, vv := range header {
				h[k] = append(h[k][:0:0], vv...)
			}
			w.w.WriteHeader(code)
			clear(h)
			return nil
		},
	})
}
