// Package daemon assembles the rswebhooks daemon from its parts: the store,
// the proxy with its detect tap, the delivery engine, the execution watcher,
// the reconciler and the admin listener. It owns their lifecycle (start, readiness, graceful
// shutdown) and nothing else; each part does its job in its own package.
package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/buildinfo"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/limits"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/proxy"
)

// Options configure the daemon. The zero value of each optional field means
// the default documented on it. Validate is called by Run.
type Options struct {
	// Upstream is the report server's base URL (required). A path in it is
	// the virtual directory the report server is hosted under.
	Upstream string
	// Listen is the proxy listener address. Default ":8080".
	Listen string
	// AdminListen is the admin listener address. Default ":8081".
	AdminListen string
	// DataDir is the Badger directory. Default "./data".
	DataDir string
	// PostgresURL, when set, keeps the store in PostgreSQL (package
	// pgstore) instead of Badger, shared by every node of a cluster. A
	// libpq URL or key=value string; its password is never logged.
	PostgresURL string
	// NodeName names this node in every log line (field "node") and in the
	// metric rswebhooks_node_info{node}. In cluster mode each node needs its
	// own. Default: the hostname.
	NodeName string

	// AdminToken acts as a system administrator on the admin API. Empty
	// disables operator access.
	AdminToken string
	// ServiceUser/ServicePassword or ServiceToken: a report-server account
	// for access checks and the execution watcher. Optional.
	ServiceUser, ServicePassword, ServiceToken string

	// RegistrationsOnProxy also serves the registrations API on the proxy
	// listener, shadowing the report server's own.
	RegistrationsOnProxy bool
	// RulesFile holds extra detection rules (YAML). Optional.
	RulesFile string

	// RetryDelays are the waits between delivery attempts; nil means the
	// deliver package's default schedule.
	RetryDelays []time.Duration
	// AttemptTimeout bounds one delivery attempt. Default
	// deliver.DefaultAttemptTimeout (15s).
	AttemptTimeout time.Duration
	// MaxConcurrency bounds concurrent delivery attempts. Default
	// deliver.DefaultMaxConcurrency (16).
	MaxConcurrency int
	// PerWebhookConcurrency bounds concurrent attempts to one webhook, so a
	// slow receiver cannot take every worker. Default
	// deliver.DefaultPerWebhookConcurrency (4).
	PerWebhookConcurrency int
	// PerOwnerConcurrency bounds concurrent attempts to the webhooks of one
	// owner, so one owner's many slow receivers cannot take every worker.
	// Default three quarters of MaxConcurrency (at least 1).
	PerOwnerConcurrency int
	// MaxWebhooksPerUser is how many webhooks one user may register;
	// administrators and the operator are exempt. Default 100.
	MaxWebhooksPerUser int
	// RememberAdminsFor is how long, without a service account, a user
	// verified as an administrator is remembered (their webhooks get
	// everything meanwhile). Default 24h.
	RememberAdminsFor time.Duration
	// AccessCacheTTL is how long the report server's answers to access
	// checks are cached (a demoted administrator, a deleted or returning
	// owner, a changed permission are seen within it). Default 1 minute.
	AccessCacheTTL time.Duration
	// AllowTargets and DenyTargets adjust which receiver addresses
	// deliveries (and echo checks) may reach.
	AllowTargets, DenyTargets []netip.Prefix
	// DenyPrivate adds deliver.PrivateRanges (RFC 1918, 100.64/10, ULA) to
	// DenyTargets, for operators whose receivers are all on the internet.
	// AllowTargets still overrides it.
	DenyPrivate bool
	// ShowReceiverResponses shows every webhook owner the receiver answers
	// recorded with attempts; by default only administrators see them.
	ShowReceiverResponses bool
	// OTel turns on OpenTelemetry span export (proxy request, event
	// append, fan-out, attempt) over OTLP/HTTP, configured by the standard
	// OTEL_EXPORTER_OTLP_* variables; OTEL_TRACES_EXPORTER=otlp turns it on
	// too (see spanexport.Enabled). Off: no spans, no cost; attempts send a
	// traceparent either way.
	OTel bool
	// SpanExporter replaces the OTLP exporter when export is on (tests use
	// tracetest's in-memory exporter).
	SpanExporter sdktrace.SpanExporter
	// UserRatePerMinute bounds, per non-administrator user, registrations,
	// pings and redeliveries (each makes rswebhooks call out). Default 30;
	// negative disables the limit.
	UserRatePerMinute int

	// Retention is how long events, attempts and finished deliveries are
	// kept. Default 7 days.
	Retention time.Duration
	// WatchInterval is the execution watcher's poll period; 0 disables it.
	WatchInterval time.Duration
	// DocumentLinkTTL is how long a document link in a notification stays
	// valid. Default 24 h (doclink.DefaultTTL).
	DocumentLinkTTL time.Duration
	// PublicURL is the proxy listener's address as receivers reach it, the
	// base of document links (e.g. https://reports.example.com). Default:
	// http(s)://<listen host or this machine's name>:<listen port>.
	PublicURL string
	// ReconcileInterval is the reconciler's period (it reads the five
	// collections and emits the changes the proxy did not see); 0 disables
	// it. It needs a service account that is an administrator.
	ReconcileInterval time.Duration
	// APIVersion picks the report server API generation the watcher and the
	// reconciler read
	// ("v2", "v3"); empty probes.
	APIVersion string

	// TLSCert and TLSKey enable TLS on the proxy listener (both or neither).
	TLSCert, TLSKey string
	// UpstreamHostHeader overrides the Host sent upstream; empty passes the
	// client's Host through.
	UpstreamHostHeader string
	// TrustedProxies are the peers whose X-Forwarded-For, X-Real-IP and
	// Forwarded headers are passed upstream (appended to); from any other
	// client they are replaced or dropped. Default none.
	TrustedProxies []netip.Prefix
	// UpstreamCAFile adds a CA bundle for the upstream's certificate.
	UpstreamCAFile string
	// UpstreamInsecureSkipVerify turns off upstream certificate checks.
	UpstreamInsecureSkipVerify bool
	// CaptureLimit caps the bytes of a watched request or response body read
	// for detection. Default 1 MiB.
	CaptureLimit int64
	// CaptureBudget caps the bytes all captured bodies hold at once; past
	// it bodies stream through uncaptured. Default 64 MiB.
	CaptureBudget int64
	// SyncWrites fsyncs every store commit (power-loss durability) at a
	// large throughput cost. Process crashes are survived either way.
	SyncWrites bool
	// ShutdownTimeout bounds the drain of in-flight requests. Default 15s.
	// Stopping the background parts and closing the store then take at most
	// ShutdownMargin more, whatever the store is doing.
	ShutdownTimeout time.Duration
	// ProxyLimits and AdminLimits bound each listener: connections open at
	// once, header read time, idle keep-alive time and the minimum body
	// rate. Zero fields take the limits package's defaults; MaxConnections
	// defaults to limits.DefaultMaxConnections() (from the open-file limit)
	// on the proxy listener and 64 on the admin listener.
	ProxyLimits, AdminLimits limits.Options
	// MinFreeSpace is the free space (bytes) the data directory's
	// filesystem must keep; below it the store is degraded (disk_full). Zero
	// means the store's default (7 memtables, 56 MiB); negative disables the
	// check.
	MinFreeSpace int64
	// StoreRequired makes Run fail when the store cannot be opened, instead
	// of serving traffic with the store degraded (unopened).
	StoreRequired bool
	// StoreCheckInterval is the period of the store's degraded-mode monitor.
	// Zero means 1s.
	StoreCheckInterval time.Duration

	// Version is reported in User-Agent and logs. Default Build.Version.
	Version string
	// Build describes the running build, exported as rswebhooks_build_info
	// and reported by /readyz. The zero value means what the Go toolchain
	// recorded in the binary (buildinfo.Read) with Version as the version.
	Build buildinfo.Info
	// Logger receives every log line. Registerer receives every metric; nil
	// means a fresh registry with Go and process collectors.
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	// Ready, when set, is called with the bound addresses once both
	// listeners accept connections (tests and the demo use it).
	Ready func(proxyAddr, adminAddr string)
}

