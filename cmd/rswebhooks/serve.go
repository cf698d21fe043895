package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"go.yaml.in/yaml/v3"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/access"
	"github.com/rswebhooks/rswebhooks/daemon"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/limits"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reconcile"
	"github.com/rswebhooks/rswebhooks/watch"
)

func serveFlags() []cli.Flag {
	str := func(name, usage, value string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Usage: usage, Value: value, EnvVars: env(name)})
	}
	boolean := func(name, usage string) cli.Flag {
		return altsrc.NewBoolFlag(&cli.BoolFlag{Name: name, Usage: usage, EnvVars: env(name)})
	}
	dur := func(name, usage string, value time.Duration) cli.Flag {
		return altsrc.NewDurationFlag(&cli.DurationFlag{Name: name, Usage: usage, Value: value, EnvVars: env(name)})
	}
	list := func(name, usage string) cli.Flag {
		return altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env(name)})
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with any of these flags as keys; flags and environment win", EnvVars: env("config")},
		str("upstream", "the report server's base URL (required), e.g. http://127.0.0.1:83 or http://host/reporting", ""),
		str("listen", "proxy listener address", ":8080"),
		str("admin-listen", "admin API, /metrics, /healthz, /readyz listener address", ":8081"),
		str("data-dir", "Badger data directory", "./data"),
		str("postgres-url", "keep the store in PostgreSQL (15+), shared by every node of a cluster, instead of Badger: libpq URL or key=value (TLS via sslmode, password from the URL, PGPASSWORD or ~/.pgpass; never logged)", ""),
		str("node-name", "this node's name in logs (field node) and metrics (rswebhooks_node_info{node}); each node of a cluster needs its own (default: the hostname)", ""),
		str("admin-token", "operator token that acts as a system administrator on the admin API", ""),
		str("admin-token-file", "file holding the operator token (trailing newline ignored)", ""),
		str("service-user", "report-server account for access checks and the execution watcher", ""),
		str("service-password", "password of --service-user", ""),
		str("service-token", "report-server access token for the service account (instead of user and password)", ""),
		boolean("registrations-on-proxy", "also serve /api/webhooks/registrations on the proxy listener, shadowing the server's own"),
		str("rules", "YAML file of extra detection rules, added to (or overriding) the built-in table", ""),
		str("retry-delays", "comma-separated Go durations between delivery attempts (default: 5s,5m,30m,2h,5h,10h,14h ±20% jitter)", ""),
		dur("attempt-timeout", "timeout of one delivery attempt", deliver.DefaultAttemptTimeout),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-concurrency", Usage: "concurrent delivery attempts", Value: deliver.DefaultMaxConcurrency, EnvVars: env("max-concurrency")}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "per-webhook-concurrency", Usage: "concurrent delivery attempts to one webhook", Value: deliver.DefaultPerWebhookConcurrency, EnvVars: env("per-webhook-concurrency")}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "per-owner-concurrency", Usage: "concurrent delivery attempts to one owner's webhooks (0: three quarters of --max-concurrency)", Value: 0, EnvVars: env("per-owner-concurrency")}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-webhooks-per-user", Usage: "webhooks one user may register (administrators and the operator are exempt)", Value: 100, EnvVars: env("max-webhooks-per-user")}),
		dur("access-cache-ttl", "how long the report server's answers to access checks (permissions, administrator, owner exists) are cached", access.DefaultTTL),
		dur("remember-admins-for", "without a service account, how long a user verified as an administrator is remembered", 24*time.Hour),
		list("allow-target", "CIDR deliveries may reach even if denied by default (repeatable), e.g. 10.0.0.0/8"),
		list("deny-target", "CIDR deliveries may never reach (repeatable)"),
		boolean("otel", "export OpenTelemetry spans (proxy request, event append, fan-out, attempt) over OTLP/HTTP, configured by the standard OTEL_EXPORTER_OTLP_* variables; OTEL_TRACES_EXPORTER=otlp also turns it on (see docs/tracing.md)"),
		boolean("deny-private", "also refuse private receiver addresses: 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 (--allow-target still overrides)"),
		boolean("show-receiver-responses", "show every webhook owner the receiver's recorded answers (headers, body, error); by default only administrators see them"),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "user-rate-limit", Usage: "registrations, pings and redeliveries per minute per non-administrator user (-1: no limit)", Value: 30, EnvVars: env("user-rate-limit")}),
		dur("retention", "how long events, attempts and finished deliveries are kept", rswebhooks.DefaultRetention),
		dur("watch-interval", "execution watcher poll period (0 disables)", watch.DefaultInterval),
		dur("document-link-ttl", "how long the document links in Executed notifications stay valid", doclink.DefaultTTL),
		str("public-url", "the proxy listener's address as receivers reach it, the base of document links (default: http(s)://<listen host or hostname>:<port>)", ""),
		dur("reconcile-interval", "reconciler period: reads the five collections with the service account (an administrator) and notifies the changes the proxy did not see (0 disables)", reconcile.DefaultInterval),
		str("api-version", "report server API the watcher and the reconciler read: v2 or v3 (empty probes)", ""),
		str("tls-cert", "certificate file for TLS on the proxy listener", ""),
		str("tls-key", "key file for TLS on the proxy listener", ""),
		list("trusted-proxies", "CIDR of proxies in front of rswebhooks whose X-Forwarded-For, X-Real-IP and Forwarded are believed (repeatable); from other clients they are replaced or dropped"),
		str("upstream-host-header", "Host header sent upstream (default: the client's)", ""),
		str("upstream-ca-file", "PEM CA bundle trusted for the upstream's certificate", ""),
		boolean("upstream-insecure-skip-verify", "do not verify the upstream's TLS certificate (testing only)"),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "capture-limit", Usage: "bytes of a watched request or response body read for detection", Value: proxy.DefaultCaptureLimit, EnvVars: env("capture-limit")}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "soft-memory-limit", Usage: "Go runtime soft memory limit in bytes, applied when the GOMEMLIMIT environment variable is unset (GOMEMLIMIT wins); garbage is collected more often near it instead of the heap doubling (0: no limit)", Value: defaultSoftMemoryLimit, EnvVars: env("soft-memory-limit")}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "capture-budget", Usage: "bytes all captured bodies may hold at once; past it bodies stream through uncaptured", Value: proxy.DefaultCaptureBudget, EnvVars: env("capture-budget")}),
		boolean("sync-writes", "fsync every store commit (survives power loss; much slower)"),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-connections", Usage: "connections open at once on the proxy listener (0: half the open-file limit less 256, 64..16384)", EnvVars: env("max-connections")}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "admin-max-connections", Usage: "connections open at once on the admin listener", Value: 64, EnvVars: env("admin-max-connections")}),
		dur("read-header-timeout", "time a client may take to send a request's headers (both listeners)", limits.DefaultReadHeaderTimeout),
		dur("idle-timeout", "time an idle keep-alive connection stays open (both listeners)", limits.DefaultIdleTimeout),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "min-body-rate", Usage: "slowest a request body may arrive after --body-grace, in bytes per second (-1: no limit)", Value: limits.DefaultMinBodyRate, EnvVars: env("min-body-rate")}),
		dur("body-grace", "time a request body may take before --min-body-rate applies", limits.DefaultBodyGrace),
		dur("shutdown-timeout", "how long in-flight requests may drain on SIGTERM (closing the store then takes at most 5s more)", 15*time.Second),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "min-free-space", Usage: "bytes the data directory's filesystem must keep free, or the store refuses writes (degraded mode) while the proxy keeps serving; 0: 7 memtables (56 MiB), negative: no check", EnvVars: env("min-free-space")}),
		boolean("store-required", "refuse to start when the store cannot be opened, instead of serving the report server without webhooks (degraded) until it can"),
		dur("store-check-interval", "how often the store re-checks its data directory (free space, write probe) to enter or leave degraded mode", time.Second),
		str("log-level", "trace, debug, info, warn or error", "info"),
		str("log-format", "json or console", "json"),
	}
}

