package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

func TestNewValidates(t *testing.T) {
	good, _ := url.Parse("http://127.0.0.1:1")
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"no upstream", Options{}, "Options.Upstream is required"},
		{"bad scheme", Options{Upstream: &url.URL{Scheme: "ftp", Host: "x"}}, "http or https"},
		{"no host", Options{Upstream: &url.URL{Scheme: "http"}}, "must have a host"},
		{"query", Options{Upstream: &url.URL{Scheme: "http", Host: "x", RawQuery: "a=1"}}, "query"},
		{"negative cap", Options{Upstream: good, CaptureLimit: -1}, "Options.CaptureLimit must be >= 0"},
		{"route prefix", Options{Upstream: good, Routes: []Route{{Prefix: "x", Handler: http.NotFoundHandler()}}}, "Options.Routes[0].Prefix"},
		{"route handler", Options{Upstream: good, Routes: []Route{{Prefix: "/x"}}}, "Options.Routes[0].Handler is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := NewTransport(TransportOptions{MaxIdleConnsPerHost: -1}); err == nil {
		t.Fatal("NewTransport accepted MaxIdleConnsPerHost -1")
	}
	if _, err := NewTransport(TransportOptions{CAFile: "/nonexistent.pem"}); err == nil || !strings.Contains(err.Error(), "CAFile") {
		t.Fatalf("NewTransport with missing CAFile: %v", err)
	}
}

func TestNewTransportDefaults(t *testing.T) {
	tr, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Proxy != nil || !tr.DisableCompression || tr.MaxIdleConnsPerHost != 256 ||
		tr.IdleConnTimeout.Seconds() != 60 || tr.TLSClientConfig.InsecureSkipVerify || !tr.ForceAttemptHTTP2 {
		t.Fatalf("unexpected transport defaults: %+v", tr)
	}
}

// TestBodiesByteIdentical streams 0 B, 1 MiB and 512 MiB each way and
// compares sha256 on both sides; nothing holds a whole body in memory.
func TestBodiesByteIdentical(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			}
			_, _ = io.Copy(w, newPattern(n))
		}
	}))
	px := newTestProxy(t, up.url(t), nil)
	c := client()
	for _, size := range []int64{0, 1 << 20, 512 << 20} {
		want := sha256.New()
		_, _ = io.Copy(want, newPattern(size))
		wantSum := hex.EncodeToString(want.Sum(nil))

		t.Run(fmt.Sprintf("upload %d", size), func(t *testing.T) {
			req := newReq(t, http.MethodPost, px.URL+"/upload", newPattern(size))
			req.ContentLength = size
			resp, b := testutil.Do(t, c, req)
			if got := string(b); resp.StatusCode != 200 || got != fmt.Sprintf("%d %s", size, wantSum) {
				t.Fatalf("upstream saw %q (status %d), want %d bytes with sha256 %s", got, resp.StatusCode, size, wantSum)
			}
		})
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("download %d chunked=%v", size, chunked), func(t *testing.T) {
				u := fmt.Sprintf("%s/download?n=%d", px.URL, size)
				if chunked {
					u += "&chunked=1"
				}
				resp, err := c.Do(newReq(t, http.MethodGet, u, nil))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				h := sha256.New()
				n, err := io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
				if err != nil {
					t.Fatal(err)
				}
				if got := hex.EncodeToString(h.Sum(nil)); n != size || got != wantSum {
					t.Fatalf("got %d bytes sha256 %s, want %d bytes %s", n, got, size, wantSum)
				}
				if !chunked && size > 0 && resp.ContentLength != size {
					t.Fatalf("Content-Length = %d, want %d", resp.ContentLength, size)
				}
			})
		}
	}
}

func TestGzipPassesThroughByteIdentical(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(bytes.Repeat([]byte(`{"Name":"report","Id":"x"},`), 2000))
	_ = zw.Close()
	var sawAE []string
	var mu sync.Mutex
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sawAE = append(sawAE, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(zipped.Len()))
			_, _ = w.Write(zipped.Bytes())
			return
		}
		_, _ = w.Write([]byte("plain"))
	}))
	px := newTestProxy(t, up.url(t), nil)
	req := newReq(t, http.MethodGet, px.URL+"/api/reportserver/v2/reports", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	resp, b := testutil.Do(t, client(), req)
	if !bytes.Equal(b, zipped.Bytes()) || resp.Header.Get("Content-Encoding") != "gzip" || resp.ContentLength != int64(zipped.Len()) {
		t.Fatalf("got %d bytes, Content-Encoding %q, Content-Length %d; want the %d gzip bytes untouched",
			len(b), resp.Header.Get("Content-Encoding"), resp.ContentLength, zipped.Len())
	}
	// A client that asks for no compression gets none: the proxy adds no Accept-Encoding.
	_, b = testutil.Do(t, client(), newReq(t, http.MethodGet, px.URL+"/", nil))
	if string(b) != "plain" {
		t.Fatalf("client without Accept-Encoding got %q", b)
	}
	if sawAE[0] != "gzip, deflate" || sawAE[1] != "" {
		t.Fatalf("upstream saw Accept-Encoding %q", sawAE)
	}
}