func (o *Options) setDefaults() {
	if o.Listen == "" {
		o.Listen = ":8080"
	}
	if o.AdminListen == "" {
		o.AdminListen = ":8081"
	}
	if o.DataDir == "" {
		o.DataDir = "./data"
	}
	if o.NodeName == "" {
		o.NodeName = DefaultNodeName()
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = deliver.DefaultAttemptTimeout
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = deliver.DefaultMaxConcurrency
	}
	if o.PerWebhookConcurrency == 0 {
		o.PerWebhookConcurrency = deliver.DefaultPerWebhookConcurrency
	}
	if o.PerOwnerConcurrency == 0 {
		o.PerOwnerConcurrency = deliver.DefaultPerOwner(o.MaxConcurrency)
	}
	if o.MaxWebhooksPerUser == 0 {
		o.MaxWebhooksPerUser = 100
	}
	if o.RememberAdminsFor == 0 {
		o.RememberAdminsFor = 24 * time.Hour
	}
	if o.Retention == 0 {
		o.Retention = rswebhooks.DefaultRetention
	}
	if o.DocumentLinkTTL == 0 {
		o.DocumentLinkTTL = doclink.DefaultTTL
	}
	if o.CaptureLimit == 0 {
		o.CaptureLimit = proxy.DefaultCaptureLimit
	}
	if o.CaptureBudget == 0 {
		o.CaptureBudget = proxy.DefaultCaptureBudget
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 15 * time.Second
	}
	if o.Build == (buildinfo.Info{}) {
		o.Build = buildinfo.Read(o.Version, "", "")
	}
	if o.Version == "" {
		o.Version = o.Build.Version
	}
	if o.UserRatePerMinute == 0 {
		o.UserRatePerMinute = 30
	}
	o.ProxyLimits = o.ProxyLimits.WithDefaults(limits.DefaultMaxConnections())
	o.AdminLimits = o.AdminLimits.WithDefaults(64)
}

