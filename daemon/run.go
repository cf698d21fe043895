package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/access"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/buildinfo"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/leader"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reconcile"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/spool"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/tracing/spanexport"
	"github.com/rswebhooks/rswebhooks/watch"
	"github.com/rswebhooks/rswebhooks/webui"
)

// Run starts the daemon and blocks until ctx is cancelled (then shuts down
// gracefully) or a part fails. Listeners are bound before anything is
// reported ready, so Options.Ready sees real addresses (":0" works).
//
// Run assembles the named parts, each built by its own function (store,
// report-server client and access, delivery, detection and watcher, HTTP
// servers), then runs the lifecycle: start, wait, and a bounded shutdown
// in reverse order.
func Run(ctx context.Context, o Options) error {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	// Every line names the node, so a cluster's merged logs stay readable.
	o.Logger = o.Logger.With().Str("node", o.NodeName).Logger()
	reg, gatherer := o.Registerer, o.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = r, r
	}
	if gatherer == nil {
		return errors.New("daemon: Options.Gatherer is required with a custom Registerer")
	}
	upstream, _ := url.Parse(o.Upstream) // validated

	st, err := buildStore(ctx, o, reg)
	if err != nil {
		return err
	}
	defer st.closeOnce(o.Logger, ShutdownMargin)
	buildinfo.Register(reg, o.Build)
	registerNodeInfo(reg, o.NodeName)

	spans, err := buildTracing(ctx, o)
	if err != nil {
		return err
	}
	defer spans.flush(ctx, o.Logger)
	rs, err := buildReportServer(o, reg, upstream, st.db)
	if err != nil {
		return err
	}
	dl, err := buildDelivery(ctx, o, reg, st.db, rs, spans.tracer)
	if err != nil {
		return err
	}
	dt, err := buildDetection(ctx, o, reg, upstream, st.db, rs, dl.engine, spans.tracer)
	if err != nil {
		return err
	}
	defer dt.closeSpool(o.Logger)
	bg := &background{log: o.Logger}
	hs, err := buildServers(o, reg, gatherer, upstream, st, rs, dl, dt, bg, spans.tracer)
	if err != nil {
		return err
	}
	return lifecycle(ctx, o, st, dl, dt, hs, bg)
}

// tracingPart is the optional span export: tracer is nil when it is off
// (see spanexport.Enabled), and every part then skips its spans.
type tracingPart struct {
	provider *spanexport.Provider
	tracer   trace.Tracer
}

// buildTracing makes the span export (--otel, OTEL_TRACES_EXPORTER=otlp).
func buildTracing(ctx context.Context, o Options) (*tracingPart, error) {
	p, err := spanexport.NewProvider(ctx, spanexport.Options{Enabled: o.OTel, Version: o.Version, Logger: o.Logger, Exporter: o.SpanExporter})
	if err != nil {
		return nil, err
	}
	return &tracingPart{provider: p, tracer: p.Tracer()}, nil
}

// flush sends the spans still buffered, for at most 2 s.
func (t *tracingPart) flush(ctx context.Context, log zerolog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := t.provider.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("flushing spans at shutdown")
	}
}

// storePart is the store and its shutdown.
type storePart struct {
	db     backend
	closed bool
}

// buildStore opens the store (or an unopened one, degraded) and exports
// its size and degraded-mode metrics.
func buildStore(ctx context.Context, o Options, reg prometheus.Registerer) (*storePart, error) {
	db, err := openStore(ctx, o, reg)
	if err != nil {
		return nil, err
	}
	registerStoreMetrics(reg, db)
	return &storePart{db: db}, nil
}

// closeOnce closes the store within d unless it is closed already; the
// error is logged and returned.
func (s *storePart) closeOnce(log zerolog.Logger, d time.Duration) error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.CloseWithin(d)
	if err != nil {
		log.Error().Err(err).Msg("the store could not be closed cleanly; committed events are replayed from its log at the next start")
	}
	return err
}

// reportServerPart is the service-account client and what authenticates
// and authorises callers with it.
type reportServerPart struct {
	client *reportserver.Client
	ids    *identity.Resolver
	admins *access.Admins
}

