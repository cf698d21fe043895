package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

const waitTimeout = 10 * time.Second

// upstream is a real loopback server that counts the connections it accepted.
type upstream struct {
	*httptest.Server
	newConns atomic.Int64
}

func newUpstream(t *testing.T, h http.Handler) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(h)
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.newConns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) url(t *testing.T) *url.URL {
	t.Helper()
	pu, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	return pu
}

// testProxy is a Proxy behind a real loopback listener, with its own registry.
type testProxy struct {
	*httptest.Server
	p   *Proxy
	reg *prometheus.Registry
	// served receives once each time the proxy's ServeHTTP has returned
	// (its metrics and access log are written by then), so a test can wait
	// for a request's bookkeeping instead of guessing when it is done.
	served chan struct{}
}

func newTestProxy(t *testing.T, up *url.URL, mod func(*Options)) *testProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{Upstream: up, Registerer: reg, Logger: zerolog.New(zerolog.NewTestWriter(t))}
	if mod != nil {
		mod(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	served := make(chan struct{}, 4096)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			select {
			case served <- struct{}{}:
			default:
			}
		}()
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return &testProxy{Server: s, p: p, reg: reg, served: served}
}

// waitServed waits until n more requests have been fully handled by the
// proxy: the client can read a whole answer before the handler returns and
// records the request's metrics.
func (px *testProxy) waitServed(t *testing.T, n int) {
	t.Helper()
	for range n {
		recv(t, px.served, "the proxy's handler to return")
	}
}

// client returns a client that neither follows redirects nor decompresses.
func client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableCompression: true, Proxy: nil, MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 5 * time.Minute,
	}
}

func newReq(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// recv waits for a value on ch for at most waitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// metric returns the value of the series name{labels} in reg (0 if absent).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// patternReader yields n deterministic pseudo-random bytes without holding
// them: a 1 MiB+7 block repeated (odd period, so no power-of-two alignment).
type patternReader struct {
	block  []byte
	n, off int64
}

func newPattern(n int64) *patternReader {
	block := make([]byte, 1<<20+7)
	r := rand.NewChaCha8([32]byte{'r', 's', 'w'})
	_, _ = r.Read(block)
	return &patternReader{block: block, n: n}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if rem := r.n - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	total := 0
	for len(p) > 0 {
		c := copy(p, r.block[r.off%int64(len(r.block)):])
		p = p[c:]
		r.off += int64(c)
		total += c
	}
	return total, nil
}

// WriteTo makes io.Copy use large writes.
func (r *patternReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.off < r.n {
		i := r.off % int64(len(r.block))
		chunk := r.block[i:]
		if rem := r.n - r.off; int64(len(chunk)) > rem {
			chunk = chunk[:rem]
		}
		m, err := w.Write(chunk)
		r.off += int64(m)
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