// Validate checks the options once; each error names the flag and the rule.
func (o *Options) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: "+format, append([]any{flag}, args...)...))
	}
	if o.Upstream == "" {
		bad("upstream", "is required (the report server's base URL, e.g. http://127.0.0.1:83)")
	} else if u, err := url.Parse(o.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("upstream", "must be an absolute http or https URL, got %q", o.Upstream)
	} else if u.RawQuery != "" || u.Fragment != "" {
		bad("upstream", "must not carry a query or fragment, got %q", o.Upstream)
	}
	if o.PostgresURL != "" {
		if err := pgstore.CheckURL(o.PostgresURL); err != nil {
			bad("postgres-url", "%v", err)
		}
	}
	if o.NodeName != "" { // empty: the hostname (setDefaults)
		if err := validNodeName(o.NodeName); err != nil {
			bad("node-name", "%v", err)
		}
	}
	if o.AdminToken != "" && len(o.AdminToken) < 16 {
		bad("admin-token", "must be at least 16 characters (it acts as a system administrator), got %d", len(o.AdminToken))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		bad("tls-cert", "and --tls-key must be given together")
	}
	for i, d := range o.RetryDelays {
		if d < 0 {
			bad("retry-delays", "entry %d (%s) must not be negative", i+1, d)
		}
	}
	if o.AttemptTimeout < 0 {
		bad("attempt-timeout", "must be positive, got %s", o.AttemptTimeout)
	}
	if o.MaxConcurrency < 0 {
		bad("max-concurrency", "must be at least 1, got %d", o.MaxConcurrency)
	}
	if o.PerWebhookConcurrency < 0 {
		bad("per-webhook-concurrency", "must be at least 1, got %d", o.PerWebhookConcurrency)
	}
	if o.PerOwnerConcurrency < 0 {
		bad("per-owner-concurrency", "must be at least 1, got %d", o.PerOwnerConcurrency)
	}
	if o.MaxWebhooksPerUser < 0 {
		bad("max-webhooks-per-user", "must be at least 1, got %d", o.MaxWebhooksPerUser)
	}
	if o.AccessCacheTTL < 0 {
		bad("access-cache-ttl", "must be positive, got %s", o.AccessCacheTTL)
	}
	if o.RememberAdminsFor < 0 {
		bad("remember-admins-for", "must be positive, got %s", o.RememberAdminsFor)
	}
	if o.Retention < time.Hour && o.Retention != 0 {
		bad("retention", "must be at least 1h, got %s", o.Retention)
	}
	if o.DocumentLinkTTL < time.Minute && o.DocumentLinkTTL != 0 {
		bad("document-link-ttl", "must be at least 1m, got %s", o.DocumentLinkTTL)
	}
	if o.PublicURL != "" {
		if u, err := url.Parse(o.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("public-url", "must be an absolute http or https URL without query, got %q", o.PublicURL)
		}
	}
	if o.WatchInterval < 0 || (o.WatchInterval > 0 && o.WatchInterval < time.Second) {
		bad("watch-interval", "must be 0 (off) or at least 1s, got %s", o.WatchInterval)
	}
	if o.ReconcileInterval < 0 || (o.ReconcileInterval > 0 && o.ReconcileInterval < time.Second) {
		bad("reconcile-interval", "must be 0 (off) or at least 1s, got %s", o.ReconcileInterval)
	}
	switch strings.ToLower(o.APIVersion) {
	case "", "v2", "v3":
	default:
		bad("api-version", "must be v2 or v3 (or empty to probe), got %q", o.APIVersion)
	}
	if o.StoreCheckInterval < 0 {
		bad("store-check-interval", "must not be negative, got %s", o.StoreCheckInterval)
	}
	if o.CaptureLimit < 0 {
		bad("capture-limit", "must not be negative")
	}
	if o.CaptureBudget < 0 {
		bad("capture-budget", "must not be negative")
	}
	if o.ServiceToken != "" && (o.ServiceUser != "" || o.ServicePassword != "") {
		bad("service-token", "and --service-user/--service-password are alternatives; give one")
	}
	if (o.ServiceUser == "") != (o.ServicePassword == "") {
		bad("service-user", "and --service-password must be given together")
	}
	for _, l := range []struct {
		flag string
		lim  limits.Options
	}{{"max-connections", o.ProxyLimits}, {"admin-max-connections", o.AdminLimits}} {
		if err := l.lim.Validate(); err != nil {
			bad(l.flag, "%v", err)
		}
	}
	if o.Listen == o.AdminListen && o.Listen != "" && !strings.HasSuffix(o.Listen, ":0") {
		bad("admin-listen", "must differ from --listen (%s)", o.Listen)
	}
	return errors.Join(errs...)
}
