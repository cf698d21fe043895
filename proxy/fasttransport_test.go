package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fastFixture is a fastTransport in front of NewTransport for up, with
// counted dials.
type fastFixture struct {
	ft    *fastTransport
	dials atomic.Int64
	base  string
}

func newFastFixture(t *testing.T, up *upstream, mod func(*TransportOptions)) *fastFixture {
	t.Helper()
	o := TransportOptions{}
	if mod != nil {
		mod(&o)
	}
	tr, err := NewTransport(o)
	if err != nil {
		t.Fatal(err)
	}
	f := &fastFixture{base: up.URL}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		f.dials.Add(1)
		return dial(ctx, network, addr)
	}
	f.ft = newFastTransport(tr, up.url(t).Host)
	if f.ft == nil {
		t.Fatal("newFastTransport refused NewTransport's transport")
	}
	t.Cleanup(f.ft.CloseIdleConnections)
	return f
}

func (f *fastFixture) idleLen() int {
	f.ft.mu.Lock()
	defer f.ft.mu.Unlock()
	return len(f.ft.idle)
}

// get sends method path through the fast transport, requires that it took
// the fast path, and returns the response with its body unread.
func (f *fastFixture) send(t *testing.T, ctx context.Context, method, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !f.ft.eligible(req) {
		t.Fatalf("%s %s not eligible for the fast path", method, path)
	}
	resp, err := f.ft.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (f *fastFixture) getAll(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp := f.send(t, context.Background(), http.MethodGet, path)
	if _, ok := resp.Body.(*fastBody); !ok && resp.Body != http.NoBody {
		t.Fatalf("GET %s: body %T, want the fast path's", path, resp.Body)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", path, err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func fastUpstream(t *testing.T) *upstream {
	t.Helper()
	return newUpstream(t, fastHandler())
}

func fastHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			for i := range 3 {
				_, _ = io.WriteString(w, strings.Repeat(string(rune('a'+i)), 100))
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Sum", "300")
		case "/big":
			_, _ = io.Copy(w, newPattern(4<<20))
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			_, _ = io.WriteString(w, "hello "+r.URL.Path)
		}
	})
}

func TestFastTransportReusesConnectionAcrossGETs(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	for i := range 20 {
		path := "/a"
		if i%2 == 1 {
			path = "/chunked"
		}
		resp, body := f.getAll(t, path)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if path == "/chunked" {
			if body != strings.Repeat("a", 100)+strings.Repeat("b", 100)+strings.Repeat("c", 100) || resp.Trailer.Get("X-Sum") != "300" {
				t.Fatalf("chunked body %q trailer %v", body, resp.Trailer)
			}
		} else if body != "hello /a" {
			t.Fatalf("body %q", body)
		}
		if n := f.idleLen(); n != 1 {
			t.Fatalf("after request %d: %d idle connections, want 1", i, n)
		}
	}
	if n := up.newConns.Load(); n != 1 {
		t.Fatalf("%d upstream connections for 20 sequential GETs, want 1", n)
	}
}

func TestFastTransportHalfReadBodyIsNotReused(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	resp := f.send(t, context.Background(), http.MethodGet, "/big")
	buf := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
	if n := f.idleLen(); n != 0 {
		t.Fatalf("%d idle connections after a half-read body, want 0", n)
	}
	if _, body := f.getAll(t, "/x"); body != "hello /x" {
		t.Fatalf("next body %q", body)
	}
	if n := up.newConns.Load(); n != 2 {
		t.Fatalf("%d upstream connections, want 2 (the half-read one closed)", n)
	}
}

func TestFastTransportRetriesWhenServerClosedIdleConn(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	f.getAll(t, "/a")
	if f.idleLen() != 1 {
		t.Fatal("connection not pooled")
	}
	up.CloseClientConnections() // the server drops the idle connection
	for i := range 3 {
		if resp, body := f.getAll(t, "/b"); resp.StatusCode != 200 || body != "hello /b" {
			t.Fatalf("request %d after the server closed the pooled connection: %d %q", i, resp.StatusCode, body)
		}
	}
	if d := f.dials.Load(); d != 2 {
		t.Fatalf("%d dials, want 2 (one retry on a new connection, then reuse)", d)
	}
}

func TestFastTransportRetriesOnlyOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close() // never answers
		}
	}()
	tr, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int64
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	ft := newFastTransport(tr, ln.Addr().String())
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	if _, err := ft.RoundTrip(req); err == nil {
		t.Fatal("no error from a server that closes every connection")
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("%d dials, want 1: a new connection is not retried", d)
	}
}

func TestFastTransportConnectionCloseFromUpstreamNotReused(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	for i := range 3 {
		if _, body := f.getAll(t, "/close"); body != "bye" {
			t.Fatalf("body %q", body)
		}
		if n := f.idleLen(); n != 0 {
			t.Fatalf("after request %d: %d idle connections, want 0", i, n)
		}
	}
	if d := f.dials.Load(); d != 3 {
		t.Fatalf("%d dials, want 3", d)
	}
}

func TestFastTransportBodilessResponses(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodHead, "/a", 200},
		{http.MethodGet, "/204", 204},
		{http.MethodGet, "/304", 304},
		{http.MethodHead, "/sized", 200},
		{http.MethodGet, "/a", 200},
	} {
		resp := f.send(t, context.Background(), c.method, c.path)
		if resp.StatusCode != c.status {
			t.Fatalf("%s %s: status %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		if c.method == http.MethodHead || c.status != 200 {
			if resp.Body != http.NoBody {
				t.Fatalf("%s %s: body %T, want NoBody", c.method, c.path, resp.Body)
			}
			// The connection is back in the pool as soon as the header is read.
			if n := f.idleLen(); n != 1 {
				t.Fatalf("%s %s: %d idle connections, want 1", c.method, c.path, n)
			}
		}
		if c.method == http.MethodHead && c.path == "/sized" && resp.ContentLength != int64(len("hello /sized")) {
			t.Fatalf("HEAD /sized Content-Length %d", resp.ContentLength)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := up.newConns.Load(); n != 1 {
		t.Fatalf("%d upstream connections, want 1", n)
	}
}

func TestFastTransportCancellation(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	upCancelled, started := make(chan struct{}, 2), make(chan struct{}, 2)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		if r.URL.Path == "/mid-body" {
			_, _ = io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
			upCancelled <- struct{}{}
		case <-release:
		}
	}))
	f := newFastFixture(t, up, nil)

	t.Run("mid-header", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/mid-header", nil)
			resp, err := f.ft.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		recv(t, started, "upstream to get the request")
		cancel()
		if err := recv(t, errc, "RoundTrip to return"); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		recv(t, upCancelled, "upstream to see the cancellation")
	})

	t.Run("mid-body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		resp := f.send(t, ctx, http.MethodGet, "/mid-body")
		recv(t, started, "upstream to get the request")
		buf := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
			t.Fatalf("read %q %v", buf, err)
		}
		cancel()
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Fatal("body read to the end after cancellation")
		}
		resp.Body.Close()
		recv(t, upCancelled, "upstream to see the cancellation")
		if n := f.idleLen(); n != 0 {
			t.Fatalf("%d idle connections after a cancelled body", n)
		}
	})
}

