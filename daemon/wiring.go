package daemon

import (
	"context"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/access"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/tap"
)

// taps offers each exchange to several taps in order (identity learns
// tokens at /Token, detect turns changes into events).
type taps []tap.Tap

func (t taps) Wants(method, path string) bool {
	for _, x := range t {
		if x.Wants(method, path) {
			return true
		}
	}
	return false
}

// Fields implements tap.FieldTap: the union of the fields the wanting
// taps name, or nil (whole bodies) when one of them is a plain Tap.
func (t taps) Fields(method, path string) []string {
	var fields []string
	for _, x := range t {
		if !x.Wants(method, path) {
			continue
		}
		ft, ok := x.(tap.FieldTap)
		if !ok {
			return nil
		}
		fields = append(fields, ft.Fields(method, path)...)
	}
	if fields == nil {
		fields = []string{}
	}
	return fields
}

var _ tap.FieldTap = taps(nil)

func (t taps) Observe(ctx context.Context, ex *tap.Exchange) {
	for _, x := range t {
		x.Observe(ctx, ex)
	}
}

// identities is the identity resolver (login, token learning) with
// access.Admins in front of Resolve, which remembers administrators.
type identities struct {
	*identity.Resolver
	admins *access.Admins
}

func (i identities) Resolve(ctx context.Context, bearer string) (*rswebhooks.Identity, error) {
	return i.admins.Resolve(ctx, bearer)
}

// engineDeliveries adapts the delivery engine to the admin API.
type engineDeliveries struct{ e *deliver.Engine }

func (d engineDeliveries) Redeliver(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	return d.e.Redeliver(ctx, id)
}

// Wake tells the engine that replayed deliveries wait.
func (d engineDeliveries) Wake() { d.e.Wake() }

func (d engineDeliveries) Ping(ctx context.Context, w *rswebhooks.Webhook) (*rswebhooks.Delivery, error) {
	return d.e.Ping(ctx, w.ID, w.User)
}

// registerStoreMetrics exports the store's degraded mode and, for Badger,
// its on-disk size.
func registerStoreMetrics(reg prometheus.Registerer, st backend) {
	registerDegradedMetric(reg, st)
	db, ok := st.(*store.DB)
	if !ok {
		return
	}
	for _, part := range []string{"lsm", "vlog"} {
		part := part
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rswebhooks_store_size_bytes",
			Help:        "Size of the Badger store on disk, by part (lsm, vlog).",
			ConstLabels: prometheus.Labels{"part": part},
		}, func() float64 {
			lsm, vlog := db.Size()
			if part == "lsm" {
				return float64(lsm)
			}
			return float64(vlog)
		}))
	}
}

// registerDegradedMetric exports the store's degraded-mode condition: 1 for
// the current one, 0 for the others (all pre-created).
func registerDegradedMetric(reg prometheus.Registerer, db backend) {
	for _, c := range rswebhooks.StoreConditions() {
		c := c
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rswebhooks_store_degraded",
			Help:        "1 while the store refuses writes for this reason (disk_full, unwritable, unopened); the proxy keeps serving and events are counted lost.",
			ConstLabels: prometheus.Labels{"reason": c},
		}, func() float64 {
			if db.Condition() == c {
				return 1
			}
			return 0
		}))
	}
}

// proxyTransport is the upstream transport with the configured TLS trust.
func proxyTransport(o Options) (*http.Transport, error) {
	return proxy.NewTransport(proxy.TransportOptions{
		CAFile:             o.UpstreamCAFile,
		InsecureSkipVerify: o.UpstreamInsecureSkipVerify,
	})
}

func (z zerologWriter) stdLogger() *log.Logger { return log.New(z, "", 0) }

// linkRef serves and makes document links once the proxy listener's address
// is known (set); until then, and when links are off, it answers 404.
type linkRef struct{ p atomic.Pointer[doclink.Links] }

func (r *linkRef) set(l *doclink.Links) { r.p.Store(l) }

func (r *linkRef) URL(webhookID string, ev *rswebhooks.Event, docID string, now time.Time) string {
	if l := r.p.Load(); l != nil {
		return l.URL(webhookID, ev, docID, now)
	}
	return ""
}

func (r *linkRef) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if l := r.p.Load(); l != nil {
		l.ServeHTTP(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"Message":"Not found."}`))
}

// publicURL is --public-url, or the proxy listener's own address: its IP
// when bound to one, else this machine's name, with the bound port.
func publicURL(o Options, addr net.Addr) (*url.URL, error) {
	if o.PublicURL != "" {
		return url.Parse(o.PublicURL)
	}
	scheme := "http"
	if o.TLSCert != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "localhost"
		}
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}, nil
}