// buildReportServer makes the service-account client (its own pool with
// the proxy's TLS trust), the identity resolver and the administrators'
// memory.
func buildReportServer(o Options, reg prometheus.Registerer, upstream *url.URL, db backend) (*reportServerPart, error) {
	log := o.Logger
	rsTransport, err := proxyTransport(o)
	if err != nil {
		return nil, fmt.Errorf("upstream transport: %w", err)
	}
	rs, err := reportserver.New(reportserver.Options{
		BaseURL:  upstream,
		User:     o.ServiceUser,
		Password: o.ServicePassword,
		Token:    o.ServiceToken,
		HTTP:     &http.Client{Timeout: 30 * time.Second, Transport: rsTransport},
		Logger:   log,

		OnServiceLogin: newServiceLogins(reg, log).observe,
	})
	if err != nil {
		return nil, fmt.Errorf("report server client: %w", err)
	}
	if !rs.Configured() {
		log.Warn().Msg("no service account (--service-user/--service-password or --service-token): " +
			"non-administrators' deliveries are skipped (access_unknown), and the execution watcher and the reconciler are off")
	}
	ids, err := identity.New(identity.Options{
		Client:        rs,
		OperatorToken: o.AdminToken,
		Tokens:        db,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	admins := &access.Admins{
		Resolver:    ids,
		Meta:        db,
		Remember:    !rs.Configured(),
		RememberFor: o.RememberAdminsFor,
		Logger:      log.With().Str("component", "access").Logger(),
	}
	return &reportServerPart{client: rs, ids: ids, admins: admins}, nil
}

// deliveryPart is the delivery engine and the receivers' HTTP client.
type deliveryPart struct {
	engine *deliver.Engine
	client *http.Client
	deny   []netip.Prefix // refused target addresses, private ranges included with --deny-private
	links  *linksPart
	access *access.Checker // also decides what the events feed and replays show
}

// linksPart is the document links: made by the engine, served on the proxy
// listener once its address is known (see startLinks).
type linksPart struct {
	ref     *linkRef
	key     []byte // nil: links are off
	off     string // why they are off
	perms   access.Permissions
	metrics *doclink.Metrics
}

// buildLinks loads (or creates) the signing key in the store; without a
// service account, or when the key cannot be read, links are off and the
// notifications that list documents say why.
func buildLinks(ctx context.Context, o Options, reg prometheus.Registerer, db backend, rs *reportServerPart, perms access.Permissions) *linksPart {
	l := &linksPart{ref: &linkRef{}, perms: perms, metrics: doclink.NewMetrics(reg)}
	if !rs.client.Configured() {
		l.off = "document links are off: no service account to download documents with"
		return l
	}
	key, err := doclink.LoadKey(ctx, db)
	if err != nil {
		l.off = "document links are off: their signing key could not be read from the store"
		o.Logger.Error().Err(err).Msg("document links are off: the signing key could not be loaded")
		return l
	}
	l.key = key
	return l
}

// startLinks enables the links once the proxy listener is bound (its
// address is their default base).
func startLinks(o Options, l *linksPart, db backend, rs *reportServerPart, proxyAddr net.Addr) error {
	if l.key == nil {
		return nil
	}
	base, err := publicURL(o, proxyAddr)
	if err != nil {
		return fmt.Errorf("--public-url: %w", err)
	}
	links, err := doclink.New(doclink.Options{
		Key:      l.key,
		BaseURL:  base,
		TTL:      o.DocumentLinkTTL,
		Webhooks: db,
		// A fresh, briefly cached decision: a revoked owner's links stop
		// within seconds.
		Access:     access.New(access.Options{Perms: l.perms, KnownAdmin: rs.admins.Known, TTL: 5 * time.Second}),
		Documents:  rs.client,
		APIVersion: strings.ToLower(o.APIVersion),
		Logger:     o.Logger,
		Metrics:    l.metrics,
	})
	if err != nil {
		return fmt.Errorf("document links: %w", err)
	}
	l.ref.set(links)
	o.Logger.Info().Str("base", base.String()).Dur("ttl", o.DocumentLinkTTL).Msg("document links enabled")
	return nil
}

// buildDelivery makes the receivers' client (address policy, attempt
// timeout), the access checks and the delivery engine.
func buildDelivery(ctx context.Context, o Options, reg prometheus.Registerer, db backend, rs *reportServerPart, tracer trace.Tracer) (*deliveryPart, error) {
	deny := o.DenyTargets
	if o.DenyPrivate {
		deny = append(append([]netip.Prefix(nil), deny...), deliver.PrivateRanges()...)
	}
	client := deliver.NewHTTPClient(deliver.ClientOptions{Allow: o.AllowTargets, Deny: deny, Timeout: o.AttemptTimeout})
	var perms access.Permissions
	if rs.client.Configured() {
		perms = access.ReportServer{C: rs.client}
	}
	policy := deliver.Policy{}
	if o.RetryDelays != nil {
		policy = deliver.DefaultPolicy()
		policy.Delays = o.RetryDelays
	}
	links := buildLinks(ctx, o, reg, db, rs, perms)
	var engineLinks deliver.Links
	if links.key != nil {
		engineLinks = links.ref
	}
	checker := access.New(access.Options{Perms: perms, KnownAdmin: rs.admins.Known, TTL: o.AccessCacheTTL, Metrics: access.NewMetrics(reg)})
	engine, err := deliver.New(deliver.Options{
		Links:                 engineLinks,
		LinksOffNote:          links.off,
		Store:                 db,
		Access:                checker,
		Client:                client,
		Policy:                policy,
		MaxConcurrency:        o.MaxConcurrency,
		PerWebhookConcurrency: o.PerWebhookConcurrency,
		PerOwnerConcurrency:   o.PerOwnerConcurrency,
		AttemptTimeout:        o.AttemptTimeout,
		Logger:                o.Logger,
		Registerer:            reg,
		Version:               o.Version,
		LeaseHolder:           leaseHolder(o.NodeName),
		Tracer:                tracer,
	})
	if err != nil {
		return nil, fmt.Errorf("delivery engine: %w", err)
	}
	return &deliveryPart{engine: engine, client: client, deny: deny, links: links, access: checker}, nil
}

// detectionPart turns what happens at the report server into events: the
// detector behind the proxy, the execution watcher and the reconciler (the
// last two nil without a service account or when turned off).
type detectionPart struct {
	det       *detect.Detector
	unmatched *detect.Unmatched // what the rules miss, for the admin API
	// watcher and reconciler run on the node elected to run each (every
	// node alone); nil when off.
	watcher, reconciler *leader.Runner
	// resolver finds the runs of execute calls held in the store, on every
	// node; nil when the watcher is off.
	resolver func(ctx context.Context) error
	// spool keeps what the proxy acknowledges during a database outage
	// (cluster mode only; nil otherwise).
	spool *spool.Spool
}

// closeSpool closes the spool, if any, once.
func (d *detectionPart) closeSpool(log zerolog.Logger) {
	if d == nil || d.spool == nil {
		return
	}
	if err := d.spool.Close(); err != nil {
		log.Error().Err(err).Msg("the spool could not be closed cleanly; spooled events are forwarded at the next start")
	}
	d.spool = nil
}

// buildDetection makes the event sources. The detector appends through the
// decorators the others return: the watcher's correlator (an execute call
// seen by the proxy and the record the watcher later finds make one event),
// then the reconciler's gate (the proxy's late copy of a change the
// reconciler already emitted is dropped).
func buildDetection(ctx context.Context, o Options, reg prometheus.Registerer, upstream *url.URL, db backend, rs *reportServerPart, engine *deliver.Engine, tracer trace.Tracer) (*detectionPart, error) {
	log := o.Logger
	rules := detect.BuiltinRules()
	if o.RulesFile != "" {
		extra, err := detect.LoadRules(o.RulesFile)
		if err != nil {
			return nil, fmt.Errorf("--rules: %w", err)
		}
		rules = detect.MergeRules(rules, extra)
	}
	var part detectionPart
	var events detect.EventStore = db
	switch {
	case !rs.client.Configured():
		events = watch.Unwatched{Store: db, Reason: "no service account: the run of an execute call cannot be read"}
	case o.WatchInterval <= 0:
		events = watch.Unwatched{Store: db, Reason: "the execution watcher is off (--watch-interval 0): the run of an execute call is not read"}
	}
	watchMetrics := watch.NewMetrics(reg)
	leaderMetrics := leader.NewMetrics(reg)
	spoolMetrics := spool.NewMetrics(reg)
	if rs.client.Configured() && o.WatchInterval > 0 {
		w, corr, err := watch.NewCorrelated(ctx, watch.Options{
			Client:     rs.client,
			Store:      db,
			APIVersion: strings.ToLower(o.APIVersion),
			Interval:   o.WatchInterval,
			Retention:  db.Retention(),
			Documents:  rs.client,
			OnEvent:    engine.Wake,
			Logger:     log,
			Metrics:    watchMetrics,
		})
		if err != nil {
			return nil, fmt.Errorf("execution watcher: %w", err)
		}
		el, err := elector(o, watcherLock, o.WatchInterval)
		if err != nil {
			return nil, fmt.Errorf("execution watcher: %w", err)
		}
		// An execute call is held as a claim in the (shared) store; every
		// node resolves claims, whichever node took the call, and one node
		// polls.
		events = corr
		part.resolver = w.RunResolver
		part.watcher = &leader.Runner{Name: "execution watcher", Elector: el, Job: w.RunPolls, Logger: log, Metrics: leaderMetrics}
	}
	reconcileMetrics := reconcile.NewMetrics(reg)
	// The reconciler's last read names what a call does not (nil without it).
	var names detect.Names
	if rs.client.Configured() && o.ReconcileInterval > 0 {
		// In a cluster one node reconciles while every node's proxy
		// appends: the gates share the reconciler's emissions through
		// the store.
		gate, err := reconcile.NewGate(events, 0, log)
		if o.PostgresURL != "" {
			gate, err = reconcile.NewSharedGate(events, db, 0, log)
		}
		if err != nil {
			return nil, fmt.Errorf("reconciler: %w", err)
		}
		events = gate
		rec, err := reconcile.New(reconcile.Options{
			Client:     rs.client,
			Store:      db,
			Gate:       gate,
			APIVersion: strings.ToLower(o.APIVersion),
			Interval:   o.ReconcileInterval,
			OnEvent:    engine.Wake,
			Logger:     log,
			Metrics:    reconcileMetrics,
		})
		if err != nil {
			return nil, fmt.Errorf("reconciler: %w", err)
		}
		// Likewise one node of a cluster reconciles.
		el, err := elector(o, reconcilerLock, o.ReconcileInterval)
		if err != nil {
			return nil, fmt.Errorf("reconciler: %w", err)
		}
		part.reconciler = &leader.Runner{Name: "reconciler", Elector: el, Job: rec.Run, Logger: log}
		names = rec
	}
	// Cluster mode: what the proxy acknowledges survives a database outage.
	sp, err := openSpool(o, events, spoolMetrics, engine.Wake)
	if err != nil {
		return nil, err
	}
	if sp != nil {
		part.spool, events = sp, sp
	}
	unmatched := detect.NewUnmatched(detect.DefaultUnmatchedSize, nil)
	det, err := detect.New(detect.Options{
		Names:      names,
		Rules:      rules,
		Unmatched:  unmatched,
		Prefix:     strings.TrimSuffix(upstream.Path, "/"),
		Store:      events,
		Actors:     rs.ids,
		Logger:     log,
		Registerer: reg,
		OnEvent:    engine.Wake,
		BodyLimit:  o.CaptureLimit,
		Tracer:     tracer,
	})
	if err != nil {
		part.closeSpool(log)
		return nil, fmt.Errorf("detect: %w", err)
	}
	part.det, part.unmatched = det, unmatched
	return &part, nil
}

// serversPart is the two HTTP servers with their bound listeners: the
// proxy (the report server's front door) and the admin listener (admin
// API, web UI, health, metrics).
type serversPart struct {
	proxySrv, adminSrv *http.Server
	proxyLn, adminLn   net.Listener
}

// buildServers makes the admin API, the proxy, the health checks and the
// admin mux, and binds both listeners, each with its own limits.
func buildServers(o Options, reg prometheus.Registerer, gatherer prometheus.Gatherer, upstream *url.URL,
	st *storePart, rs *reportServerPart, dl *deliveryPart, dt *detectionPart, bg *background, tracer trace.Tracer) (*serversPart, error) {
	log := o.Logger
	adminAPI, err := admin.New(admin.Options{
		Store:      st.db,
		Identity:   identities{rs.ids, rs.admins},
		Deliveries: engineDeliveries{dl.engine},
		Access:     dl.access,
		Unmatched:  dt.unmatched,
		Verifier: &admin.EchoVerifier{
			HTTP:      dl.client,
			Policy:    deliver.NewAddressPolicy(o.AllowTargets, dl.deny),
			UserAgent: "rswebhooks/" + o.Version,
		},
		Logger:             log,
		ShowResponses:      o.ShowReceiverResponses,
		UserRatePerMinute:  max(o.UserRatePerMinute, 0),
		MaxWebhooksPerUser: o.MaxWebhooksPerUser,
	})
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}

	tr, err := proxyTransport(o)
	if err != nil {
		return nil, fmt.Errorf("upstream transport: %w", err)
	}
	var routes []proxy.Route
	if o.RegistrationsOnProxy {
		// The registrations API and its companions; the rest of the
		// report server's /api/webhooks (if any) still goes upstream.
		for _, p := range []string{"registrations", "filters", "deliveries", "login", "me", "unreadable", "events", "unmatched", "openapi.json"} {
			routes = append(routes, proxy.Route{Prefix: "/api/webhooks/" + p, Handler: adminAPI})
		}
	}
	// Document links live in rswebhooks' "~" namespace on the proxy
	// listener, always reserved (404 while links are off).
	routes = append(routes, proxy.Route{Prefix: doclink.PathPrefix, Handler: dl.links.ref})
	px, err := proxy.New(proxy.Options{
		Upstream:       upstream,
		Transport:      tr,
		HostHeader:     o.UpstreamHostHeader,
		TrustedProxies: o.TrustedProxies,
		Tap:            taps{rs.ids, dt.det},
		CaptureLimit:   o.CaptureLimit,
		CaptureBudget:  o.CaptureBudget,
		Routes:         routes,
		Tracer:         tracer,
		Logger:         log.With().Str("component", "proxy").Logger(),
		Registerer:     reg,
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}

	hl := &health{now: time.Now, version: o.Version, backend: st.db.Backend(), checks: []check{
		{name: "upstream", fn: px.CheckUpstream},
		// The store never fails readiness: the proxy is the report
		// server's front door, and it serves without the store (degraded).
		{name: "store", fn: storeCheck(st.db), degrades: true},
		{name: "background", fn: bg.check},
	}}
	if dt.spool != nil {
		// A database outage: the proxy serves and the spool keeps what it
		// acknowledges; /readyz names the outage and what waits.
		hl.checks = append(hl.checks, check{name: "spool", fn: dt.spool.Check, degrades: true})
	}
	if rs.client.Configured() {
		// The service account logs in afresh on failure; until it can,
		// access checks wait (only for webhooks that need one).
		hl.checks = append(hl.checks, check{name: "service_account", soft: true, fn: func(ctx context.Context) error {
			if _, err := rs.client.IsAdmin(ctx, o.ServiceUser); err != nil && o.ServiceUser != "" {
				return fmt.Errorf("service account %q: %w", o.ServiceUser, err)
			}
			return nil
		}})
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", getOnly(http.HandlerFunc(hl.healthz)))
	mux.Handle("/readyz", getOnly(http.HandlerFunc(hl.readyz)))
	mux.Handle("/metrics", getOnly(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{Registry: reg})))
	mux.Handle("/api/webhooks/", adminAPI)
	mux.Handle("/", getOnly(webui.Handler()))

	// Each listener has its own limits (connections, header, body and idle
	// time), so a flood on the proxy leaves the admin listener answerable.
	errLog := zerologWriter{log.With().Str("component", "http").Logger()}
	hs := &serversPart{proxySrv: o.ProxyLimits.Server(px), adminSrv: o.AdminLimits.Server(mux)}
	hs.proxySrv.ErrorLog, hs.adminSrv.ErrorLog = errLog.stdLogger(), errLog.stdLogger()
	hs.proxyLn, err = listen(o.Listen, o.TLSCert, o.TLSKey, o.ProxyLimits.Bound)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	adminLn, err := net.Listen("tcp", o.AdminListen)
	if err != nil {
		hs.proxyLn.Close()
		return nil, fmt.Errorf("--admin-listen: %w", err)
	}
	hs.adminLn = o.AdminLimits.Bound(adminLn)
	if err := startLinks(o, dl.links, st.db, rs, hs.proxyLn.Addr()); err != nil {
		hs.proxyLn.Close()
		hs.adminLn.Close()
		return nil, err
	}
	return hs, nil
}

// lifecycle starts the servers and the background parts, waits for ctx or
// a failed server, and shuts down in reverse order: drain the HTTP servers
// (Options.ShutdownTimeout), stop the background parts, close the store
// (together at most ShutdownMargin).
func lifecycle(ctx context.Context, o Options, st *storePart, dl *deliveryPart, dt *detectionPart, hs *serversPart, bg *background) error {
	log := o.Logger
	g, gctx := errgroup.WithContext(ctx)
	var g2 sync.WaitGroup
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	serve := func(name string, srv *http.Server, ln net.Listener) {
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s listener: %w", name, err)
			}
			return nil
		})
	}
	serve("proxy", hs.proxySrv, hs.proxyLn)
	serve("admin", hs.adminSrv, hs.adminLn)
	// Background parts never take the proxy down with them (traffic
	// first): a part that stops is logged and reported by /readyz.
	bg.start(&g2, workCtx, "store-gc", st.db.Run)
	bg.start(&g2, workCtx, "delivery", dl.engine.Run)
	if dt.spool != nil {
		bg.start(&g2, workCtx, "spool", dt.spool.Run)
	}
	if dt.watcher != nil {
		// One node of a cluster polls executions; a node alone always does.
		bg.start(&g2, workCtx, "watcher", dt.watcher.Run)
	}
	if dt.resolver != nil {
		// Every node finds the runs of execute calls (its own, and those of
		// a node that died before it could).
		bg.start(&g2, workCtx, "resolver", dt.resolver)
	}
	if dt.reconciler != nil {
		bg.start(&g2, workCtx, "reconciler", dt.reconciler.Run)
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info().Msg("shutting down: draining in-flight requests")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
		defer cancel()
		perr := hs.proxySrv.Shutdown(sctx)
		aerr := hs.adminSrv.Shutdown(sctx)
		stopWork()
		return errors.Join(ignoreCanceled(perr), ignoreCanceled(aerr))
	})

	log.Info().Str("listen", hs.proxyLn.Addr().String()).Str("admin_listen", hs.adminLn.Addr().String()).
		Str("upstream", rswebhooks.RedactURL(o.Upstream)).Str("version", o.Version).Msg("rswebhooks serving")
	if o.Ready != nil {
		o.Ready(hs.proxyLn.Addr().String(), hs.adminLn.Addr().String())
	}
	err := g.Wait()
	// Whatever the store is doing (Badger can block for ever when it cannot
	// flush), the rest of the shutdown takes at most ShutdownMargin.
	stopWork()
	deadline := time.Now().Add(ShutdownMargin)
	if !waitWithin(&g2, ShutdownMargin) {
		log.Error().Dur("waited", ShutdownMargin).Msg("background parts did not stop in time (a store write is stuck?); closing the store anyway")
	}
	dt.closeSpool(log)
	if cerr := st.closeOnce(log, max(time.Until(deadline), 100*time.Millisecond)); cerr != nil {
		err = errors.Join(err, cerr)
	}
	log.Info().Msg("stopped")
	return err
}

