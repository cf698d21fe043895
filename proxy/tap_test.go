package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/tap"
)

// recordingTap copies every Exchange it observes (Observe must not retain slices).
type recordingTap struct {
	wants    func(method, path string) bool
	mu       sync.Mutex
	asked    []string
	seen     []tap.Exchange
	observed atomic.Int64
	panicOn  string
}

func (r *recordingTap) Wants(method, path string) bool {
	r.mu.Lock()
	r.asked = append(r.asked, method+" "+path)
	r.mu.Unlock()
	return r.wants == nil || r.wants(method, path)
}

func (r *recordingTap) Observe(_ context.Context, ex *tap.Exchange) {
	c := *ex
	c.RequestBody = bytes.Clone(ex.RequestBody)
	c.ResponseBody = bytes.Clone(ex.ResponseBody)
	r.mu.Lock()
	r.seen = append(r.seen, c)
	r.mu.Unlock()
	r.observed.Add(1)
	if r.panicOn != "" && ex.Path == r.panicOn {
		panic("tap bug")
	}
}

func (r *recordingTap) exchanges() []tap.Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tap.Exchange(nil), r.seen...)
}

func TestTap(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		status := 201
		if r.URL.Path == "/api/reportserver/v2/bad" {
			status = 400
		}
		out := append([]byte(`{"Id":"r1","Echo":"`), in...)
		out = append(out, `"}`...)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(status)
		_, _ = w.Write(out)
	}))
	rt := &recordingTap{wants: func(_, path string) bool { return strings.HasPrefix(path, "/api/reportserver/") }}
	var observedBeforeClient atomic.Bool
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Tap = rt; o.CaptureLimit = 16 })
	c := client()

	t.Run("small bodies captured, Content-Length kept, observed before the client", func(t *testing.T) {
		req := newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/reports?x=1", strings.NewReader("hello"))
		req.Header.Set("Authorization", "Bearer t")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		observedBeforeClient.Store(rt.observed.Load() == 1) // response headers arrived: Observe must be done
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !observedBeforeClient.Load() {
			t.Fatal("client got the response before Observe ran")
		}
		if string(b) != `{"Id":"r1","Echo":"hello"}` || resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) != 0 {
			t.Fatalf("client got %q, Content-Length %d, TE %v", b, resp.ContentLength, resp.TransferEncoding)
		}
		ex := rt.exchanges()[0]
		if ex.Method != "POST" || ex.Path != "/api/reportserver/v2/reports" || ex.Query != "x=1" || ex.Status != 201 ||
			string(ex.RequestBody) != "hello" || ex.RequestTruncated ||
			string(ex.ResponseBody) != `{"Id":"r1","Echo"`[:16] || !ex.ResponseTruncated ||
			ex.RequestHeader.Get("Authorization") != "Bearer t" || ex.ResponseHeader.Get("Content-Type") != "application/json" ||
			len(ex.RequestID) != 26 || ex.Time.IsZero() {
			t.Fatalf("exchange = %+v", ex)
		}
	})

	t.Run("request body over the cap is truncated, client still gets every byte", func(t *testing.T) {
		long := strings.Repeat("abcdefghij", 100)
		resp, b := testutil.Do(t, c, newReq(t, http.MethodPut, px.URL+"/api/reportserver/v2/reports/r1", strings.NewReader(long)))
		want := `{"Id":"r1","Echo":"` + long + `"}`
		if string(b) != want || resp.ContentLength != int64(len(want)) {
			t.Fatalf("client got %d bytes (Content-Length %d), want %d", len(b), resp.ContentLength, len(want))
		}
		ex := rt.exchanges()[1]
		if string(ex.RequestBody) != long[:16] || !ex.RequestTruncated || len(ex.ResponseBody) != 16 || !ex.ResponseTruncated {
			t.Fatalf("exchange = %+v", ex)
		}
	})

	t.Run("non-2xx: observed, no response body", func(t *testing.T) {
		resp, _ := testutil.Do(t, c, newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/bad", strings.NewReader("x")))
		ex := rt.exchanges()[2]
		if resp.StatusCode != 400 || ex.Status != 400 || ex.ResponseBody != nil || string(ex.RequestBody) != "x" {
			t.Fatalf("status %d, exchange = %+v", resp.StatusCode, ex)
		}
	})

	t.Run("unwanted mutation: observed without bodies", func(t *testing.T) {
		testutil.Do(t, c, newReq(t, http.MethodDelete, px.URL+"/api/reports/clients/abc", strings.NewReader("zz")))
		ex := rt.exchanges()[3]
		if ex.Method != "DELETE" || ex.Status != 201 || ex.RequestBody != nil || ex.ResponseBody != nil {
			t.Fatalf("exchange = %+v", ex)
		}
	})

	t.Run("safe methods never touch the tap", func(t *testing.T) {
		before := len(rt.asked)
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
			testutil.Do(t, c, newReq(t, m, px.URL+"/api/reportserver/v2/reports", nil))
		}
		if len(rt.asked) != before || len(rt.exchanges()) != 4 {
			t.Fatalf("tap asked %d times, observed %d", len(rt.asked)-before, len(rt.exchanges()))
		}
	})

	t.Run("a panicking tap does not break the response", func(t *testing.T) {
		rt.panicOn = "/api/reportserver/v2/panic"
		resp, b := testutil.Do(t, c, newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/panic", strings.NewReader("p")))
		if resp.StatusCode != 201 || string(b) != `{"Id":"r1","Echo":"p"}` {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	})
}

// TestTapLargeResponseStreams checks that a tapped 2xx response much larger
// than the cap reaches the client whole, with its Content-Length.
func TestTapLargeResponseStreams(t *testing.T) {
	const size = 8 << 20
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, newPattern(size))
	}))
	rt := &recordingTap{}
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Tap = rt })
	resp, b := testutil.Do(t, client(), newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/documents", nil))
	want, _ := io.ReadAll(newPattern(size))
	if !bytes.Equal(b, want) || resp.ContentLength != size {
		t.Fatalf("got %d bytes, Content-Length %d", len(b), resp.ContentLength)
	}
	ex := rt.exchanges()[0]
	if len(ex.ResponseBody) != DefaultCaptureLimit || !ex.ResponseTruncated || !bytes.Equal(ex.ResponseBody, want[:DefaultCaptureLimit]) {
		t.Fatalf("captured %d bytes, truncated %v", len(ex.ResponseBody), ex.ResponseTruncated)
	}
}

