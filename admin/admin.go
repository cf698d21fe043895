// Package admin serves the registrations API on the admin listener: the
// report server's own api/webhooks/registrations (ASP.NET WebHooks model,
// PascalCase JSON, stock status codes), its extensions (filters, deliveries,
// redeliver, ping, login) and the OpenAPI document describing all of it.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/identity"
)

// Store is the part of store.DB the handler uses.
type Store interface {
	CreateWebhook(ctx context.Context, w *rswebhooks.Webhook) error
	UpdateWebhook(ctx context.Context, w *rswebhooks.Webhook) error
	GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error)
	ListWebhooks(ctx context.Context, ownerID string) ([]*rswebhooks.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	DeleteWebhooksOf(ctx context.Context, ownerID string) (int, error)
	RotateSecret(ctx context.Context, id, secret string, grace time.Duration) (*rswebhooks.Webhook, error)
	PromoteRotation(ctx context.Context, id, uri string) (*rswebhooks.Webhook, error)
	GetDelivery(ctx context.Context, id string) (*rswebhooks.Delivery, error)
	ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*rswebhooks.Delivery, error)
	Attempts(ctx context.Context, deliveryID string) ([]*rswebhooks.Attempt, error)
	PutDelivery(ctx context.Context, d *rswebhooks.Delivery) error
	Redeliver(ctx context.Context, id string, now time.Time) (*rswebhooks.Delivery, error)
	UnreadableRecords(ctx context.Context) ([]rswebhooks.Unreadable, error)
	DeleteUnreadable(ctx context.Context, kind, id string) error
	ScanEvents(ctx context.Context, from, to string, newestFirst bool, fn func(*rswebhooks.Event) (bool, error)) error
	EventDeliveries(ctx context.Context, eventID string) ([]*rswebhooks.Delivery, error)
	PutDeliveries(ctx context.Context, ds []*rswebhooks.Delivery) (int, error)
}

// Identities authenticates callers (implemented by *identity.Resolver).
type Identities interface {
	Resolve(ctx context.Context, bearer string) (*rswebhooks.Identity, error)
	Login(ctx context.Context, username, password string) (*identity.LoginResult, error)
}

var _ Identities = (*identity.Resolver)(nil)

// Deliveries queues redeliveries and pings and wakes the delivery engine
// (implemented by deliver's engine). Optional: without it the handler
// queues them in the Store and the engine finds them on its next poll.
type Deliveries interface {
	Redeliver(ctx context.Context, deliveryID string) (*rswebhooks.Delivery, error)
	Ping(ctx context.Context, w *rswebhooks.Webhook) (*rswebhooks.Delivery, error)
}

// Options configures New.
type Options struct {
	// Store holds webhooks and deliveries. Required.
	Store Store
	// Identity resolves bearer tokens and serves the login endpoint. Required.
	Identity Identities
	// Deliveries, when set, handles redeliver and ping (see Deliveries).
	Deliveries Deliveries
	// Access decides which events a non-administrator sees in the events
	// feed and which ones a replay sends to a webhook's owner. Nil: none
	// (administrators and the operator see every event).
	Access Access
	// Unmatched lists what the detection rules missed, for
	// GET /api/webhooks/unmatched. Nil: an empty list.
	Unmatched Unmatched
	// Verifier checks a receiver before a webhook is stored (the echo
	// check). Required; use &EchoVerifier{HTTP: client} with the delivery
	// client, so the same address policy applies.
	Verifier Verifier
	// Logger receives one line per request and per change (webhook id and
	// redacted URL only; never secrets, headers or tokens).
	Logger zerolog.Logger
	// Now is the clock for CreatedUtc/UpdatedUtc. Default time.Now.
	Now func() time.Time
	// Filters are the filter names offered by GET /api/webhooks/filters, in
	// order. Default: the five built-in filters with their descriptions.
	Filters []Filter
	// MaxBodyBytes bounds a request body. Default 64 KiB; larger bodies are
	// refused with 413.
	MaxBodyBytes int64
	// ShowResponses shows every owner the receiver's answers recorded with
	// delivery attempts (headers, first 16 KiB of body, transport error).
	// Default false: only administrators see them; other owners see status
	// codes and timings. See docs/security.md.
	ShowResponses bool
	// UserRatePerMinute bounds, per user, the requests that make rswebhooks
	// call out (POST and PUT registrations with their echo check, ping,
	// redeliver); beyond it the API answers 429 with Retry-After.
	// Administrators are not limited. 0 disables the limit.
	UserRatePerMinute int
	// UserRateBurst is how many such requests may come at once. Default
	// UserRatePerMinute.
	UserRateBurst int
	// MaxWebhooksPerUser is how many webhooks a non-administrator may
	// register (POST past it is refused with 400). Zero means no limit.
	MaxWebhooksPerUser int
	// MaxReplay is how many matching events one replay call takes at most;
	// the answer then says how to continue. Default DefaultMaxReplay.
	MaxReplay int
}