// ShutdownMargin bounds what shutdown does after the HTTP drain
// (Options.ShutdownTimeout): stopping the background parts and closing the
// store.
const ShutdownMargin = 5 * time.Second

// waitWithin waits for wg at most d; false when it timed out.
func waitWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// backend is the store the daemon runs on: the storage contract plus what
// the daemon itself needs (the degraded-mode gauge, a bounded close).
type backend interface {
	rswebhooks.Store
	// Condition is the degraded-mode condition, or "" (see
	// rswebhooks.StoreConditions).
	Condition() string
	// CloseWithin is Close bounded by d.
	CloseWithin(d time.Duration) error
	// Retention is how long retained data is kept.
	Retention() time.Duration
}

var (
	_ backend = (*store.DB)(nil)
	_ backend = (*pgstore.DB)(nil)
)

// openStore opens the store: PostgreSQL when Options.PostgresURL is set,
// else Badger in Options.DataDir.
//
// This is where every part gets its store, so a layer in front of the
// shared store (for example a local spool that keeps events while
// PostgreSQL is unreachable) wraps what this returns.
func openStore(ctx context.Context, o Options, reg prometheus.Registerer) (backend, error) {
	if o.PostgresURL != "" {
		return openPostgres(ctx, o)
	}
	return openBadger(o, reg)
}