// TestTapSurvivesClientHangup: a watched mutation is not cancelled upstream
// when the client hangs up, and Observe gets a context the client cannot
// cancel, so its outcome is still recorded.
func TestTapSurvivesClientHangup(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.WriteHeader(http.StatusCreated)
	}))
	ctxErr := make(chan error, 1)
	rt := tap.TapFunc{
		WantsFn:   func(string, string) bool { return true },
		ObserveFn: func(ctx context.Context, ex *tap.Exchange) { ctxErr <- ctx.Err() },
	}
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Tap = rt })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, px.URL+"/api/reportserver/v2/reports", strings.NewReader("{}"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	recv(t, started, "upstream to start")
	cancel()
	recv(t, done, "client to give up")
	close(release)
	if err := recv(t, ctxErr, "Observe"); err != nil {
		t.Fatalf("Observe got a cancelled context: %v", err)
	}
}

func TestTapWantsPanicIsContained(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	var observed atomic.Int64
	rt := tap.TapFunc{
		WantsFn:   func(string, string) bool { panic("wants bug") },
		ObserveFn: func(context.Context, *tap.Exchange) { observed.Add(1) },
	}
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Tap = rt })
	resp, _ := testutil.Do(t, client(), newReq(t, http.MethodPost, px.URL+"/x", strings.NewReader("{}")))
	if resp.StatusCode != http.StatusCreated || observed.Load() != 1 {
		t.Fatalf("status %d, observed %d", resp.StatusCode, observed.Load())
	}
}

// TestUpgradeRequestsAreTapped: only a real WebSocket handshake is tunnelled;
// a mutating request that asks for any protocol switch goes the normal way,
// so the tap sees it, and the upstream gets no Upgrade header.
func TestUpgradeRequestsAreTapped(t *testing.T) {
	var mu sync.Mutex
	var upgrades []string
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upgrades = append(upgrades, r.Header.Get("Upgrade")+"|"+r.Header.Get("Connection"))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	rt := &recordingTap{}
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Tap = rt })
	for i, h := range []map[string]string{
		{"Connection": "Upgrade", "Upgrade": "foo"},
		{"Connection": "keep-alive, Upgrade", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"},
		{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
	} {
		req := newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/categories", strings.NewReader(`{"Name":"c"}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, _ := testutil.Do(t, client(), req)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%v: status %d", h, resp.StatusCode)
		}
		ex := rt.exchanges()
		if len(ex) != i+1 || ex[i].Method != "POST" || ex[i].Path != "/api/reportserver/v2/categories" || ex[i].Status != 201 {
			t.Fatalf("%v: tap saw %+v, want the POST", h, ex)
		}
		mu.Lock()
		got := upgrades[i]
		mu.Unlock()
		if got != "|" {
			t.Fatalf("%v: upstream got Upgrade|Connection %q, want none", h, got)
		}
	}
}
