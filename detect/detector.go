package detect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/tap"
	"github.com/rswebhooks/rswebhooks/tracing"
)

// EventStore is the part of the store the detector needs.
type EventStore interface {
	AppendEvent(ctx context.Context, e *rswebhooks.Event) error
}

// Actors names the caller of a request from its bearer token. It runs on
// the request's critical path, so it may read its cache and the store (a
// token learned by another node of a cluster), bounded by ctx, but never
// call the report server.
type Actors interface {
	Actor(ctx context.Context, bearerToken string) (*rswebhooks.Identity, bool)
}

// ActorTimeout bounds naming the caller when that needs a store read (a
// token learned by another node): past it the event leaves without the
// caller's name rather than hold the client's answer.
const ActorTimeout = 250 * time.Millisecond

// Defaults for Options.
const (
	DefaultBodyLimit     = tap.DefaultBodyLimit
	DefaultAppendTimeout = 5 * time.Second
)

// Options configure a Detector. Store is required; everything else has a
// default.
type Options struct {
	// Rules is the rule table. Nil or empty means BuiltinRules(). To add
	// operator rules, pass MergeRules(BuiltinRules(), extra).
	Rules []Rule
	// Prefix is the report server's virtual directory, e.g. "/reporting".
	// When set, only paths below it match. Empty: the site root.
	Prefix string
	// Store receives each event before Observe returns. Required.
	Store EventStore
	// Actors, when set, names the user behind the request's bearer token.
	Actors Actors
	// Names, when set, names resources the call did not (a Deleted whose
	// path carries only the id) and a report's category, from what was
	// last read of the report server. It must not block.
	Names Names
	// Logger is used for unmatched calls (info), events without id (warn)
	// and lost events (error). The zero value logs nothing.
	Logger zerolog.Logger
	// Metrics, when set, is used as is; otherwise the metrics are registered
	// on Registerer (NewMetrics). Both nil: a private registry (not exported).
	Metrics    *Metrics
	Registerer prometheus.Registerer
	// Now is the clock for event times and ids. Default time.Now.
	Now func() time.Time
	// OnEvent, when set, is called after each event is stored (to wake the
	// delivery side). It must not block.
	OnEvent func()
	// BodyLimit caps the bytes of a (decompressed) body the detector parses.
	// Bodies the proxy truncated or that decode beyond the cap are not parsed.
	// Default DefaultBodyLimit (1 MiB).
	BodyLimit int64
	// Unmatched, when set, keeps the successful mutating calls no rule
	// matched (below Prefix), for GET /api/webhooks/unmatched.
	Unmatched *Unmatched
	// AppendTimeout bounds one AppendEvent. The store call does not inherit
	// the client's cancellation: the change already happened upstream.
	// Default DefaultAppendTimeout.
	AppendTimeout time.Duration
	// Tracer, when set, records an "event append" span, a child of the
	// proxy's span in Observe's context, and the event continues it. Nil:
	// the event continues the call's own traceparent header, if valid.
	Tracer trace.Tracer
}

// Names knows the last-read name of a resource by filter and id (ids
// case-insensitive).
type Names interface {
	Name(filter, id string) (string, bool)
}

// Detector turns proxied exchanges into events. It implements tap.Tap and
// is safe for concurrent use.
type Detector struct {
	m             *matcher
	store         EventStore
	actors        Actors
	names         Names
	log           zerolog.Logger
	metrics       *Metrics
	now           func() time.Time
	ids           rswebhooks.IDSource // event ids in the order events are made
	onEvent       func()
	bodyLimit     int64
	appendTimeout time.Duration
	unmatched     *Unmatched
	tracer        trace.Tracer
}

var (
	_ tap.Tap      = (*Detector)(nil)
	_ tap.FieldTap = (*Detector)(nil)
)

// bodyFieldNames are the only parts of a body the detector reads (see
// parseFields).
var bodyFieldNames = []string{"Id", "Name", "ReportName", "CategoryId", "CategoryName", "Data"}

