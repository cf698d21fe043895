package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/tap"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCaptureBudgetUnderFlood floods the proxy with concurrent watched
// uploads that all stay in flight together (the upstream answers none until
// every one arrived): the capture gauge never goes above the budget, the
// requests that did not fit stream through uncaptured and are still observed,
// every client gets its exact answer, and the budget is whole again after.
func TestCaptureBudgetUnderFlood(t *testing.T) {
	const (
		clients  = 32
		size     = 40 << 10
		limit    = 64 << 10
		budgetSz = 128 << 10
	)
	var arrived atomic.Int64
	all := make(chan struct{})
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		if arrived.Add(1) == clients {
			close(all)
		}
		<-all
		out := `{"Id":"` + r.URL.Query().Get("n") + `","Len":` + strconv.Itoa(len(in)) + `}`
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, out)
	}))

	var maxInObserve atomic.Int64
	var px *testProxy
	rt := &recordingTap{}
	gaugeTap := tap.TapFunc{
		WantsFn: rt.Wants,
		ObserveFn: func(ctx context.Context, ex *tap.Exchange) {
			g := int64(promtest.ToFloat64(px.p.metrics.captureBytes))
			for {
				m := maxInObserve.Load()
				if g <= m || maxInObserve.CompareAndSwap(m, g) {
					break
				}
			}
			rt.Observe(ctx, ex)
		},
	}
	px = newTestProxy(t, up.url(t), func(o *Options) {
		o.Tap = gaugeTap
		o.CaptureLimit = limit
		o.CaptureBudget = budgetSz
	})

	stop := make(chan struct{})
	sampled := make(chan float64)
	go func() {
		var hi float64
		for {
			select {
			case <-stop:
				sampled <- hi
				return
			default:
			}
			hi = max(hi, promtest.ToFloat64(px.p.metrics.captureBytes))
			runtime.Gosched()
		}
	}()

	c := client()
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte('a' + i%26)}, size)
			req, _ := http.NewRequest(http.MethodPost, px.URL+"/api/reportserver/v2/reports?n="+strconv.Itoa(i), bytes.NewReader(body))
			resp, err := c.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := `{"Id":"` + strconv.Itoa(i) + `","Len":` + strconv.Itoa(size) + `}`; resp.StatusCode != 201 || string(b) != want {
				errs <- "client " + strconv.Itoa(i) + " got " + resp.Status + " " + string(b)
			}
		}()
	}
	wg.Wait()
	close(stop)
	hi := recv(t, sampled, "gauge sampler")
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	if hi > budgetSz || maxInObserve.Load() > budgetSz {
		t.Fatalf("capture gauge peaked at %v (sampled) / %d (in Observe), budget %d", hi, maxInObserve.Load(), budgetSz)
	}
	if maxInObserve.Load() == 0 {
		t.Fatal("no capture held any byte: the flood did not exercise the budget")
	}
	exs := rt.exchanges()
	if len(exs) != clients {
		t.Fatalf("observed %d exchanges, want %d", len(exs), clients)
	}
	var captured, skipped int
	for _, ex := range exs {
		switch ex.RequestSkipped {
		case "":
			captured++
			if len(ex.RequestBody) != size || ex.RequestTruncated {
				t.Errorf("captured request body: %d bytes, truncated %v", len(ex.RequestBody), ex.RequestTruncated)
			}
		case tap.SkipBudget:
			skipped++
			if len(ex.RequestBody) != 0 || !ex.RequestTruncated || ex.Status != 201 {
				t.Errorf("skipped capture: body %d bytes, truncated %v, status %d", len(ex.RequestBody), ex.RequestTruncated, ex.Status)
			}
		default:
			t.Errorf("RequestSkipped = %q", ex.RequestSkipped)
		}
	}
	if captured == 0 || skipped == 0 {
		t.Fatalf("captured %d, skipped %d: want both (budget %d for %d bodies of %d)", captured, skipped, budgetSz, clients, size)
	}
	if fit := budgetSz / size; captured > fit {
		// Every capture was held until all had arrived upstream.
		t.Fatalf("captured %d request bodies at once, the budget holds %d", captured, fit)
	}
	if got := metric(t, px.reg, "rswebhooks_capture_skipped_total", map[string]string{"reason": "budget"}); got < float64(skipped) {
		t.Fatalf("capture_skipped_total{budget} = %v, want >= %d", got, skipped)
	}
	if got := metric(t, px.reg, "rswebhooks_capture_bytes", nil); got != 0 {
		t.Fatalf("capture_bytes = %v after every request finished, want 0", got)
	}

	// The budget is whole again: the next upload is captured in full.
	arrived.Store(0)
	all = make(chan struct{})
	close(all)
	resp, _ := testutil.Do(t, c, newReq(t, http.MethodPost, px.URL+"/api/reportserver/v2/reports?n=x", strings.NewReader("after")))
	exs = rt.exchanges()
	if last := exs[len(exs)-1]; resp.StatusCode != 201 || string(last.RequestBody) != "after" || last.RequestSkipped != "" ||
		!strings.HasPrefix(string(last.ResponseBody), `{"Id":"x"`) {
		t.Fatalf("after the flood: status %d, exchange %+v", resp.StatusCode, last)
	}
}

// TestCaptureBudgetResponse: a response prefix that does not fit in the
// budget is not read; the client still gets every byte and the Exchange
// says why the body is missing.
func TestCaptureBudgetResponse(t *testing.T) {
	out := strings.Repeat("r", 20<<10)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, out)
	}))
	rt := &recordingTap{}
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Tap = rt; o.CaptureBudget = 8 << 10 })
	resp, b := testutil.Do(t, client(), newReq(t, http.MethodPut, px.URL+"/x", strings.NewReader("in")))
	if string(b) != out || resp.ContentLength != int64(len(out)) {
		t.Fatalf("client got %d bytes (Content-Length %d)", len(b), resp.ContentLength)
	}
	ex := rt.exchanges()[0]
	if ex.ResponseSkipped != tap.SkipBudget || !ex.ResponseTruncated || len(ex.ResponseBody) > 8<<10 ||
		string(ex.RequestBody) != "in" || ex.RequestSkipped != "" {
		t.Fatalf("exchange: response %d bytes skipped %q truncated %v; request %q skipped %q",
			len(ex.ResponseBody), ex.ResponseSkipped, ex.ResponseTruncated, ex.RequestBody, ex.RequestSkipped)
	}
	if got := metric(t, px.reg, "rswebhooks_capture_bytes", nil); got != 0 {
		t.Fatalf("capture_bytes = %v after the request, want 0", got)
	}
	if got := metric(t, px.reg, "rswebhooks_capture_skipped_total", map[string]string{"reason": "limit"}); got != 0 {
		t.Fatalf("capture_skipped_total{limit} = %v, want 0", got)
	}
}

func TestCaptureBudgetValidated(t *testing.T) {
	up := newUpstream(t, http.NotFoundHandler())
	_, err := New(Options{Upstream: up.url(t), CaptureBudget: -1})
	if err == nil || !strings.Contains(err.Error(), "Options.CaptureBudget must be >= 0") {
		t.Fatalf("err = %v", err)
	}
}
