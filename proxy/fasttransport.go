package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// max1xx bounds the informational responses accepted before the final one,
// as net/http does.
const max1xx = 5

// errRetryable marks a failure on a pooled connection before any response
// byte arrived: the server had closed it while idle.
var errRetryable = errors.New("proxy: pooled upstream connection closed before the response")

// fastTransport sends the simplest and most frequent requests — GET and HEAD
// without a body to a plain http:// upstream — over its own pool of
// persistent HTTP/1.1 connections, writing the request and reading the
// response header on the caller's goroutine. net/http's Transport hands every
// request to two per-connection goroutines (writeLoop, readLoop); on a busy
// loopback proxy those hand-offs are most of the CPU. Everything else
// (bodies, TLS, upgrades, Expect, anything unusual) goes to fallback.
//
// A connection is reused only when its response was read to the end with
// proper framing (Content-Length or chunked, or a response without a body)
// and the server did not ask to close it. A half-read body closes it.
// A pooled connection the server closed while idle is retried once on a new
// connection (GET and HEAD are idempotent).
type fastTransport struct {
	fallback    *http.Transport
	host        string // URL host the pool serves (as in req.URL.Host)
	addr        string // host:port dialled
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration
	headerWait  time.Duration // response header timeout; 0: none
	readSize    int

	mu   sync.Mutex
	idle []*pconn // most recently used last
}

var _ http.RoundTripper = (*fastTransport)(nil)

// pconn is one persistent upstream connection with its buffers.
type pconn struct {
	t     *fastTransport
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	timer *time.Timer // closes the connection after idleTimeout in the pool
	idle  bool        // in t.idle; guarded by t.mu
}

// newFastTransport returns a fastTransport in front of tr for upstream host
// (as in URL.Host, scheme http), or nil when tr is configured in a way the
// fast path cannot honour (an environment proxy, keep-alives off,
// transparent compression, a connection cap, custom dialers for TLS).
func newFastTransport(tr *http.Transport, host string) *fastTransport {
	if tr == nil || tr.Proxy != nil || tr.DisableKeepAlives || !tr.DisableCompression ||
		tr.MaxConnsPerHost > 0 || tr.Dial != nil || tr.DialTLS != nil || tr.DialTLSContext != nil || //nolint:staticcheck // refuse deprecated dialers too
		tr.GetProxyConnectHeader != nil || tr.OnProxyConnectResponse != nil {
		return nil
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, "80")
	}
	ft := &fastTransport{
		fallback:    tr,
		host:        host,
		addr:        addr,
		dial:        tr.DialContext,
		maxIdle:     tr.MaxIdleConnsPerHost,
		idleTimeout: tr.IdleConnTimeout,
		headerWait:  tr.ResponseHeaderTimeout,
		readSize:    tr.ReadBufferSize,
	}
	if ft.dial == nil {
		ft.dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if ft.maxIdle <= 0 {
		ft.maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	if ft.readSize <= 0 {
		ft.readSize = 4 << 10
	}
	return ft
}

// eligible reports whether req can take the fast path.
func (t *fastTransport) eligible(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.URL.Scheme != "http" || req.URL.Host != t.host || req.Close || req.ContentLength != 0 ||
		(req.Body != nil && req.Body != http.NoBody) || len(req.TransferEncoding) > 0 || req.Trailer != nil {
		return false
	}
	h := req.Header
	if len(h["Upgrade"]) > 0 || len(h["Connection"]) > 0 || len(h["Expect"]) > 0 {
		return false
	}
	return true
}

// RoundTrip implements http.RoundTripper.
func (t *fastTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.eligible(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	pc := t.get()
	reused := pc != nil
	resp, err := t.try(ctx, req, pc)
	if errors.Is(err, errRetryable) {
		resp, err = t.try(ctx, req, nil)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return nil, fmt.Errorf("%s %s (pooled connection %v): %w", req.Method, t.addr, reused, err)
	}
	return resp, nil
}

// try sends req on pc (a pooled connection) or, when pc is nil, on a new one.
// A failure on a pooled connection before any response byte is errRetryable.
func (t *fastTransport) try(ctx context.Context, req *http.Request, pc *pconn) (*http.Response, error) {
	reused := pc != nil
	if pc == nil {
		var err error
		if pc, err = t.dialConn(ctx); err != nil {
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.Close() })
	fail := func(err error, retry bool) (*http.Response, error) {
		stop()
		_ = pc.conn.Close()
		if retry && reused && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %v", errRetryable, err)
		}
		return nil, err
	}
	err := req.Write(pc.bw) // flushes only a writer it made itself
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		return fail(err, true)
	}
	if t.headerWait > 0 {
		_ = pc.conn.SetReadDeadline(time.Now().Add(t.headerWait))
	}
	if _, err := pc.br.Peek(1); err != nil {
		return fail(err, pc.br.Buffered() == 0)
	}
	var resp *http.Response
	for n := 0; ; n++ {
		r, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err, false)
		}
		code := r.StatusCode
		if code < 100 || code >= 200 {
			resp = r
			break
		}
		if code == http.StatusSwitchingProtocols || n >= max1xx {
			return fail(fmt.Errorf("unexpected %d response", code), false)
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(r.Header)); err != nil {
				return fail(err, false)
			}
		}
	}
	if t.headerWait > 0 {
		_ = pc.conn.SetReadDeadline(time.Time{})
	}
	if resp.Body == http.NoBody || resp.Body == nil {
		// HEAD, 204, 304: the response ends with its header.
		if stop() && !resp.Close {
			t.put(pc)
		} else {
			_ = pc.conn.Close()
		}
		return resp, nil
	}
	resp.Body = &fastBody{pc: pc, rc: resp.Body, stop: stop, reuse: !resp.Close}
	return resp, nil
}

