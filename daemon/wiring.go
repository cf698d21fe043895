package daemon

import (
	"context"
	"log"
	"net/http"
	"net/url"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/identity"
	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/store"
)

// taps offers each exchange to several taps in order (identity learns
// tokens at /Token, detect turns changes into events).
type taps []proxy.Tap

func (t taps) Wants(method, path string) bool {
	for _, x := range t {
		if x.Wants(method, path) {
			return true
		}
	}
	return false
}

// Fields implements proxy.FieldTap: the union of the fields the wanting
// taps name, or nil (whole bodies) when one of them is a plain Tap.
func (t taps) Fields(method, path string) []string {
	var fields []string
	for _, x := range t {
		if !x.Wants(method, path) {
			continue
		}
		ft, ok := x.(proxy.FieldTap)
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

var _ proxy.FieldTap = taps(nil)

func (t taps) Observe(ctx context.Context, ex *proxy.Exchange) {
	for _, x := range t {
		x.Observe(ctx, ex)
	}
}

// adminSet wraps the identity resolver and remembers the users it has
// verified as report-server administrators (persisted in the store), so
// that without a service account their webhooks are still notified. With a
// service account the permission checker asks the report server instead
// (cached briefly), so a demoted administrator stops being one there.
type adminSet struct {
	*identity.Resolver
	meta interface {
		GetMeta(ctx context.Context, key string) ([]byte, error)
		PutMeta(ctx context.Context, key string, v []byte) error
	}
	persist bool // no service account: remember verified administrators
	log     zerolog.Logger

	mu  sync.Mutex
	ids map[string]bool // user id -> administrator, as last verified
}

func newAdminSet(r *identity.Resolver, db *store.DB, persist bool, log zerolog.Logger) *adminSet {
	return &adminSet{Resolver: r, meta: db, persist: persist, log: log, ids: map[string]bool{}}
}

func adminKey(userID string) string { return "admin/" + userID }

func (a *adminSet) Resolve(ctx context.Context, bearer string) (*rswebhooks.Identity, error) {
	id, err := a.Resolver.Resolve(ctx, bearer)
	if err != nil || id == nil || id.Operator || !a.persist {
		return id, err
	}
	a.mu.Lock()
	was, seen := a.ids[id.ID]
	a.ids[id.ID] = id.Admin
	a.mu.Unlock()
	if !seen || was != id.Admin {
		v := []byte("0")
		if id.Admin {
			v = []byte("1")
		}
		if err := a.meta.PutMeta(ctx, adminKey(id.ID), v); err != nil {
			a.log.Warn().Err(err).Str("user_id", id.ID).Msg("remembering whether a user is an administrator")
		}
	}
	return id, nil
}

// known reports whether the owner is the operator or, without a service
// account, a user last verified as an administrator.
func (a *adminSet) known(u rswebhooks.User) bool {
	if u.ID == identity.OperatorID {
		return true
	}
	if !a.persist {
		return false
	}
	a.mu.Lock()
	v, ok := a.ids[u.ID]
	a.mu.Unlock()
	if ok {
		return v
	}
	b, err := a.meta.GetMeta(context.Background(), adminKey(u.ID))
	v = err == nil && string(b) == "1"
	a.mu.Lock()
	a.ids[u.ID] = v
	a.mu.Unlock()
	return v
}

// engineDeliveries adapts the delivery engine to the admin API.
type engineDeliveries struct{ e *deliver.Engine }

func (d engineDeliveries) Redeliver(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	return d.e.Redeliver(ctx, id)
}

func (d engineDeliveries) Ping(ctx context.Context, w *rswebhooks.Webhook) (*rswebhooks.Delivery, error) {
	return d.e.Ping(ctx, w.ID, w.User)
}

// permissionsOf reads the report server's permission model for the delivery
// side's access checks, with the service account.
type permissionsOf struct{ c *reportserver.Client }

var _ deliver.Permissions = permissionsOf{}

func (p permissionsOf) IsAdmin(ctx context.Context, userName string) (bool, error) {
	return p.c.IsAdmin(ctx, userName)
}

// EffectivePermissions merges the user's own permissions with those of each
// of its roles.
func (p permissionsOf) EffectivePermissions(ctx context.Context, userID string, category int) ([]deliver.Permission, error) {
	holders := []string{userID}
	roles, err := p.c.UserRoles(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		holders = append(holders, r.ID)
	}
	var out []deliver.Permission
	for _, h := range holders {
		ps, err := p.c.Permissions(ctx, h, category)
		if err != nil {
			return nil, err
		}
		for _, x := range ps {
			out = append(out, deliver.Permission{Access: x.Access, ResourceID: x.ResourceID, Scope: x.Scope})
		}
	}
	return out, nil
}

func (p permissionsOf) ReportCategory(ctx context.Context, reportID string) (string, error) {
	var r struct {
		CategoryID string `json:"CategoryId"`
	}
	if err := p.c.GetJSON(ctx, "api/reportserver/v2/reports/"+url.PathEscape(reportID), &r); err != nil {
		return "", err
	}
	return r.CategoryID, nil
}

// registerStoreMetrics exports the store's on-disk size and degraded mode.
func registerStoreMetrics(reg prometheus.Registerer, db *store.DB) {
	registerDegradedMetric(reg, db)
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
func registerDegradedMetric(reg prometheus.Registerer, db *store.DB) {
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