func TestHeadersCookiesLocationAndRedirectNotFollowed(t *testing.T) {
	var hits sync.Map
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := hits.LoadOrStore(r.URL.Path, new(int))
		*(n.(*int))++
		h := w.Header()
		h.Add("Set-Cookie", ".AspNet.ApplicationCookie=abc; Domain=rs.example; Path=/; HttpOnly")
		h.Add("Set-Cookie", "lang=en; Path=/reporting; Secure")
		h.Add("X-Multi", "a")
		h.Add("X-Multi", "b")
		h.Set("X-Frame-Options", "SAMEORIGIN")
		if r.URL.Path == "/login" {
			h.Set("Location", "http://rs.example/Report/Index?x=1")
			w.WriteHeader(http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	px := newTestProxy(t, up.url(t), nil)
	resp, _ := testutil.Do(t, client(), newReq(t, http.MethodPost, px.URL+"/login", strings.NewReader("u=1")))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://rs.example/Report/Index?x=1" {
		t.Fatalf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	wantCookies := []string{".AspNet.ApplicationCookie=abc; Domain=rs.example; Path=/; HttpOnly", "lang=en; Path=/reporting; Secure"}
	if got := resp.Header.Values("Set-Cookie"); strings.Join(got, "|") != strings.Join(wantCookies, "|") {
		t.Fatalf("Set-Cookie = %q, want %q", got, wantCookies)
	}
	if got := resp.Header.Values("X-Multi"); strings.Join(got, ",") != "a,b" || resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" {
		t.Fatalf("headers changed: %v", resp.Header)
	}
	if n, _ := hits.Load("/Report/Index"); n != nil {
		t.Fatal("the proxy followed the redirect")
	}
	if n, _ := hits.Load("/login"); *(n.(*int)) != 1 {
		t.Fatalf("upstream saw /login %d times", *(n.(*int)))
	}
}

func TestHopByHopForwardedAndRequestID(t *testing.T) {
	got := make(chan http.Header, 2)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		got <- h
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret-hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-End", "kept")
		_, _ = io.WriteString(w, "ok")
	}))
	px := newTestProxy(t, up.url(t), nil)
	req := newReq(t, http.MethodGet, px.URL+"/x", nil)
	req.Header.Set("Connection", "X-Hop, keep-alive")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Proxy-Authorization", "Basic Zm9v")
	req.Header.Set("Upgrade", "foo") // without Connection: upgrade it is just a hop header
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Cookie", "a=1; b=2")
	resp, _ := testutil.Do(t, client(), req)
	h := recv(t, got, "upstream request")
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Upgrade"} {
		if v := h.Get(k); v != "" {
			t.Errorf("upstream got hop-by-hop %s: %q", k, v)
		}
	}
	checks := map[string]string{
		"Te":                "trailers",
		"X-Forwarded-For":   "127.0.0.1", // the client is not a trusted proxy: replaced
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  strings.TrimPrefix(px.URL, "http://"),
		"Authorization":     "Bearer tok",
		"Cookie":            "a=1; b=2",
	}
	for k, want := range checks {
		if v := h.Get(k); v != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
	if id := h.Get("X-Request-Id"); len(id) != 26 {
		t.Errorf("generated X-Request-Id = %q, want a ULID", id)
	}
	for _, k := range []string{"X-Private", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("client got hop-by-hop %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-End") != "kept" {
		t.Error("end-to-end response header lost")
	}

	req = newReq(t, http.MethodGet, px.URL+"/x", nil)
	req.Header.Set("X-Request-Id", "client-id-1")
	testutil.Do(t, client(), req)
	if id := recv(t, got, "upstream request").Get("X-Request-Id"); id != "client-id-1" {
		t.Errorf("client X-Request-Id not passed on: %q", id)
	}
}

func TestHostPassthroughOverrideAndBasePath(t *testing.T) {
	type seen struct{ host, path, rawQuery string }
	got := make(chan seen, 1)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.URL.EscapedPath(), r.URL.RawQuery}
	}))
	t.Run("client host kept", func(t *testing.T) {
		px := newTestProxy(t, up.url(t), nil)
		req := newReq(t, http.MethodGet, px.URL+"/reporting/api/x%2Fy?a=1&b=%20", nil)
		req.Host = "reports.example.com"
		testutil.Do(t, client(), req)
		s := recv(t, got, "upstream request")
		if s.host != "reports.example.com" || s.path != "/reporting/api/x%2Fy" || s.rawQuery != "a=1&b=%20" {
			t.Fatalf("upstream saw %+v", s)
		}
	})
	t.Run("override and virtual directory", func(t *testing.T) {
		base := up.url(t)
		base.Path = "/reporting/"
		px := newTestProxy(t, base, func(o *Options) { o.HostHeader = "rs.internal:83" })
		// The virtual directory is where the server lives, not a mount point:
		// paths go upstream exactly as the client sent them.
		for _, path := range []string{"/reporting/api/x%2Fy", "/other/app"} {
			req := newReq(t, http.MethodGet, px.URL+path+"?q", nil)
			testutil.Do(t, client(), req)
			s := recv(t, got, "upstream request")
			if s.host != "rs.internal:83" || s.path != path || s.rawQuery != "q" {
				t.Fatalf("GET %s: upstream saw %+v", path, s)
			}
		}
	})
}