// New validates opts and compiles the rule table.
func New(opts Options) (*Detector, error) {
	if opts.Store == nil {
		return nil, errors.New("detect: Options.Store is required")
	}
	if opts.BodyLimit < 0 {
		return nil, fmt.Errorf("detect: Options.BodyLimit must not be negative, got %d", opts.BodyLimit)
	}
	if opts.AppendTimeout < 0 {
		return nil, fmt.Errorf("detect: Options.AppendTimeout must not be negative, got %s", opts.AppendTimeout)
	}
	if strings.ContainsAny(opts.Prefix, "?#%{}\\ ") {
		return nil, fmt.Errorf("detect: Options.Prefix %q must be a plain path like /reporting (no ?, #, %%, braces, backslash or space)", opts.Prefix)
	}
	rules := opts.Rules
	if len(rules) == 0 {
		rules = BuiltinRules()
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("detect: Options.Rules[%d] (%s): %w", i, r, err)
		}
	}
	m, err := newMatcher(opts.Prefix, "Options.Rules", rules)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	d := &Detector{
		m:             m,
		store:         opts.Store,
		actors:        opts.Actors,
		names:         opts.Names,
		log:           opts.Logger.With().Str("component", "detect").Logger(),
		metrics:       opts.Metrics,
		now:           opts.Now,
		onEvent:       opts.OnEvent,
		bodyLimit:     opts.BodyLimit,
		appendTimeout: opts.AppendTimeout,
		unmatched:     opts.Unmatched,
		tracer:        opts.Tracer,
	}
	if d.metrics == nil {
		reg := opts.Registerer
		if reg == nil {
			reg = prometheus.NewRegistry()
		}
		d.metrics = NewMetrics(reg)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.bodyLimit == 0 {
		d.bodyLimit = DefaultBodyLimit
	}
	if d.appendTimeout == 0 {
		d.appendTimeout = DefaultAppendTimeout
	}
	return d, nil
}

// Wants reports whether a call may become an event, so the proxy captures
// its bodies. Ignore rules and unmatched routes need no bodies (Observe still
// sees them, as the proxy calls it for every non-safe exchange), so token
// responses and uploads on ignored routes are never copied.
func (d *Detector) Wants(method, path string) bool {
	m, ok := d.m.lookup(upper(method), path)
	return ok && !m.rule.Ignore()
}

// Fields implements tap.FieldTap: of a body, the detector reads only the
// top-level Id, Name, ReportName, CategoryId, CategoryName and a grid answer's Data, and nothing at all for a rule that takes the id
// from the path and has no name to learn (revisions, publish calls), so the
// proxy scans bodies instead of copying them.
func (d *Detector) Fields(method, path string) []string {
	m, ok := d.m.lookup(upper(method), path)
	if !ok || m.rule.Ignore() || !m.rule.readBodies {
		return []string{}
	}
	return bodyFieldNames
}

// Observe stores the event a successful exchange stands for. Non-2xx
// exchanges and ignore rules produce nothing; a 2xx non-safe exchange no rule
// matches is logged and counted. Store failures are logged and counted; the
// response goes out unchanged either way.
func (d *Detector) Observe(ctx context.Context, ex *tap.Exchange) {
	if ex == nil || ex.Status < 200 || ex.Status > 299 {
		return
	}
	method := upper(ex.Method)
	m, ok := d.m.lookup(method, ex.Path)
	if !ok {
		if safeMethod(method) {
			return
		}
		d.metrics.Unmatched.WithLabelValues(methodLabel(method)).Inc()
		if d.unmatched != nil {
			if segs, ok := d.m.relative(ex.Path); ok {
				d.unmatched.record(method, segs, ex.Status)
			}
		}
		d.log.Info().Str("method", method).Str("path", ex.Path).Int("status", ex.Status).
			Str("request_id", ex.RequestID).Msg("successful call matched no detection rule; add one with --rules if it changes a resource")
		return
	}
	if m.rule.Ignore() {
		return
	}
	// One bound for naming the actor (a store read at most) and the append.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.appendTimeout)
	defer cancel()
	e := d.event(actx, m, ex, method)
	if e.ResourceID == "" {
		d.metrics.WithoutID.WithLabelValues(e.Filter).Inc()
	}
	var span trace.Span
	if d.tracer != nil {
		actx, span = d.tracer.Start(actx, "event append", trace.WithAttributes(
			attribute.String("rswebhooks.event_id", e.ID), attribute.String("rswebhooks.filter", e.Filter),
			attribute.String("rswebhooks.event_type", e.Type)))
		sc := span.SpanContext()
		e.TraceParent, e.TraceState = tracing.Format(sc), tracing.State(sc)
	} else {
		e.TraceParent, e.TraceState = tracing.FromHeader(ex.RequestHeader)
	}
	err := d.store.AppendEvent(actx, e)
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	if err != nil {
		reason := lostReason(err)
		d.metrics.Lost.WithLabelValues(reason).Inc()
		lvl := d.log.Error()
		if reason != lostReasonError {
			// Degraded mode: the store logs each transition and a periodic
			// reminder; one line per lost event would flood the log.
			lvl = d.log.Debug()
		}
		lvl.Err(err).Str("event_id", e.ID).Str("filter", e.Filter).Str("event", e.Type).
			Str("resource_id", e.ResourceID).Str("method", method).Str("path", ex.Path).
			Str("request_id", ex.RequestID).Msg("event lost: store refused it")
		return
	}
	d.metrics.Events.WithLabelValues(e.Filter, e.Type).Inc()
	d.log.Debug().Str("event_id", e.ID).Str("filter", e.Filter).Str("event", e.Type).
		Str("resource_id", e.ResourceID).Str("request_id", ex.RequestID).Msg("event stored")
	if d.onEvent != nil {
		d.onEvent()
	}
}