// Filter is one entry of GET /api/webhooks/filters.
type Filter struct {
	Name        string `json:"Name"`
	Description string `json:"Description"`
}

// DefaultFilters returns the five filters the report server offers.
func DefaultFilters() []Filter {
	return []Filter{
		{rswebhooks.FilterReports, "Reports added, edited or deleted."},
		{rswebhooks.FilterCategories, "Categories added, edited or deleted."},
		{rswebhooks.FilterConnections, "Data connections added, edited or deleted."},
		{rswebhooks.FilterTasks, "Scheduled tasks added, modified, deleted or executed."},
		{rswebhooks.FilterAlerts, "Data alerts added, modified, deleted or executed."},
	}
}

// Handler serves the admin API. Build it with New.
type Handler struct {
	store      Store
	ids        Identities
	deliveries Deliveries
	access     Access
	unmatched  Unmatched
	verifier   Verifier
	log        zerolog.Logger
	now        func() time.Time
	filters    []Filter
	known      map[string]string // lower-case name → canonical name
	maxBody    int64
	showResp   bool
	limiter    *userLimiter
	maxPerUser int
	maxReplay  int
	routes     []route
	mux        *http.ServeMux
}

// route is one entry of the route table (also checked against openapi.json).
type route struct {
	method, pattern string
	anonymous       bool
	h               func(w http.ResponseWriter, r *http.Request, id *rswebhooks.Identity)
}

// DefaultMaxBodyBytes is the default Options.MaxBodyBytes.
const DefaultMaxBodyBytes = 64 << 10