// TestVirtualDirectoryLocationWorksThroughProxy: a server under /reporting
// answers with absolute Location headers and cookie paths of its own; they
// must stay usable through the proxy unchanged.
func TestVirtualDirectoryLocationWorksThroughProxy(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/reporting/api/items":
			w.Header().Set("Location", "http://"+r.Host+"/reporting/api/items/1")
			w.Header().Set("Set-Cookie", "s=1; Path=/reporting")
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodGet && r.URL.Path == "/reporting/api/items/1":
			io.WriteString(w, "item 1")
		default:
			http.NotFound(w, r)
		}
	}))
	base := up.url(t)
	base.Path = "/reporting"
	px := newTestProxy(t, base, nil)
	resp, _ := testutil.Do(t, client(), newReq(t, http.MethodPost, px.URL+"/reporting/api/items", strings.NewReader("{}")))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, px.URL+"/reporting/") {
		t.Fatalf("POST: %d, Location %q", resp.StatusCode, loc)
	}
	resp, b := testutil.Do(t, client(), newReq(t, http.MethodGet, loc, nil))
	if resp.StatusCode != http.StatusOK || string(b) != "item 1" {
		t.Fatalf("GET Location %s through the proxy: %d %q", loc, resp.StatusCode, b)
	}
}

func TestDeadUpstreamAnswers502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	_ = ln.Close()
	px := newTestProxy(t, dead, nil)
	resp, b := testutil.Do(t, client(), newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/reports", strings.NewReader("{}")))
	if resp.StatusCode != http.StatusBadGateway || string(b) != `{"Message":"upstream unavailable"}` ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	px.waitServed(t, 1)
	if v := metric(t, px.reg, "rswebhooks_upstream_errors_total", nil); v != 1 {
		t.Fatalf("upstream errors = %v, want 1", v)
	}
	if v := metric(t, px.reg, "rswebhooks_proxy_requests_total", map[string]string{"method": "POST", "code": "502"}); v != 1 {
		t.Fatalf("requests{POST,502} = %v, want 1", v)
	}
	if err := px.p.CheckUpstream(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("CheckUpstream on a dead upstream: %v", err)
	}
}

func TestCheckUpstream(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized) // any answer means reachable
	}))
	px := newTestProxy(t, up.url(t), nil)
	if err := px.p.CheckUpstream(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClientCancelReachesUpstream(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan error, 1)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	}))
	px := newTestProxy(t, up.url(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, px.URL+"/slow-report", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	recv(t, started, "upstream to start")
	cancel()
	if err := recv(t, cancelled, "upstream to see the cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("upstream context error = %v", err)
	}
	if err := recv(t, errc, "client to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v", err)
	}
	px.waitServed(t, 1)
	if v := metric(t, px.reg, "rswebhooks_upstream_errors_total", nil); v != 0 {
		t.Fatalf("a client cancel counted as upstream error: %v", v)
	}
}