func serveCommand() *cli.Command {
	flags := serveFlags()
	return &cli.Command{
		Name:         "serve",
		Usage:        "run the proxy, the event detector, the delivery engine and the admin API",
		Flags:        flags,
		OnUsageError: usageError,
		Before: func(c *cli.Context) error {
			file := c.String("config")
			if file == "" {
				return nil
			}
			if err := checkConfigKeys(file, flags); err != nil {
				return cli.Exit(err, 2)
			}
			if err := altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))(c); err != nil {
				return cli.Exit(fmt.Errorf("--config %s: %w", file, err), 2)
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			logs, runLogs := serveLogs(c.App.ErrWriter)
			opts, err := serveOptions(c, logs)
			if err != nil {
				return cli.Exit(err, 2)
			}
			if err := opts.Validate(); err != nil {
				return cli.Exit(err, 2)
			}
			if _, err := applySoftMemoryLimit(c.Int64("soft-memory-limit"), os.LookupEnv, debug.SetMemoryLimit); err != nil {
				return cli.Exit(err, 2)
			}
			flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(c.Context))
			flushed := make(chan error, 1)
			go func() { flushed <- runLogs(flushCtx) }()
			stopped := make(chan struct{})
			go watchdog(c.Context, stopped, opts.ShutdownTimeout+daemon.ShutdownMargin+watchdogSlack, c.App.ErrWriter)
			err = daemon.Run(c.Context, opts)
			close(stopped)
			stopFlush()
			<-flushed // the last lines are out before main prints or exits
			return err
		},
	}
}

