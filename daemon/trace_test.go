package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/tracing"
)

const (
	incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID  = "00f067aa0ba902b7"
	traceOperator   = "operator-token-trace-context-0123"
)

// traceRig is a daemon in front of the simulator with one webhook whose
// receiver fails the first attempt of each notification and records the
// traceparent of every attempt.
type traceRig struct {
	r   *running
	sim *simulator.Server
	got chan [2]string // traceparent and tracestate of each attempt
	n   int            // categories created
}

func newTraceRig(t *testing.T, o Options) *traceRig {
	t.Helper()
	rig := &traceRig{sim: simulator.New(simulator.Options{}), got: make(chan [2]string, 100)}
	up := httptest.NewServer(rig.sim)
	t.Cleanup(up.Close)
	var mu sync.Mutex
	seen := map[string]int{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := r.URL.Query().Get("echo"); e != "" {
			_, _ = io.WriteString(w, e)
			return
		}
		var b struct {
			ID string `json:"Id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		rig.got <- [2]string{r.Header.Get("traceparent"), r.Header.Get("tracestate")}
		mu.Lock()
		seen[b.ID]++
		first := seen[b.ID] == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusInternalServerError) // retried
		}
	}))
	t.Cleanup(rcv.Close)
	o.Upstream, o.AdminToken, o.WatchInterval, o.ReconcileInterval = up.URL, traceOperator, 0, 0
	o.AllowTargets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	o.RetryDelays = []time.Duration{10 * time.Millisecond}
	rig.r = start(t, o)
	body, _ := json.Marshal(map[string]any{"WebHookUri": rcv.URL + "/hook", "Filters": []string{"categories"}})
	req, _ := http.NewRequest("POST", rig.r.adminURL+"/api/webhooks/registrations", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+traceOperator)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("register webhook: %v %v", res, err)
	}
	res.Body.Close()
	return rig
}

// change creates a category through the proxy, with traceparent (and
// tracestate) when given.
func (rig *traceRig) change(t *testing.T, traceparent string, tracestate ...string) {
	t.Helper()
	tok, err := rig.sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	rig.n++
	req, _ := http.NewRequest("POST", rig.r.proxyURL+"/api/reportserver/v2/categories", bytes.NewReader([]byte(fmt.Sprintf(`{"Name":"Traced %d"}`, rig.n))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	for _, v := range tracestate {
		req.Header.Add("tracestate", v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("create category: %v %v", res, err)
	}
	res.Body.Close()
}

// attempts waits for n attempts and returns their span contexts.
func (rig *traceRig) attempts(t *testing.T, n int) []trace.SpanContext {
	t.Helper()
	var out []trace.SpanContext
	for len(out) < n {
		select {
		case h := <-rig.got:
			sc := tracing.ParseWithState(h[0], h[1])
			if !sc.IsValid() {
				t.Fatalf("attempt sent traceparent %q, not a valid one", h[0])
			}
			if sc.TraceState().String() != h[1] {
				t.Fatalf("attempt sent tracestate %q, not a valid one", h[1])
			}
			out = append(out, sc)
		case <-time.After(20 * time.Second):
			t.Fatalf("got %d attempts, want %d", len(out), n)
		}
	}
	return out
}

func TestAttemptsContinueTheCallersTrace(t *testing.T) {
	rig := newTraceRig(t, Options{})
	rig.change(t, "00-"+incomingTraceID+"-"+incomingSpanID+"-01", "congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7")
	scs := rig.attempts(t, 2)
	for i, sc := range scs {
		if sc.TraceID().String() != incomingTraceID || sc.SpanID().String() == incomingSpanID || !sc.IsSampled() {
			t.Errorf("attempt %d traceparent: trace %s span %s sampled %v; want the caller's trace, a span of its own", i+1, sc.TraceID(), sc.SpanID(), sc.IsSampled())
		}
		if got := sc.TraceState().String(); got != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
			t.Errorf("attempt %d tracestate %q, want the caller's", i+1, got)
		}
	}
	if scs[0].SpanID() == scs[1].SpanID() {
		t.Errorf("both attempts sent span id %s; want one per attempt", scs[0].SpanID())
	}

	// Without an incoming trace: a new trace for the event, shared by its
	// attempts, not the previous one's.
	rig.change(t, "")
	scs2 := rig.attempts(t, 2)
	if st := scs2[0].TraceState().String(); st != "" {
		t.Errorf("untraced call: attempt sent tracestate %q, want none", st)
	}
	if scs2[0].TraceID() != scs2[1].TraceID() || scs2[0].TraceID().String() == incomingTraceID || scs2[0].SpanID() == scs2[1].SpanID() {
		t.Errorf("untraced call: attempts sent %s/%s and %s/%s; want one new trace, a span each",
			scs2[0].TraceID(), scs2[0].SpanID(), scs2[1].TraceID(), scs2[1].SpanID())
	}
	// An invalid incoming traceparent is ignored, not passed on.
	rig.change(t, "00-00000000000000000000000000000000-"+incomingSpanID+"-01")
	if sc := rig.attempts(t, 2)[0]; sc.TraceID().String() == "00000000000000000000000000000000" || sc.TraceID() == scs2[0].TraceID() {
		t.Errorf("invalid incoming traceparent: attempt trace %s", sc.TraceID())
	}
}

func TestSpansFormOneTraceFromProxyToAttempt(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	rig := newTraceRig(t, Options{OTel: true, SpanExporter: exp})
	rig.change(t, "00-"+incomingTraceID+"-"+incomingSpanID+"-01", "congo=t61rcWkgMzE")
	sent := rig.attempts(t, 2)
	for i, sc := range sent {
		if got := sc.TraceState().String(); got != "congo=t61rcWkgMzE" {
			t.Errorf("attempt %d tracestate %q, want the caller's through the exported spans", i+1, got)
		}
	}

	byName := func() map[string][]tracetest.SpanStub {
		m := map[string][]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID().String() == incomingTraceID {
				m[s.Name] = append(m[s.Name], s)
			}
		}
		return m
	}
	deadline := time.Now().Add(20 * time.Second)
	spans := byName()
	for len(spans["webhook attempt"]) < 2 || len(spans["event fan-out"]) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("spans of the trace: %v", spans)
		}
		<-time.After(20 * time.Millisecond)
		spans = byName()
	}
	one := func(name string) tracetest.SpanStub {
		t.Helper()
		if len(spans[name]) != 1 {
			t.Fatalf("%d %q spans in the trace, want 1", len(spans[name]), name)
		}
		return spans[name][0]
	}
	px, app, fan := one("proxy POST"), one("event append"), one("event fan-out")
	if px.Parent.SpanID().String() != incomingSpanID || !px.Parent.IsRemote() || px.SpanKind != trace.SpanKindServer {
		t.Errorf("proxy span parent %s (remote %v), kind %v; want the caller's span", px.Parent.SpanID(), px.Parent.IsRemote(), px.SpanKind)
	}
	if app.Parent.SpanID() != px.SpanContext.SpanID() {
		t.Errorf("event append parent %s, want the proxy span %s", app.Parent.SpanID(), px.SpanContext.SpanID())
	}
	if fan.Parent.SpanID() != app.SpanContext.SpanID() {
		t.Errorf("fan-out parent %s, want the event append span %s", fan.Parent.SpanID(), app.SpanContext.SpanID())
	}
	attempt := map[trace.SpanID]bool{}
	for _, a := range spans["webhook attempt"] {
		if a.Parent.SpanID() != app.SpanContext.SpanID() || a.SpanKind != trace.SpanKindClient {
			t.Errorf("attempt parent %s kind %v, want the event append span %s", a.Parent.SpanID(), a.SpanKind, app.SpanContext.SpanID())
		}
		attempt[a.SpanContext.SpanID()] = true
	}
	for i, sc := range sent {
		if !attempt[sc.SpanID()] {
			t.Errorf("attempt %d sent span %s, which is not an exported attempt span", i+1, sc.SpanID())
		}
	}
}
