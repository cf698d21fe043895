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
	"golang.org/x/sync/errgroup"

	"github.com/rswebhooks/rswebhooks/access"
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/buildinfo"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/detect"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reconcile"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/watch"
	"github.com/rswebhooks/rswebhooks/webui"
)

// Run starts the daemon and blocks until ctx is cancelled (then shuts down
// gracefully) or a part fails. Listeners are bound before anything is
// reported ready, so Options.Ready sees real addresses (":0" works).
func Run(ctx context.Context, o Options) error {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	log := o.Logger
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

	db, err := openStore(o, reg)
	if err != nil {
		return err
	}
	storeClosed := false
	defer func() {
		if !storeClosed {
			if err := db.CloseWithin(ShutdownMargin); err != nil {
				log.Error().Err(err).Msg("closing the store")
			}
		}
	}()
	registerStoreMetrics(reg, db)
	buildinfo.Register(reg, o.Build)

	// The service-account client gets its own pool with the proxy's TLS trust.
	rsTransport, err := proxyTransport(o)
	if err != nil {
		return fmt.Errorf("upstream transport: %w", err)
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
		return fmt.Errorf("report server client: %w", err)
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
		return fmt.Errorf("identity: %w", err)
	}
	admins := &access.Admins{
		Resolver:    ids,
		Meta:        db,
		Remember:    !rs.Configured(),
		RememberFor: o.RememberAdminsFor,
		Logger:      log.With().Str("component", "access").Logger(),
	}

	deny := o.DenyTargets
	if o.DenyPrivate {
		deny = append(append([]netip.Prefix(nil), deny...), deliver.PrivateRanges()...)
	}
	client := deliver.NewHTTPClient(deliver.ClientOptions{Allow: o.AllowTargets, Deny: deny, Timeout: o.AttemptTimeout})
	var perms access.Permissions
	if rs.Configured() {
		perms = access.ReportServer{C: rs}
	}
	policy := deliver.Policy{}
	if o.RetryDelays != nil {
		policy = deliver.DefaultPolicy()
		policy.Delays = o.RetryDelays
	}
	engine, err := deliver.New(deliver.Options{
		Store:                 db,
		Access:                access.New(access.Options{Perms: perms, KnownAdmin: admins.Known, TTL: o.AccessCacheTTL, Metrics: access.NewMetrics(reg)}),
		Client:                client,
		Policy:                policy,
		MaxConcurrency:        o.MaxConcurrency,
		PerWebhookConcurrency: o.PerWebhookConcurrency,
		PerOwnerConcurrency:   o.PerOwnerConcurrency,
		AttemptTimeout:        o.AttemptTimeout,
		Logger:                log,
		Registerer:            reg,
		Version:               o.Version,
	})
	if err != nil {
		return fmt.Errorf("delivery engine: %w", err)
	}

	rules := detect.BuiltinRules()
	if o.RulesFile != "" {
		extra, err := detect.LoadRules(o.RulesFile)
		if err != nil {
			return fmt.Errorf("--rules: %w", err)
		}
		rules = detect.MergeRules(rules, extra)
	}
	// With a service account, the execution watcher notices scheduled runs;
	// the correlator between detect and the store keeps an execute call seen
	// by the proxy and the record the watcher later finds to one event.
	watchMetrics := watch.NewMetrics(reg)
	var events detect.EventStore = db
	var watcher *watch.Watcher
	if rs.Configured() && o.WatchInterval > 0 {
		corr, err := watch.NewCorrelator(ctx, watch.CorrelatorOptions{Store: db, Logger: log})
		if err != nil {
			return fmt.Errorf("execution watcher: %w", err)
		}
		events = corr
		watcher, err = watch.New(watch.Options{
			Client:     rs,
			Store:      db,
			Correlator: corr,
			APIVersion: strings.ToLower(o.APIVersion),
			Interval:   o.WatchInterval,
			Retention:  o.Retention,
			OnEvent:    engine.Wake,
			Logger:     log,
			Metrics:    watchMetrics,
		})
		if err != nil {
			return fmt.Errorf("execution watcher: %w", err)
		}
	}

	// With a service account, the reconciler reads the five collections and
	// emits what the proxy did not see; the gate in front of the store
	// drops the proxy's late copy of a change it already emitted.
	reconcileMetrics := reconcile.NewMetrics(reg)
	var reconciler *reconcile.Reconciler
	if rs.Configured() && o.ReconcileInterval > 0 {
		gate, err := reconcile.NewGate(events, 0, log)
		if err != nil {
			return fmt.Errorf("reconciler: %w", err)
		}
		events = gate
		reconciler, err = reconcile.New(reconcile.Options{
			Client:     rs,
			Store:      db,
			Gate:       gate,
			APIVersion: strings.ToLower(o.APIVersion),
			Interval:   o.ReconcileInterval,
			OnEvent:    engine.Wake,
			Logger:     log,
			Metrics:    reconcileMetrics,
		})
		if err != nil {
			return fmt.Errorf("reconciler: %w", err)
		}
	}

	det, err := detect.New(detect.Options{
		Rules:      rules,
		Prefix:     strings.TrimSuffix(upstream.Path, "/"),
		Store:      events,
		Actors:     ids,
		Logger:     log,
		Registerer: reg,
		OnEvent:    engine.Wake,
		BodyLimit:  o.CaptureLimit,
	})
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}

	adminAPI, err := admin.New(admin.Options{
		Store:      db,
		Identity:   identities{ids, admins},
		Deliveries: engineDeliveries{engine},
		Verifier: &admin.EchoVerifier{
			HTTP:      client,
			Policy:    deliver.NewAddressPolicy(o.AllowTargets, deny),
			UserAgent: "rswebhooks/" + o.Version,
		},
		Logger:             log,
		ShowResponses:      o.ShowReceiverResponses,
		UserRatePerMinute:  max(o.UserRatePerMinute, 0),
		MaxWebhooksPerUser: o.MaxWebhooksPerUser,
	})
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}

	tr, err := proxyTransport(o)
	if err != nil {
		return fmt.Errorf("upstream transport: %w", err)
	}
	var routes []proxy.Route
	if o.RegistrationsOnProxy {
		// The registrations API and its companions; the rest of the
		// report server's /api/webhooks (if any) still goes upstream.
		for _, p := range []string{"registrations", "filters", "deliveries", "login", "me", "unreadable", "openapi.json"} {
			routes = append(routes, proxy.Route{Prefix: "/api/webhooks/" + p, Handler: adminAPI})
		}
	}
	px, err := proxy.New(proxy.Options{
		Upstream:       upstream,
		Transport:      tr,
		HostHeader:     o.UpstreamHostHeader,
		TrustedProxies: o.TrustedProxies,
		Tap:            taps{ids, det},
		CaptureLimit:   o.CaptureLimit,
		CaptureBudget:  o.CaptureBudget,
		Routes:         routes,
		Logger:         log.With().Str("component", "proxy").Logger(),
		Registerer:     reg,
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}

	bg := &background{log: log}
	hl := &health{now: time.Now, version: o.Version, checks: []check{
		{name: "upstream", fn: px.CheckUpstream},
		// The store never fails readiness: the proxy is the report
		// server's front door, and it serves without the store (degraded).
		{name: "store", fn: storeCheck(db), degrades: true},
		{name: "background", fn: bg.check},
	}}
	if rs.Configured() {
		// The service account logs in afresh on failure; until it can,
		// access checks wait (only for webhooks that need one).
		hl.checks = append(hl.checks, check{name: "service_account", soft: true, fn: func(ctx context.Context) error {
			if _, err := rs.IsAdmin(ctx, o.ServiceUser); err != nil && o.ServiceUser != "" {
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
	proxySrv := &http.Server{Handler: px, ErrorLog: errLog.stdLogger()}
	adminSrv := &http.Server{Handler: mux, ErrorLog: errLog.stdLogger()}
	proxyLn, err := listen(o.Listen, o.TLSCert, o.TLSKey, func(ln net.Listener) net.Listener { return o.ProxyLimits.Apply(proxySrv, ln) })
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	adminLn, err := net.Listen("tcp", o.AdminListen)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("--admin-listen: %w", err)
	}
	adminLn = o.AdminLimits.Apply(adminSrv, adminLn)

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
	serve("proxy", proxySrv, proxyLn)
	serve("admin", adminSrv, adminLn)
	// Background parts never take the proxy down with them (traffic
	// first): a part that stops is logged and reported by /readyz.
	bg.start(&g2, workCtx, "store-gc", db.Run)
	bg.start(&g2, workCtx, "delivery", engine.Run)
	if watcher != nil {
		bg.start(&g2, workCtx, "watcher", watcher.Run)
	}
	if reconciler != nil {
		bg.start(&g2, workCtx, "reconciler", reconciler.Run)
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info().Msg("shutting down: draining in-flight requests")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
		defer cancel()
		perr := proxySrv.Shutdown(sctx)
		aerr := adminSrv.Shutdown(sctx)
		stopWork()
		return errors.Join(ignoreCanceled(perr), ignoreCanceled(aerr))
	})

	log.Info().Str("listen", proxyLn.Addr().String()).Str("admin_listen", adminLn.Addr().String()).
		Str("upstream", admin.RedactURL(o.Upstream)).Str("version", o.Version).Msg("rswebhooks serving")
	if o.Ready != nil {
		o.Ready(proxyLn.Addr().String(), adminLn.Addr().String())
	}
	err = g.Wait()
	// Whatever the store is doing (Badger can block for ever when it cannot
	// flush), the rest of the shutdown takes at most ShutdownMargin.
	stopWork()
	deadline := time.Now().Add(ShutdownMargin)
	if !waitWithin(&g2, ShutdownMargin) {
		log.Error().Dur("waited", ShutdownMargin).Msg("background parts did not stop in time (a store write is stuck?); closing the store anyway")
	}
	storeClosed = true
	if cerr := db.CloseWithin(max(time.Until(deadline), 100*time.Millisecond)); cerr != nil {
		log.Error().Err(cerr).Msg("the store could not be closed cleanly; committed events are replayed from its log at the next start")
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

// openStore opens the store; when it cannot be opened, the daemon serves
// with an unopened store (degraded) unless Options.StoreRequired.
func openStore(o Options, reg prometheus.Registerer) (*store.DB, error) {
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
func storeCheck(db *store.DB) func(ctx context.Context) error {
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