// defaultSoftMemoryLimit is --soft-memory-limit's default: the GOMEMLIMIT of
// the deploy examples, which bounds an 80,000-delivery burst (see the
// "Memory bound" section of docs/benchmarks.md).
const defaultSoftMemoryLimit = 192 << 20

// applySoftMemoryLimit sets the runtime's soft memory limit to limit bytes
// unless GOMEMLIMIT is set in the environment (the runtime has applied that
// one already) or limit is 0. It returns the limit it set (0: none).
func applySoftMemoryLimit(limit int64, lookupEnv func(string) (string, bool), set func(int64) int64) (int64, error) {
	if limit < 0 {
		return 0, fmt.Errorf("--soft-memory-limit must be 0 (none) or a positive number of bytes, got %d", limit)
	}
	if v, ok := lookupEnv("GOMEMLIMIT"); ok && v != "" || limit == 0 {
		return 0, nil
	}
	set(limit)
	return limit, nil
}

// watchdogSlack is the time past the daemon's own shutdown bound after
// which the watchdog ends the process.
const watchdogSlack = 3 * time.Second

// watchdog is the last resort of "shutdown always ends": once ctx is done
// (SIGTERM, a service stop), the process exits with status 1 after bound if
// the daemon has not returned by then.
func watchdog(ctx context.Context, stopped <-chan struct{}, bound time.Duration, stderr io.Writer) {
	select {
	case <-stopped:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		fmt.Fprintf(stderr, "rswebhooks: did not stop within %s of the stop request; exiting with status 1 (committed events are replayed from the store's log at the next start)\n", bound)
		os.Exit(1)
	}
}