// openPostgres opens the shared store; the daemon does not start without
// it (a mistaken URL must not look like an empty cluster).
func openPostgres(ctx context.Context, o Options) (backend, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := pgstore.Open(octx, pgstore.Options{
		URL:       o.PostgresURL,
		Logger:    o.Logger,
		Retention: o.Retention,
	})
	if err != nil {
		return nil, fmt.Errorf("open store (--postgres-url): %w", err)
	}
	o.Logger.Info().Str("postgres", pgstore.RedactURL(o.PostgresURL)).Msg("store: PostgreSQL (shared by every node)")
	return db, nil
}

// openBadger opens the store; when it cannot be opened, the daemon serves
// with an unopened store (degraded) unless Options.StoreRequired.
func openBadger(o Options, reg prometheus.Registerer) (backend, error) {
	so := store.Options{
		Dir:           o.DataDir,
		Registerer:    reg,
		Logger:        o.Logger,
		Retention:     o.Retention,
		SyncWrites:    o.SyncWrites,
		MinFree:       o.MinFreeSpace,
		CheckInterval: o.StoreCheckInterval,
	}
	db, err := store.Open(so)
	if err == nil {
		return db, nil
	}
	if o.StoreRequired {
		return nil, fmt.Errorf("open store (--store-required): %w", err)
	}
	if errors.Is(err, store.ErrForeignDir) {
		// A mistaken --data-dir, not a fault: writing there could harm
		// someone else's files, so refuse to start rather than wait.
		return nil, fmt.Errorf("open store: %w", err)
	}
	o.Logger.Error().Err(err).Str("dir", o.DataDir).
		Msg("THE STORE CANNOT BE OPENED: serving the report server without webhooks (events are counted lost, the admin API refuses changes) until it opens; run \"rswebhooks store check\" and \"rswebhooks store repair\", or start with --store-required to refuse to start instead")
	return store.Unopened(so, err)
}

// storeCheck reports the store's degraded mode, or proves it writable.
func storeCheck(db backend) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := db.Unavailable(); err != nil {
			return err
		}
		return db.Ping(ctx)
	}
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// listen binds the proxy listener, applies limit to the TCP listener, and
// adds TLS when a certificate is given.
func listen(addr, cert, key string, limit func(net.Listener) net.Listener) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ln = limit(ln)
	if cert == "" {
		return ln, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}), nil
}

// zerologWriter turns net/http's error log lines into zerolog warnings.
type zerologWriter struct{ log zerolog.Logger }

func (z zerologWriter) Write(p []byte) (int, error) {
	z.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