func (t *fastTransport) dialConn(ctx context.Context) (*pconn, error) {
	conn, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	pc := &pconn{t: t, conn: conn, br: bufio.NewReaderSize(conn, t.readSize), bw: bufio.NewWriterSize(conn, 4<<10)}
	return pc, nil
}

// get takes the most recently used idle connection, or returns nil.
func (t *fastTransport) get() *pconn {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.idle)
	if n == 0 {
		return nil
	}
	pc := t.idle[n-1]
	t.idle[n-1] = nil
	t.idle = t.idle[:n-1]
	pc.idle = false
	if pc.timer != nil {
		pc.timer.Stop()
	}
	return pc
}

// put returns a connection whose exchange is complete to the pool, or closes
// it when the pool is full.
func (t *fastTransport) put(pc *pconn) {
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		_ = pc.conn.Close()
		return
	}
	pc.idle = true
	t.idle = append(t.idle, pc)
	if t.idleTimeout > 0 {
		if pc.timer == nil {
			pc.timer = time.AfterFunc(t.idleTimeout, pc.expire)
		} else {
			pc.timer.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
}

// expire closes pc if it is still idle when its idle timer fires.
func (pc *pconn) expire() {
	t := pc.t
	t.mu.Lock()
	if !pc.idle {
		t.mu.Unlock()
		return
	}
	pc.idle = false
	for i, c := range t.idle {
		if c == pc {
			t.idle = append(t.idle[:i], t.idle[i+1:]...)
			t.idle[len(t.idle):cap(t.idle)][0] = nil
			break
		}
	}
	t.mu.Unlock()
	_ = pc.conn.Close()
}

// CloseIdleConnections closes the idle connections of both paths.
func (t *fastTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	for _, pc := range idle {
		pc.idle = false
		if pc.timer != nil {
			pc.timer.Stop()
		}
	}
	t.mu.Unlock()
	for _, pc := range idle {
		_ = pc.conn.Close()
	}
	t.fallback.CloseIdleConnections()
}

// fastBody is a response body on a pooled connection. Read to EOF, it
// returns the connection to the pool (when the response allows reuse);
// closed early or failing, it closes the connection.
type fastBody struct {
	pc    *pconn
	rc    io.ReadCloser // net/http's framing reader over pc.br
	stop  func() bool   // unregisters the context's close-on-cancel
	reuse bool
	state atomic.Int32 // bodyOpen, bodyEOF, bodyClosed
}

const (
	bodyOpen int32 = iota
	bodyEOF
	bodyClosed
)

var errBodyClosed = errors.New("proxy: read on closed upstream response body")

func (b *fastBody) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case bodyEOF:
		return 0, io.EOF
	case bodyClosed:
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(bodyEOF, b.reuse)
	} else if err != nil {
		b.finish(bodyClosed, false)
	}
	return n, err
}

// Close implements io.Closer. Before EOF it closes the connection; it never
// drains a body (that could be hundreds of MB).
func (b *fastBody) Close() error {
	b.finish(bodyClosed, false)
	return nil
}

func (b *fastBody) finish(state int32, reuse bool) {
	if !b.state.CompareAndSwap(bodyOpen, state) {
		return
	}
	if b.stop() && reuse {
		b.pc.t.put(b.pc)
		return
	}
	_ = b.pc.conn.Close()
}
