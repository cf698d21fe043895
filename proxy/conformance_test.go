package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// conformanceUpstream serves every case of TestConformanceWithHTTPUtil.
func conformanceUpstream() http.Handler {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(bytes.Repeat([]byte("compressible "), 500))
	_ = zw.Close()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/small":
			h.Set("Content-Length", "5")
			_, _ = io.WriteString(w, "small")
		case "/chunked":
			for i := range 3 {
				fmt.Fprintf(w, "chunk %d\n", i)
				w.(http.Flusher).Flush()
			}
		case "/gzip":
			h.Set("Content-Encoding", "gzip")
			h.Set("Vary", "Accept-Encoding")
			_, _ = w.Write(zipped.Bytes())
		case "/etag":
			h.Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_, _ = io.WriteString(w, "fresh")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/redirect":
			h.Add("Set-Cookie", "a=1; Domain=rs.example; Path=/")
			h.Add("Set-Cookie", "b=2; Path=/x; HttpOnly")
			h.Set("Location", "/Report/Index")
			w.WriteHeader(http.StatusFound)
		case "/trailers":
			h.Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "body")
			h.Set("X-Checksum", "abc")
		case "/hop":
			h.Set("Connection", "X-A")
			h.Set("X-A", "hop")
			h.Set("Keep-Alive", "timeout=1")
			h.Set("X-B", "end-to-end")
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			var names []string
			for k := range r.Header {
				if k != "X-Request-Id" { // only the rswebhooks proxy adds it
					names = append(names, k)
				}
			}
			slices.Sort(names)
			fmt.Fprintf(w, "%s %s host=%s len=%d body=%s\n", r.Method, r.URL.RequestURI(), r.Host, r.ContentLength, body)
			for _, k := range names {
				fmt.Fprintf(w, "%s: %q\n", k, r.Header[k])
			}
		case "/early-hints":
			h.Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "after hints")
		case "/big":
			h.Set("Content-Length", strconv.Itoa(3<<20))
			_, _ = io.Copy(w, newPattern(3<<20))
		case "/error":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	})
}

type seenResponse struct {
	Status           int
	Header           http.Header
	Body             []byte
	ContentLength    int64
	TransferEncoding []string
	Trailer          http.Header
}

func (s seenResponse) String() string {
	return fmt.Sprintf("status %d CL %d TE %v\nheader %v\ntrailer %v\nbody %.300q",
		s.Status, s.ContentLength, s.TransferEncoding, s.Header, s.Trailer, s.Body)
}

// TestConformanceWithHTTPUtil runs the same requests through a standard
// library httputil.ReverseProxy and through this proxy and requires that the
// client sees the same thing (and the upstream the same request).
func TestConformanceWithHTTPUtil(t *testing.T) {
	up := newUpstream(t, conformanceUpstream())
	target := up.url(t)
	tr, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport: tr,
	})
	t.Cleanup(ref.Close)
	// httputil appends to whatever X-Forwarded-For the client sent; this
	// proxy does so only for trusted proxies, so the (loopback) client is
	// trusted here.
	px := newTestProxy(t, target, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})

	type tc struct {
		name, method, path, body string
		header                   http.Header
	}
	cases := []tc{
		{name: "content-length", method: "GET", path: "/small"},
		{name: "head", method: "HEAD", path: "/small"},
		{name: "chunked", method: "GET", path: "/chunked"},
		{name: "gzip", method: "GET", path: "/gzip", header: http.Header{"Accept-Encoding": {"gzip"}}},
		{name: "304", method: "GET", path: "/etag", header: http.Header{"If-None-Match": {`"v1"`}}},
		{name: "204", method: "DELETE", path: "/nocontent"},
		{name: "redirect and cookies", method: "POST", path: "/redirect", body: "u=a&p=b"},
		{name: "trailers", method: "GET", path: "/trailers"},
		{name: "hop-by-hop response", method: "GET", path: "/hop"},
		{name: "early hints", method: "GET", path: "/early-hints"},
		{name: "big", method: "GET", path: "/big"},
		{name: "error status", method: "PUT", path: "/error", body: "x"},
		{name: "not found", method: "GET", path: "/missing?q=1"},
		{name: "request headers", method: "POST", path: "/echo?a=1&b=%2F", body: `{"Name":"r"}`, header: http.Header{
			"Content-Type":        {"application/json"},
			"Authorization":       {"Bearer abc"},
			"Cookie":              {"x=1"},
			"Origin":              {"http://app.example"},
			"Connection":          {"X-Drop"},
			"X-Drop":              {"1"},
			"Te":                  {"trailers"},
			"Proxy-Authorization": {"Basic x"},
			"X-Forwarded-For":     {"192.0.2.1"},
			"Accept-Encoding":     {"gzip, br"},
		}},
		{name: "options preflight", method: "OPTIONS", path: "/echo", header: http.Header{
			"Origin": {"http://app.example"}, "Access-Control-Request-Method": {"PUT"},
		}},
	}
	see := func(t *testing.T, base string, c tc) seenResponse {
		t.Helper()
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req := newReq(t, c.method, base+c.path, body)
		for k, v := range c.header {
			req.Header[k] = v
		}
		req.Host = "reports.example"
		resp, b := testutil.Do(t, client(), req)
		resp.Header.Del("Date")
		return seenResponse{resp.StatusCode, resp.Header, b, resp.ContentLength, resp.TransferEncoding, resp.Trailer}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, got := see(t, ref.URL, c), see(t, px.URL, c)
			if want.String() != got.String() || !bytes.Equal(want.Body, got.Body) {
				t.Fatalf("httputil.ReverseProxy:\n%s\n\nrswebhooks proxy:\n%s", want, got)
			}
		})
	}
}
