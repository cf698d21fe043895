package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// check is one readiness condition: nil means fine.
type check struct {
	name string
	fn   func(ctx context.Context) error
	// degrades: a failure is reported (status "degraded", under
	// "degraded") but the daemon stays ready, because the proxy still
	// serves the report server.
	degrades bool
}

// health serves /healthz (the process serves traffic) and /readyz (it can do
// its job: the upstream answers; the store is writable). A failing store
// does not fail readiness: /readyz answers 200 with status "degraded" and
// names the condition, because taking the proxy out of a load balancer would
// take the report server with it. Readiness results are cached for a second
// so probes cannot hammer the upstream.
type health struct {
	checks []check
	now    func() time.Time

	mu       sync.Mutex
	at       time.Time
	reasons  map[string]string
	degraded map[string]string
}

func (h *health) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	reasons, degraded := h.evaluate(r.Context())
	body := map[string]any{"status": "ready"}
	status := http.StatusOK
	if len(degraded) > 0 {
		body["status"], body["degraded"] = "degraded", degraded
	}
	if len(reasons) > 0 {
		body["status"], body["reasons"] = "unavailable", reasons
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}

func (h *health) evaluate(ctx context.Context) (reasons, degraded map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); now.Sub(h.at) < time.Second && h.reasons != nil {
		return h.reasons, h.degraded
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reasons, degraded = map[string]string{}, map[string]string{}
	for _, c := range h.checks {
		if err := c.fn(ctx); err != nil {
			if c.degrades {
				degraded[c.name] = err.Error()
			} else {
				reasons[c.name] = err.Error()
			}
		}
	}
	h.at, h.reasons, h.degraded = h.now(), reasons, degraded
	return reasons, degraded
}

// getOnly answers methods other than GET and HEAD with 405, Allow and a
// JSON {"Message"} body, like the admin API.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
				"Message": "method " + r.Method + " is not supported here; allowed: GET, HEAD"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// background runs the daemon's long-running parts (delivery engine, store
// GC, watcher). One that returns an error is logged and makes /readyz fail;
// the proxy keeps serving regardless.
type background struct {
	log     zerolog.Logger
	mu      sync.Mutex
	stopped map[string]error
}

func (b *background) start(wg *sync.WaitGroup, ctx context.Context, name string, run func(context.Context) error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := run(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		b.log.Error().Err(err).Str("part", name).Msg("a background part stopped; the proxy keeps serving")
		b.mu.Lock()
		if b.stopped == nil {
			b.stopped = map[string]error{}
		}
		b.stopped[name] = err
		b.mu.Unlock()
	}()
}

func (b *background) check(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for name, err := range b.stopped {
		errs = append(errs, fmt.Errorf("%s stopped: %w", name, err))
	}
	return errors.Join(errs...)
}