// serveOptions fills daemon.Options from the parsed flags.
func serveOptions(c *cli.Context, logs io.Writer) (daemon.Options, error) {
	logger, err := newLogger(c.String("log-level"), c.String("log-format"), logs)
	if err != nil {
		return daemon.Options{}, err
	}
	o := daemon.Options{
		Upstream:                   c.String("upstream"),
		Listen:                     c.String("listen"),
		AdminListen:                c.String("admin-listen"),
		DataDir:                    c.String("data-dir"),
		PostgresURL:                c.String("postgres-url"),
		NodeName:                   c.String("node-name"),
		AdminToken:                 c.String("admin-token"),
		ServiceUser:                c.String("service-user"),
		ServicePassword:            c.String("service-password"),
		ServiceToken:               c.String("service-token"),
		RegistrationsOnProxy:       c.Bool("registrations-on-proxy"),
		RulesFile:                  c.String("rules"),
		AttemptTimeout:             c.Duration("attempt-timeout"),
		MaxConcurrency:             c.Int("max-concurrency"),
		PerWebhookConcurrency:      c.Int("per-webhook-concurrency"),
		PerOwnerConcurrency:        c.Int("per-owner-concurrency"),
		MaxWebhooksPerUser:         c.Int("max-webhooks-per-user"),
		RememberAdminsFor:          c.Duration("remember-admins-for"),
		AccessCacheTTL:             c.Duration("access-cache-ttl"),
		Retention:                  c.Duration("retention"),
		WatchInterval:              c.Duration("watch-interval"),
		DocumentLinkTTL:            c.Duration("document-link-ttl"),
		PublicURL:                  c.String("public-url"),
		ReconcileInterval:          c.Duration("reconcile-interval"),
		APIVersion:                 c.String("api-version"),
		TLSCert:                    c.String("tls-cert"),
		TLSKey:                     c.String("tls-key"),
		UpstreamHostHeader:         c.String("upstream-host-header"),
		UpstreamCAFile:             c.String("upstream-ca-file"),
		UpstreamInsecureSkipVerify: c.Bool("upstream-insecure-skip-verify"),
		CaptureLimit:               c.Int64("capture-limit"),
		CaptureBudget:              c.Int64("capture-budget"),
		SyncWrites:                 c.Bool("sync-writes"),
		ShutdownTimeout:            c.Duration("shutdown-timeout"),
		DenyPrivate:                c.Bool("deny-private"),
		OTel:                       c.Bool("otel"),
		ShowReceiverResponses:      c.Bool("show-receiver-responses"),
		UserRatePerMinute:          c.Int("user-rate-limit"),
		MinFreeSpace:               c.Int64("min-free-space"),
		StoreRequired:              c.Bool("store-required"),
		StoreCheckInterval:         c.Duration("store-check-interval"),
		Version:                    build().Version,
		Build:                      build(),
		Logger:                     logger,
	}
	lim := limits.Options{
		ReadHeaderTimeout: c.Duration("read-header-timeout"),
		IdleTimeout:       c.Duration("idle-timeout"),
		MinBodyRate:       c.Int64("min-body-rate"),
		BodyGrace:         c.Duration("body-grace"),
	}
	o.ProxyLimits, o.AdminLimits = lim, lim
	o.ProxyLimits.MaxConnections = c.Int("max-connections")
	o.AdminLimits.MaxConnections = c.Int("admin-max-connections")
	if f := c.String("admin-token-file"); f != "" {
		if o.AdminToken != "" {
			return o, fmt.Errorf("--admin-token-file: give either --admin-token or --admin-token-file, not both")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("--admin-token-file: %w", err)
		}
		o.AdminToken = strings.TrimRight(string(b), "\r\n")
		if o.AdminToken == "" {
			return o, fmt.Errorf("--admin-token-file: %s is empty", f)
		}
	}
	if o.RetryDelays, err = parseDelays(c.String("retry-delays")); err != nil {
		return o, err
	}
	if o.AllowTargets, err = parsePrefixes("allow-target", c.StringSlice("allow-target")); err != nil {
		return o, err
	}
	if o.DenyTargets, err = parsePrefixes("deny-target", c.StringSlice("deny-target")); err != nil {
		return o, err
	}
	if o.TrustedProxies, err = parsePrefixes("trusted-proxies", c.StringSlice("trusted-proxies")); err != nil {
		return o, err
	}
	return o, nil
}

// parseDelays reads --retry-delays: comma-separated Go durations.
func parseDelays(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []time.Duration
	for i, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("--retry-delays: entry %d %q is not a Go duration (e.g. 100ms, 5m, 2h)", i+1, part)
		}
		if d < 0 {
			return nil, fmt.Errorf("--retry-delays: entry %d %q must not be negative", i+1, part)
		}
		out = append(out, d)
	}
	return out, nil
}

// parsePrefixes reads repeatable CIDR flags; a bare address means a /32 or /128.
func parsePrefixes(flag string, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--%s: %q is not a CIDR (e.g. 127.0.0.0/8) or an IP address", flag, s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// checkConfigKeys refuses a --config file with a key that is not a serve
// flag (a typo would otherwise be ignored silently), naming the line.
func checkConfigKeys(file string, flags []cli.Flag) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("--config %s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("--config %s: line %d: want a mapping of flag names to values", file, root.Line)
	}
	known := map[string]bool{}
	for _, f := range flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if !known[k.Value] || k.Value == "config" {
			return fmt.Errorf("--config %s: line %d: %q is not a serve flag (see rswebhooks serve --help)", file, k.Line, k.Value)
		}
	}
	return nil
}