// New validates opts and returns the handler.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("admin: Options.Store is required")
	case opts.Identity == nil:
		return nil, errors.New("admin: Options.Identity is required")
	case opts.Verifier == nil:
		return nil, errors.New("admin: Options.Verifier is required (use &admin.EchoVerifier{HTTP: deliveryClient})")
	case opts.MaxBodyBytes < 0:
		return nil, errors.New("admin: Options.MaxBodyBytes must not be negative")
	case opts.MaxReplay < 0:
		return nil, errors.New("admin: Options.MaxReplay must not be negative")
	case opts.UserRatePerMinute < 0 || opts.UserRateBurst < 0:
		return nil, errors.New("admin: Options.UserRatePerMinute and UserRateBurst must not be negative")
	}
	h := &Handler{
		store:      opts.Store,
		ids:        opts.Identity,
		deliveries: opts.Deliveries,
		access:     opts.Access,
		unmatched:  opts.Unmatched,
		verifier:   opts.Verifier,
		log:        opts.Logger.With().Str("component", "admin").Logger(),
		now:        opts.Now,
		filters:    opts.Filters,
		maxBody:    opts.MaxBodyBytes,
		showResp:   opts.ShowResponses,
		maxPerUser: opts.MaxWebhooksPerUser,
		maxReplay:  opts.MaxReplay,
		known:      make(map[string]string),
		mux:        http.NewServeMux(),
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.filters == nil {
		h.filters = DefaultFilters()
	}
	for i, f := range h.filters {
		if f.Name == "" || f.Name == rswebhooks.FilterAll || strings.ToLower(f.Name) != f.Name {
			return nil, fmt.Errorf("admin: Options.Filters[%d].Name must be a non-empty lower-case name other than %q, got %q", i, rswebhooks.FilterAll, f.Name)
		}
		h.known[f.Name] = f.Name
	}
	if h.maxReplay == 0 {
		h.maxReplay = DefaultMaxReplay
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	h.limiter = newUserLimiter(opts.UserRatePerMinute, opts.UserRateBurst, h.now)
	const reg = "/api/webhooks/registrations"
	h.routes = []route{
		{"GET", reg, false, h.list},
		{"POST", reg, false, h.create},
		{"DELETE", reg, false, h.deleteAll},
		{"GET", reg + "/{id}", false, h.get},
		{"PUT", reg + "/{id}", false, h.update},
		{"DELETE", reg + "/{id}", false, h.delete},
		{"GET", reg + "/{id}/deliveries", false, h.listDeliveries},
		{"POST", reg + "/{id}/ping", false, h.ping},
		{"POST", reg + "/{id}/replay", false, h.replay},
		{"POST", reg + "/{id}/rotate", false, h.rotate},
		{"POST", reg + "/{id}/rotate/promote", false, h.promote},
		{"GET", "/api/webhooks/deliveries/{id}", false, h.getDelivery},
		{"POST", "/api/webhooks/deliveries/{id}/redeliver", false, h.redeliver},
		{"GET", "/api/webhooks/events", false, h.listEvents},
		{"GET", "/api/webhooks/filters", false, h.listFilters},
		{"GET", "/api/webhooks/me", false, h.me},
		{"GET", "/api/webhooks/unreadable", false, h.listUnreadable},
		{"GET", "/api/webhooks/unmatched", false, h.listUnmatched},
		{"DELETE", "/api/webhooks/unreadable/{kind}/{id}", false, h.deleteUnreadable},
		{"POST", "/api/webhooks/login", true, h.login},
		{"GET", "/api/webhooks/openapi.json", true, h.openAPI},
	}
	allowed := make(map[string][]string) // pattern → methods
	for _, rt := range h.routes {
		h.mux.Handle(rt.method+" "+rt.pattern, h.wrap(rt))
		allowed[rt.pattern] = append(allowed[rt.pattern], rt.method)
	}
	// Everything else gets the {"Message"} body too: 405 (with Allow) for
	// a known path, 404 otherwise. paths matches a path to its pattern.
	paths := http.NewServeMux()
	for p := range allowed {
		paths.Handle(p, http.NotFoundHandler())
	}
	h.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p := paths.Handler(r); p != "" {
			ms := append([]string(nil), allowed[p]...)
			if slices.Contains(ms, http.MethodGet) {
				ms = append(ms, http.MethodHead)
			}
			slices.Sort(ms)
			w.Header().Set("Allow", strings.Join(ms, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not supported here; allowed: "+strings.Join(ms, ", "))
			return
		}
		writeError(w, http.StatusNotFound, "no such resource; the API is described at /api/webhooks/openapi.json")
	}))
	return h, nil
}

// Route is one method and path pattern the handler serves.
type Route struct {
	Method, Pattern string
	// Anonymous routes need no bearer token.
	Anonymous bool
}

// Routes lists what the handler serves (net/http pattern syntax, {id} for
// path parameters). openapi.json describes exactly these, plus /healthz,
// /readyz and /metrics, which cmd serves on the same listener.
func (h *Handler) Routes() []Route {
	out := make([]Route, len(h.routes))
	for i, rt := range h.routes {
		out[i] = Route{Method: rt.method, Pattern: rt.pattern, Anonymous: rt.anonymous}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// statusWriter remembers the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (h *Handler) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := h.now()
		sw := &statusWriter{ResponseWriter: w}
		log := h.log.With().Str("method", r.Method).Str("route", rt.pattern).Logger()
		r = r.WithContext(log.WithContext(r.Context()))
		var who *rswebhooks.Identity
		if !rt.anonymous {
			var ok bool
			if who, ok = h.authenticate(sw, r); !ok {
				log.Debug().Int("status", sw.status).Msg("admin request refused")
				return
			}
			log = log.With().Str("user_id", who.ID).Logger()
			r = r.WithContext(log.WithContext(r.Context()))
		}
		if rt.method != http.MethodGet && !rt.anonymous {
			if err := h.unavailable(); err != nil {
				storeError(sw, r, err, "")
				log.Debug().Int("status", sw.status).Msg("admin change refused: store degraded")
				return
			}
		}
		rt.h(sw, r, who)
		log.Debug().Int("status", sw.status).Dur("duration", h.now().Sub(start)).Msg("admin request")
	})
}