// event builds the event for a matched 2xx exchange.
func (d *Detector) event(ctx context.Context, m match, ex *tap.Exchange, method string) *rswebhooks.Event {
	r := m.rule
	now := d.now().UTC()
	e := &rswebhooks.Event{
		ID:         d.ids.Next(now),
		Filter:     r.Filter,
		Type:       r.Event,
		Time:       now,
		APIVersion: r.APIVersion,
		Method:     method,
		Path:       ex.Path,
		RequestID:  ex.RequestID,
		Source:     rswebhooks.SourceProxy,
	}
	id, name, cat, reason := d.resource(m, ex)
	e.ResourceID, e.ResourceName = id, name
	if r.Filter == rswebhooks.FilterReports {
		e.CategoryID, e.CategoryName = cat.categoryID, cat.categoryName
	}
	if r.readBodies && (ex.RequestSkipped != "" || ex.ResponseSkipped != "") {
		// Recorded from what is known (path, headers); say what is not.
		if id == "" {
			e.Missing = append(e.Missing, "ResourceId")
		}
		if name == "" {
			e.Missing = append(e.Missing, "ResourceName")
		}
	}
	if id == "" {
		d.log.Warn().Str("event_id", e.ID).Str("filter", e.Filter).Str("event", e.Type).
			Str("method", method).Str("path", ex.Path).Str("id_source", string(r.ID)).
			Str("reason", reason).Str("request_id", ex.RequestID).
			Msg("event has no resource id: the body holding it was not usable")
	}
	if d.names != nil {
		if e.ResourceName == "" && e.ResourceID != "" {
			if n, ok := d.names.Name(e.Filter, e.ResourceID); ok {
				e.ResourceName = n
				e.Missing = slices.DeleteFunc(e.Missing, func(f string) bool { return f == "ResourceName" })
			}
		}
		if e.CategoryID != "" && e.CategoryName == "" {
			if n, ok := d.names.Name(rswebhooks.FilterCategories, e.CategoryID); ok {
				e.CategoryName = n
			}
		}
	}
	if d.actors != nil {
		if tok := rswebhooks.BearerToken(ex.RequestHeader); tok != "" {
			// A store that does not answer at once costs the caller's
			// name, not the event or the client's time.
			actx, cancel := context.WithTimeout(ctx, ActorTimeout)
			who, ok := d.actors.Actor(actx, tok)
			cancel()
			if ok && who != nil {
				e.UserID, e.UserName = who.ID, who.Name
			}
		}
	}
	return e
}

// resource finds the resource id and name per the rule's id source. reason
// explains an empty id.
func (d *Detector) resource(m match, ex *tap.Exchange) (id, name string, cat fields, reason string) {
	r := m.rule
	var req, resp fields
	var reqErr, respErr error
	if r.readBodies {
		req, reqErr = bodyFields(ex.RequestBody, ex.RequestTruncated, tap.Encoding(ex.RequestHeader, ex.RequestDecoded), d.bodyLimit, false)
		resp, respErr = bodyFields(ex.ResponseBody, ex.ResponseTruncated, tap.Encoding(ex.ResponseHeader, ex.ResponseDecoded), d.bodyLimit, true)
		if ex.RequestSkipped == tap.SkipBudget {
			reqErr = errNotCaptured
		}
		if ex.ResponseSkipped == tap.SkipBudget && resp.id == "" {
			respErr = errNotCaptured
		}
	}
	name = req.name
	if name == "" {
		name = resp.name
	}
	// The request names the category the caller set; an answer (ReportInfo)
	// the one the report has.
	cat.categoryID, cat.categoryName = first(req.categoryID, resp.categoryID), first(req.categoryName, resp.categoryName)
	if p, ok := r.ID.PathParam(); ok {
		id, _ = m.param(p)
		return id, name, cat, ""
	}
	loc, _ := locationID(ex.ResponseHeader)
	switch r.ID {
	case IDBody:
		id = first(req.id, resp.id)
	case IDResponse:
		id = first(resp.id, loc)
	case IDLocation:
		id = first(loc, resp.id)
	}
	if id == "" {
		reason = "no id in the response"
		switch {
		case r.ID == IDBody && reqErr != nil:
			reason = "request body: " + reqErr.Error()
		case respErr != nil:
			reason = "response body: " + respErr.Error()
		}
	}
	return id, name, cat, reason
}

// encoding is a body's Content-Encoding, or "" once the proxy decoded it.
func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func upper(m string) string {
	for i := 0; i < len(m); i++ {
		if c := m[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(m)
		}
	}
	return m
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
