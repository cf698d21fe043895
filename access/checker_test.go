package access

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// permsFn is a func-field fake of the report server's permission model.
type permsFn struct {
	admins   map[string]bool
	perms    map[string][]Permission // userID/category
	cats     map[string]string       // report → category
	missing  map[string]bool         // user ids deleted or disabled
	calls    int
	failWith error
}

func (p *permsFn) CheckUser(_ context.Context, id string) error {
	p.calls++
	if p.failWith != nil {
		return p.failWith
	}
	if p.missing[id] {
		return ErrOwnerMissing
	}
	return nil
}

func (p *permsFn) IsAdmin(_ context.Context, name string) (bool, error) {
	p.calls++
	if p.failWith != nil {
		return false, p.failWith
	}
	return p.admins[name], nil
}

func (p *permsFn) EffectivePermissions(_ context.Context, userID string, category int) ([]Permission, error) {
	p.calls++
	return p.perms[userID+"/"+string(rune('0'+category))], nil
}

func (p *permsFn) ReportCategory(_ context.Context, reportID string) (string, error) {
	p.calls++
	c, ok := p.cats[reportID]
	if !ok {
		return "", errors.New("no such report")
	}
	return c, nil
}

func TestPermissionChecker(t *testing.T) {
	perms := &permsFn{
		admins: map[string]bool{"admin": true},
		perms: map[string][]Permission{
			"u-alice/0": {{Access: 1, Scope: scopeSpecificReport, ResourceID: "r1"}, {Access: 15, Scope: scopeReportsInCategory, ResourceID: "c9"}},
			"u-alice/3": {{Access: 2, Scope: scopeAnyScheduledTask}}, // Modify without Read
			"u-carol/3": {{Access: 1, Scope: scopeAnyScheduledTask}},
			"u-carol/4": {{Access: 1, Scope: scopeSpecificDataAlert, ResourceID: "a1"}},
		},
		cats: map[string]string{"r1": "c1", "r2": "c9", "r3": "c1"},
	}
	pc := New(Options{Perms: perms})
	alice := rswebhooks.User{ID: "u-alice", Name: "alice"}
	carol := rswebhooks.User{ID: "u-carol", Name: "carol"}
	bob := rswebhooks.User{ID: "u-bob", Name: "bob"}
	admin := rswebhooks.User{ID: "u-admin", Name: "admin"}
	ev := func(filter, id string) *rswebhooks.Event { return &rswebhooks.Event{Filter: filter, ResourceID: id} }
	for _, tc := range []struct {
		name string
		u    rswebhooks.User
		ev   *rswebhooks.Event
		want bool
	}{
		{"admin reads everything", admin, ev("connections", "x"), true},
		{"specific report", alice, ev("reports", "r1"), true},
		{"report in a readable category", alice, ev("reports", "r2"), true},
		{"report elsewhere", alice, ev("reports", "r3"), false},
		{"deleted report", alice, ev("reports", "gone"), false},
		{"modify without read", alice, ev("tasks", "t1"), false},
		{"any task", carol, ev("tasks", "t1"), true},
		{"specific alert", carol, ev("alerts", "a1"), true},
		{"other alert", carol, ev("alerts", "a2"), false},
		{"no permissions", bob, ev("reports", "r1"), false},
		{"unknown filter", carol, ev("other", "x"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pc.CanRead(context.Background(), tc.u, tc.ev)
			if err != nil || got != tc.want {
				t.Fatalf("CanRead = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestPermissionCheckerCacheAndErrors(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := testutil.NewClock(t0)
	perms := &permsFn{perms: map[string][]Permission{"u-carol/3": {{Access: 1, Scope: scopeAnyScheduledTask}}}}
	pc := New(Options{Perms: perms, TTL: time.Minute, Now: clock.Now})
	carol := rswebhooks.User{ID: "u-carol", Name: "carol"}
	ev := &rswebhooks.Event{Filter: "tasks", ResourceID: "t1"}
	for i := 0; i < 3; i++ {
		if ok, err := pc.CanRead(context.Background(), carol, ev); !ok || err != nil {
			t.Fatalf("CanRead = %v, %v", ok, err)
		}
	}
	if perms.calls != 3 {
		t.Fatalf("%d report-server calls for 3 checks, want 3 (user, admin, permissions; cached)", perms.calls)
	}
	clock.Set(t0.Add(time.Minute))
	_, _ = pc.CanRead(context.Background(), carol, ev)
	if perms.calls != 6 {
		t.Fatalf("%d calls after the TTL, want 6", perms.calls)
	}
	perms.failWith = errors.New("report server down")
	clock.Set(t0.Add(3 * time.Minute))
	if _, err := pc.CanRead(context.Background(), carol, ev); !errors.Is(err, perms.failWith) {
		t.Fatalf("CanRead with a failing server = %v", err)
	}
	// No service account: unknown, unless known to be an administrator.
	none := New(Options{KnownAdmin: func(u rswebhooks.User) bool { return u.ID == "operator" }})
	if _, err := none.CanRead(context.Background(), carol, ev); !errors.Is(err, ErrAccessUnknown) {
		t.Fatalf("without service account = %v, want ErrAccessUnknown", err)
	}
	if ok, err := none.CanRead(context.Background(), rswebhooks.User{ID: "operator"}, ev); !ok || err != nil {
		t.Fatalf("known admin = %v, %v", ok, err)
	}
}

// An owner the report server no longer knows (or has disabled) is a
// decision, cached like the others, and counted; the owner coming back is
// seen after the TTL.
func TestOwnerMissingIsADecision(t *testing.T) {
	t0 := time.Now()
	clock := testutil.NewClock(t0)
	perms := &permsFn{
		missing: map[string]bool{"u-alice": true},
		perms:   map[string][]Permission{"u-alice/0": {{Access: 1, Scope: scopeAnyReport}}},
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	pc := New(Options{Perms: perms, TTL: time.Minute, Now: clock.Now, Metrics: m})
	alice := rswebhooks.User{ID: "u-alice", Name: "alice"}
	ev := &rswebhooks.Event{Filter: "reports", ResourceID: "r1"}
	for range 2 {
		if ok, err := pc.CanRead(context.Background(), alice, ev); ok || !errors.Is(err, ErrOwnerMissing) {
			t.Fatalf("CanRead for a deleted owner = %v, %v; want ErrOwnerMissing", ok, err)
		}
	}
	if perms.calls != 1 {
		t.Fatalf("%d calls, want 1 (the answer is cached)", perms.calls)
	}
	perms.missing = nil
	clock.Set(t0.Add(time.Minute))
	if ok, err := pc.CanRead(context.Background(), alice, ev); !ok || err != nil {
		t.Fatalf("CanRead after the owner is back = %v, %v", ok, err)
	}
	perms.failWith = errors.New("503")
	clock.Set(t0.Add(3 * time.Minute))
	if _, err := pc.CanRead(context.Background(), alice, ev); err == nil || errors.Is(err, ErrOwnerMissing) {
		t.Fatalf("CanRead with a failing server = %v, want a transient error", err)
	}
	bob := rswebhooks.User{ID: "u-bob", Name: "bob"}
	perms.failWith = nil
	if ok, err := pc.CanRead(context.Background(), bob, ev); ok || err != nil {
		t.Fatalf("CanRead for bob = %v, %v; want denied", ok, err)
	}
	for result, want := range map[string]float64{ResultOwnerMissing: 2, ResultAllowed: 1, ResultError: 1, ResultDenied: 1, ResultUnknown: 0} {
		if got := promtest.ToFloat64(m.Checks.WithLabelValues(result)); got != want {
			t.Errorf("access_checks_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// metaMap is an in-memory MetaStore honouring expiries on the wall clock.
type metaMap struct {
	mu sync.Mutex
	m  map[string]metaVal
}

type metaVal struct {
	v     []byte
	until time.Time
}

func (s *metaMap) GetMeta(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok || !time.Now().Before(v.until) {
		return nil, errors.New("not found")
	}
	return v.v, nil
}

func (s *metaMap) PutMetaUntil(_ context.Context, k string, v []byte, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]metaVal{}
	}
	s.m[k] = metaVal{v, until}
	return nil
}

type resolverFn func(string) *rswebhooks.Identity

func (f resolverFn) Resolve(_ context.Context, bearer string) (*rswebhooks.Identity, error) {
	return f(bearer), nil
}

// Without a service account a verified administrator is remembered for
// RememberFor, then not any more until verified again; a demotion seen at
// the admin API counts at once.
func TestAdminsRememberedForAWhile(t *testing.T) {
	t0 := time.Now()
	clock := testutil.NewClock(t0)
	isAdmin := true
	res := resolverFn(func(string) *rswebhooks.Identity {
		return &rswebhooks.Identity{User: rswebhooks.User{ID: "u-ann", Name: "ann"}, Admin: isAdmin}
	})
	meta := &metaMap{}
	a := &Admins{Resolver: res, Meta: meta, Remember: true, RememberFor: time.Hour, Now: clock.Now}
	ann := rswebhooks.User{ID: "u-ann", Name: "ann"}
	if a.Known(ann) {
		t.Fatal("known before any verification")
	}
	if _, err := a.Resolve(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	if !a.Known(ann) {
		t.Fatal("verified administrator not known")
	}
	// A new process reads the store.
	b := &Admins{Resolver: res, Meta: meta, Remember: true, RememberFor: time.Hour, Now: clock.Now}
	if !b.Known(ann) {
		t.Fatal("remembered administrator not known after a restart")
	}
	clock.Set(t0.Add(time.Hour))
	meta.mu.Lock()
	meta.m[adminKey("u-ann")] = metaVal{[]byte("1"), time.Now().Add(-time.Second)} // the store's TTL elapsed
	meta.mu.Unlock()
	if a.Known(ann) {
		t.Fatal("administrator still known after RememberFor")
	}
	clock.Set(t0.Add(2 * time.Hour))
	if _, err := a.Resolve(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	if !a.Known(ann) {
		t.Fatal("re-verified administrator not known")
	}
	isAdmin = false
	if _, err := a.Resolve(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	if a.Known(ann) {
		t.Fatal("demoted administrator still known")
	}
	// With a service account nothing is remembered: the Checker asks.
	c := &Admins{Resolver: res, Meta: meta, Now: clock.Now}
	isAdmin = true
	_, _ = c.Resolve(context.Background(), "tok")
	if c.Known(ann) || !c.Known(rswebhooks.User{ID: "operator"}) {
		t.Fatal("with a service account only the operator is known")
	}
}