func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*rswebhooks.Identity, bool) {
	tok := rswebhooks.BearerToken(r.Header)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rswebhooks"`)
		writeError(w, http.StatusUnauthorized, "Authorization: a bearer token is required (a report-server access token, or the operator token)")
		return nil, false
	}
	who, err := h.ids.Resolve(r.Context(), tok)
	switch {
	case err == nil:
		return who, true
	case errors.Is(err, identity.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="rswebhooks", error="invalid_token"`)
		msg := "Authorization: the bearer token is invalid, expired or revoked; obtain a new one at POST /api/webhooks/login or at the report server's /Token through this proxy"
		if errors.Is(err, identity.ErrUnknownToken) {
			msg = "Authorization: unknown bearer token; obtain one at POST /api/webhooks/login or at the report server's /Token through this proxy"
		}
		writeError(w, http.StatusUnauthorized, msg)
	case errors.Is(err, identity.ErrForbidden):
		writeError(w, http.StatusForbidden, "Authorization: the report server user is disabled or unknown")
	default:
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("cannot resolve caller")
		writeError(w, http.StatusServiceUnavailable, "Authorization: the report server cannot be reached to check the token; try again")
	}
	return nil, false
}

type errorBody struct {
	Message string `json:"Message"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, errorBody{Message: msg})
}

// WriteJSON answers status with v as JSON, not cached, the way every JSON
// answer of the admin listener (this API and the health endpoints) is
// written. A v that does not encode is a 500 with a Message.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	// No HTML escaping: URIs read back as sent (a=1&b=2), as the report
	// server's serializer writes them.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	b := []byte(`{"Message":"cannot encode the answer"}`)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
	} else {
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// storeConditionText explains each degraded-mode condition to API clients
// (details such as paths stay in the server's log and /readyz).
var storeConditionText = map[string]string{
	rswebhooks.StoreDiskFull:   "the disk of its data directory is full",
	rswebhooks.StoreUnwritable: "its data directory cannot be written",
	rswebhooks.StoreUnopened:   "it could not be opened at start",
}

// unavailable reports the store's degraded mode when the store tells it
// (store.DB does), so changes are refused before anything is attempted.
func (h *Handler) unavailable() error {
	if s, ok := h.store.(interface{ Unavailable() error }); ok {
		return s.Unavailable()
	}
	return nil
}

// storeError answers a store failure: 404, 409, 503 (degraded mode) or 500
// (logged; an unreadable record is logged once by the store).
func storeError(w http.ResponseWriter, r *http.Request, err error, what string) {
	if ue, ok := asUnreadable(err); ok {
		writeError(w, http.StatusInternalServerError, unreadableMessage(ue))
		return
	}
	switch {
	case errors.Is(err, rswebhooks.ErrStoreUnavailable):
		w.Header().Set("Retry-After", "30")
		msg := "the webhook store is unavailable, so changes are refused for now; the report server itself is not affected"
		if c := rswebhooks.StoreCondition(err); c != "" {
			msg += " (" + storeConditionText[c] + "); it recovers by itself when the condition clears, and GET /readyz says why"
		}
		writeError(w, http.StatusServiceUnavailable, msg)
	case errors.Is(err, rswebhooks.ErrNotFound):
		writeError(w, http.StatusNotFound, what+" not found")
	case errors.Is(err, rswebhooks.ErrConflict):
		writeError(w, http.StatusConflict, what+" conflicts with a stored one")
	default:
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("store failure")
		writeError(w, http.StatusInternalServerError, "the store failed; see the server log")
	}
}
