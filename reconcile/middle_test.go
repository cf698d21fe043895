package reconcile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

// TestAPIChangeIsNotifiedOnceEvenWhenARunLandsInTheMiddle: a change through
// the REST API, via the real proxy and detector, gives exactly one event —
// from the proxy when the reconciler runs after it, and from the reconciler
// when its run lands between the report server's write and the proxy's
// append (the upstream holds its answer back while the run happens).
func TestAPIChangeIsNotifiedOnceEvenWhenARunLandsInTheMiddle(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	var r *Reconciler
	var inTheMiddle atomic.Bool
	var ranInTheMiddle atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPut || !inTheMiddle.Load() {
			sim.ServeHTTP(w, req)
			return
		}
		// Write first, then reconcile, then answer the proxy.
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if err := r.RunOnce(context.Background()); err != nil {
			t.Errorf("RunOnce in the middle: %v", err)
		}
		ranInTheMiddle.Add(1)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	client, err := reportserver.New(reportserver.Options{BaseURL: u, User: "admin", Password: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gate, err := NewGate(db, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r, err = New(Options{Client: client, Store: db, Gate: gate, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	det, err := detect.New(detect.Options{Store: gate, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{Upstream: u, Tap: det})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(px)
	defer front.Close()
	tok, err := sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := sim.CreateCategory("Sales")
	if err != nil {
		t.Fatal(err)
	}
	rename := func(name string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, front.URL+"/api/reportserver/v2/categories",
			strings.NewReader(`{"Id":"`+cat+`","Name":"`+name+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("rename: %d", resp.StatusCode)
		}
	}
	seen := map[string]bool{}
	fresh := func() []*rswebhooks.Event {
		es, err := db.ListEvents(context.Background(), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []*rswebhooks.Event
		for _, e := range es {
			if !seen[e.ID] {
				seen[e.ID] = true
				out = append(out, e)
			}
		}
		return out
	}
	if err := r.RunOnce(context.Background()); err != nil { // baseline
		t.Fatal(err)
	}

	// The run after the call: the proxy's event stands, the run absorbs it.
	rename("Sales 2")
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if es := fresh(); len(es) != 1 || es[0].Source != rswebhooks.SourceProxy || es[0].ResourceID != cat {
		t.Fatalf("run after the call: %+v, want one proxy event", es)
	}

	// The run in the middle: the reconciler's event stands, the proxy's
	// late copy is dropped; the next run adds nothing.
	inTheMiddle.Store(true)
	rename("Sales 3")
	inTheMiddle.Store(false)
	if ranInTheMiddle.Load() != 1 {
		t.Fatal("the run did not happen in the middle")
	}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	es := fresh()
	if len(es) != 1 || es[0].Source != rswebhooks.SourceReconcile || es[0].Type != rswebhooks.EventUpdated || es[0].ResourceID != cat {
		t.Fatalf("run in the middle: %+v, want one reconciled Updated", es)
	}
}
