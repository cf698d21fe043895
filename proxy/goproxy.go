package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/elazarl/goproxy"
	"github.com/rs/zerolog"
)

// forwarder is the one place the proxy uses github.com/elazarl/goproxy (see
// the package doc for what it does for us). It runs goproxy as a reverse
// proxy: Proxy.ServeHTTP hands it absolute-form requests for the upstream,
// whose round trip is the proxy's own (admit and roundTrip); goproxy's
// forward-proxy defaults are closed here.
type forwarder struct {
	gp *goproxy.ProxyHttpServer
}

// newForwarder builds the goproxy server. admit says whether a request came
// through Proxy.ServeHTTP; any other is answered with refusal (403 JSON),
// so goproxy never acts as a forward proxy. roundTrip sends admitted
// requests upstream and must never return an error (it answers 502 itself).
// Origin-form requests, which goproxy would hand to its NonproxyHandler,
// get refuse.
func newForwarder(log zerolog.Logger, tr http.RoundTripper, admit func(*http.Request) bool,
	roundTrip func(*http.Request) (*http.Response, error), refusal string, refuse http.HandlerFunc) *forwarder {
	gp := goproxy.NewProxyHttpServer()
	gp.Verbose = false
	gp.Logger = goproxyLogger{log: log.With().Str("lib", "goproxy").Logger()}
	gp.KeepAcceptEncoding = true // gzip passes through untouched
	// goproxy's own transport is never used (the OnRequest handler installs
	// roundTrip); replace its default (environment proxy, 2 idle
	// connections) anyway.
	if t, ok := tr.(*http.Transport); ok {
		gp.Tr = t
	} else {
		gp.Tr = &http.Transport{}
	}
	gp.ConnectDial = nil
	gp.OnRequest().HandleConnect(goproxy.AlwaysReject)
	rt := goproxy.RoundTripperFunc(func(r *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) { return roundTrip(r) })
	gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if !admit(r) {
			return r, goproxy.NewResponse(r, "application/json; charset=utf-8", http.StatusForbidden, refusal)
		}
		ctx.RoundTripper = rt
		return r, nil
	})
	gp.NonproxyHandler = refuse
	return &forwarder{gp: gp}
}

// ServeHTTP runs goproxy's pipeline for r, an absolute-form request for the
// upstream: the round trip, then status, headers, body and trailers copied
// to w.
func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.gp.ServeHTTP(w, r) }

// goproxyLogger routes goproxy's Printf logging into zerolog: its warnings at
// warn level, everything else at debug.
type goproxyLogger struct{ log zerolog.Logger }

var _ goproxy.Logger = goproxyLogger{}

// Printf implements goproxy.Logger.
func (l goproxyLogger) Printf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if strings.Contains(msg, "WARN: ") {
		l.log.Warn().Msg(msg)
		return
	}
	l.log.Debug().Msg(msg)
}