func TestNotAnOpenForwardProxy(t *testing.T) {
	var hits sync.Map
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		_, _ = io.WriteString(w, "upstream")
	}))
	other := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store("other", true)
	}))
	px := newTestProxy(t, up.url(t), nil)
	pu, _ := url.Parse(px.URL)
	fwd := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}} // curl -x

	resp, _ := testutil.Do(t, fwd, newReq(t, http.MethodGet, other.URL+"/latest/meta-data", nil))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("absolute-URI to another host: status %d, want 403", resp.StatusCode)
	}
	if _, ok := hits.Load("other"); ok {
		t.Fatal("the request reached the other host")
	}
	resp, b := testutil.Do(t, fwd, newReq(t, http.MethodGet, up.URL+"/same", nil))
	if resp.StatusCode != 200 || string(b) != "upstream" {
		t.Fatalf("absolute-URI to the upstream itself: %d %q", resp.StatusCode, b)
	}

	conn, err := net.Dial("tcp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", strings.TrimPrefix(other.URL, "http://"), strings.TrimPrefix(other.URL, "http://"))
	cr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cr.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("CONNECT: status %d, want 405", cr.StatusCode)
	}
	if _, ok := hits.Load("other"); ok {
		t.Fatal("CONNECT reached the other host")
	}
}

func TestUpstreamConnectionsAreReused(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strings.Repeat("x", 1024))
	}))
	px := newTestProxy(t, up.url(t), nil)
	const sequential, workers, perWorker = 100, 8, 50
	c := client()
	for i := range sequential {
		req := newReq(t, http.MethodPost, px.URL+"/api", strings.NewReader("{}"))
		req.Close = i%2 == 0 // Connection: close from the client must not close upstream connections
		testutil.Do(t, c, req)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range perWorker {
				req := newReq(t, http.MethodGet, px.URL+"/api", nil)
				req.Close = i%3 == 0
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	total := sequential + workers*perWorker
	px.waitServed(t, total)
	if n := up.newConns.Load(); n > 2*workers {
		t.Fatalf("%d upstream connections for %d requests at concurrency %d", n, total, workers)
	}
	if v := metric(t, px.reg, "rswebhooks_proxy_requests_total", map[string]string{"method": "GET", "code": "200"}); v != workers*perWorker {
		t.Fatalf("requests{GET,200} = %v, want %d", v, workers*perWorker)
	}
	if v := metric(t, px.reg, "rswebhooks_proxy_request_duration_seconds", map[string]string{"method": "POST"}); v != sequential {
		t.Fatalf("duration{POST} count = %v, want %d", v, sequential)
	}
}

func TestRoutesServedLocally(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream")
	}))
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "local "+r.URL.Path)
	})
	px := newTestProxy(t, up.url(t), func(o *Options) {
		o.Routes = []Route{{Prefix: "/api/webhooks/registrations", Handler: local}}
	})
	for path, want := range map[string]string{
		"/api/webhooks/registrations":     "local /api/webhooks/registrations",
		"/API/WebHooks/Registrations/abc": "local /API/WebHooks/Registrations/abc",
		"/api/webhooks/registrationsX":    "upstream",
		"/api/webhooks/filters":           "upstream",
	} {
		_, b := testutil.Do(t, client(), newReq(t, http.MethodGet, px.URL+path, nil))
		if string(b) != want {
			t.Errorf("%s: got %q, want %q", path, b, want)
		}
	}
}

// TestForwardedHeadersFromUntrustedClients: a client that is not a trusted
// proxy cannot pose as another address: its X-Forwarded-For is replaced by
// its own address and its X-Real-IP and Forwarded are dropped; a trusted
// proxy's are kept, with the peer appended.
func TestForwardedHeadersFromUntrustedClients(t *testing.T) {
	got := make(chan http.Header, 1)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		xff     string
		keep    bool
	}{
		{"default: replaced", nil, "127.0.0.1", false},
		{"other range trusted: replaced", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "127.0.0.1", false},
		{"trusted peer: appended", loop, "203.0.113.9, 127.0.0.1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := newTestProxy(t, up.url(t), func(o *Options) { o.TrustedProxies = tc.trusted })
			req := newReq(t, http.MethodGet, strings.Replace(px.URL, "localhost", "127.0.0.1", 1)+"/x", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Real-IP", "203.0.113.9")
			req.Header.Set("Forwarded", "for=203.0.113.9")
			testutil.Do(t, client(), req)
			h := recv(t, got, "the upstream request")
			if h.Get("X-Forwarded-For") != tc.xff {
				t.Errorf("X-Forwarded-For = %q, want %q", h.Get("X-Forwarded-For"), tc.xff)
			}
			if kept := h.Get("X-Real-IP") != "" || h.Get("Forwarded") != ""; kept != tc.keep {
				t.Errorf("X-Real-IP %q, Forwarded %q; want kept=%v", h.Get("X-Real-IP"), h.Get("Forwarded"), tc.keep)
			}
		})
	}
}