func TestFastTransportIdleTimeoutAndMaxIdle(t *testing.T) {
	closed := make(chan struct{}, 8)
	up := &upstream{Server: httptest.NewUnstartedServer(fastHandler())}
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	f := newFastFixture(t, up, func(o *TransportOptions) { o.MaxIdleConnsPerHost = 1 })
	// Two responses open at once: two connections; only one fits the pool.
	r1 := f.send(t, context.Background(), http.MethodGet, "/a")
	r2 := f.send(t, context.Background(), http.MethodGet, "/b")
	for _, r := range []*http.Response{r1, r2} {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if n := f.idleLen(); n != 1 {
		t.Fatalf("%d idle connections, want MaxIdleConnsPerHost 1", n)
	}
	recv(t, closed, "the connection beyond MaxIdleConnsPerHost to close")

	g := newFastFixture(t, up, func(o *TransportOptions) { o.IdleConnTimeout = 20 * time.Millisecond })
	g.getAll(t, "/c")
	// f's pooled connection stays; g's closes after its idle timeout.
	recv(t, closed, "the idle connection to close after IdleConnTimeout")
	if n := g.idleLen(); n != 0 {
		t.Fatalf("%d idle connections after the idle timeout", n)
	}
	if _, body := g.getAll(t, "/d"); body != "hello /d" {
		t.Fatalf("body %q", body)
	}
}

func TestFastTransportConcurrent(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	const workers, each = 8, 40
	var halfRead atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				path := "/p"
				switch (w + i) % 4 {
				case 1:
					path = "/chunked"
				case 2:
					path = "/204"
				case 3:
					// half-read and closed
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, f.base+"/big", nil)
					resp, err := f.ft.RoundTrip(req)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.ReadFull(resp.Body, make([]byte, 10))
					resp.Body.Close()
					halfRead.Add(1)
					continue
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, f.base+path, nil)
				resp, err := f.ft.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || (path == "/p" && string(b) != "hello /p") || (path == "/chunked" && len(b) != 300) {
					t.Errorf("%s: %q %v", path, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// At most workers connections are open at once, and only a half-read
	// body closes one: every other response leaves its connection pooled.
	if d, max := f.dials.Load(), workers+halfRead.Load(); d > max {
		t.Fatalf("%d dials, want at most %d (%d workers, %d half-read bodies)", d, max, workers, halfRead.Load())
	}
	if n := f.idleLen(); n > workers {
		t.Fatalf("%d idle connections after %d workers", n, workers)
	}
}

func TestFastTransportFallsBack(t *testing.T) {
	up := fastUpstream(t)
	f := newFastFixture(t, up, nil)
	for _, c := range []struct {
		name string
		req  func() *http.Request
	}{
		{"POST", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.base+"/a", strings.NewReader("x"))
			return r
		}},
		{"GET with body", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, f.base+"/a", strings.NewReader("x"))
			return r
		}},
		{"Expect", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, f.base+"/a", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}},
		{"Upgrade", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, f.base+"/a", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}},
		{"https", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "https"+strings.TrimPrefix(f.base, "http")+"/a", nil)
			return r
		}},
	} {
		if f.ft.eligible(c.req()) {
			t.Errorf("%s took the fast path", c.name)
		}
	}
	r, _ := http.NewRequest(http.MethodPost, f.base+"/a", strings.NewReader("x"))
	resp, err := f.ft.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, ok := resp.Body.(*fastBody); ok {
		t.Fatal("POST went through the fast path")
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "hello /a" {
		t.Fatalf("body %q", b)
	}
	tr, _ := NewTransport(TransportOptions{})
	tr.DisableCompression = false
	if newFastTransport(tr, "x:80") != nil {
		t.Fatal("fast path with transparent compression")
	}
}

func TestProxyUsesFastTransportForPlainHTTP(t *testing.T) {
	up := fastUpstream(t)
	px := newTestProxy(t, up.url(t), nil)
	if _, ok := px.p.send.(*fastTransport); !ok {
		t.Fatalf("proxy for an http upstream sends through %T, want *fastTransport", px.p.send)
	}
	resp, body := do(t, client(), newReq(t, http.MethodGet, px.URL+"/through", nil))
	if resp.StatusCode != 200 || string(body) != "hello /through" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	ft := px.p.send.(*fastTransport)
	ft.mu.Lock()
	n := len(ft.idle)
	ft.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d pooled fast-path connections after a GET, want 1", n)
	}
	tls := newTestProxy(t, &url.URL{Scheme: "https", Host: "127.0.0.1:1"}, nil)
	if _, ok := tls.p.send.(*fastTransport); ok {
		t.Fatal("https upstream took the fast path")
	}
}
