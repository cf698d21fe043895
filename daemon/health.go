package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/admin"
)

// check is one readiness condition: nil means fine. A soft check is
// reported (in checks and warnings) but never makes the daemon unready:
// the proxy must keep taking traffic when, say, the service account
// cannot log in.
type check struct {
	name string
	fn   func(ctx context.Context) error
	// soft: a failure is reported (under "checks" and "warnings") but
	// never makes the daemon unready: the proxy must keep taking traffic
	// when, say, the service account cannot log in.
	soft bool
	// degrades: a failure is reported (status "degraded", under
	// "degraded") but the daemon stays ready, because the proxy still
	// serves the report server.
	degrades bool
}

// checkResult is one check as /readyz lists it.
type checkResult struct {
	check
	err error
}

// health serves /healthz (the process serves traffic) and /readyz (it can do
// its job: the upstream answers; the store is writable). A failing store
// does not fail readiness: /readyz answers 200 with status "degraded" and
// names the condition, because taking the proxy out of a load balancer would
// take the report server with it. Readiness results are cached for a second
// so probes cannot hammer the upstream. Both name the running version, so a
// rollout can be followed from the probes.
type health struct {
	checks  []check
	now     func() time.Time
	version string
	// backend names the store's engine ("badger", "postgres").
	backend string

	mu      sync.Mutex
	at      time.Time
	results []checkResult
}

func (h *health) healthz(w http.ResponseWriter, r *http.Request) {
	admin.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": h.version})
}

// readyz answers 200 {"status":"ready"} or 503 {"status":"unavailable",
// "reasons":{name: error}}, and lists every check it made under "checks"
// ({name: "ok" or the error}); soft checks that fail are also under
// "warnings" and do not make it unavailable.
func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	results := h.evaluate(r.Context())
	checks := map[string]string{}
	reasons := map[string]string{}
	warnings := map[string]string{}
	degraded := map[string]string{}
	for _, c := range results {
		switch {
		case c.err == nil:
			checks[c.name] = "ok"
		case c.soft:
			checks[c.name], warnings[c.name] = c.err.Error(), c.err.Error()
		case c.degrades:
			checks[c.name], degraded[c.name] = c.err.Error(), c.err.Error()
		default:
			checks[c.name], reasons[c.name] = c.err.Error(), c.err.Error()
		}
	}
	body := map[string]any{"status": "ready", "checks": checks, "version": h.version}
	if h.backend != "" {
		body["store_backend"] = h.backend
	}
	if len(warnings) > 0 {
		body["warnings"] = warnings
	}
	if len(degraded) > 0 {
		body["status"], body["degraded"] = "degraded", degraded
	}
	if len(reasons) > 0 {
		body["status"], body["reasons"] = "unavailable", reasons
		admin.WriteJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	admin.WriteJSON(w, http.StatusOK, body)
}

func (h *health) evaluate(ctx context.Context) []checkResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); now.Sub(h.at) < time.Second && h.results != nil {
		return h.results
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	results := make([]checkResult, 0, len(h.checks))
	for _, c := range h.checks {
		results = append(results, checkResult{check: c, err: c.fn(ctx)})
	}
	h.at, h.results = h.now(), results
	return results
}

// getOnly answers methods other than GET and HEAD with 405, Allow and a
// JSON {"Message"} body, like the admin API.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			admin.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{
				"Message": "method " + r.Method + " is not supported here; allowed: GET, HEAD"})
			return
		}
		h.ServeHTTP(w, r)
	})
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
