package access

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// permsFn is a func-field fake of the report server's permission model.
type permsFn struct {
	admins   map[string]bool
	perms    map[string][]Permission // userID/category
	cats     map[string]string       // report → category
	missing  map[string]bool // user ids deleted or disabled
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
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	perms := &permsFn{perms: map[string][]Permission{"u-carol/3": {{Access: 1, Scope: scopeAnyScheduledTask}}}}
	pc := New(Options{Perms: perms, TTL: time.Minute, Now: clock.Now})
	carol := rswebhooks.User{ID: "u-carol", Name: "carol"}
	ev := &rswebhooks.Event{Filter: "tasks", ResourceID: "t1"}
	for i := 0; i < 3; i++ {
		if ok, err := pc.CanRead(context.Background(), carol, ev); !ok || err != nil {
			t.Fatalf("CanRead = %v, %v", ok, err)
		}
	}
	if perms.calls != 2 {
		t.Fatalf("%d report-server calls for 3 checks, want 2 (cached)", perms.calls)
	}
	clock.Set(t0.Add(time.Minute))
	_, _ = pc.CanRead(context.Background(), carol, ev)
	if perms.calls != 4 {
		t.Fatalf("%d calls after the TTL, want 4", perms.calls)
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

