// Package access decides who may read what: whether a webhook's owner may
// see an event's resource under the report server's permission model
// (administrators see everything; roles' permissions merge with the
// user's), whether the owner still exists, and which users were verified as
// administrators (remembered without a service account, for a while). It
// caches the report server's answers briefly; the token → user step is
// package identity's, which Admins wraps.
package access

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// ErrAccessUnknown is returned when access cannot be decided (no service
// account configured): notifications are skipped, reason access_unknown.
var ErrAccessUnknown = rswebhooks.ErrAccessUnknown

// ErrOwnerMissing is returned when the report server answers that the owner
// does not exist or is disabled.
var ErrOwnerMissing = rswebhooks.ErrOwnerMissing

// Report-server permission model (docs/report-server-api.md §3).
const (
	accessRead = 1

	categoryReport         = 0
	categoryCategory       = 1
	categoryDataConnection = 2
	categoryScheduledTask  = 3
	categoryDataAlert      = 4

	scopeAnyReport              = 0
	scopeSpecificReport         = 1
	scopeReportsInCategory      = 2
	scopeAnyCategory            = 3
	scopeSpecificCategory       = 4
	scopeAnyDataConnection      = 5
	scopeSpecificDataConnection = 6
	scopeAnyScheduledTask       = 7
	scopeSpecificScheduledTask  = 8
	scopeAnyDataAlert           = 9
	scopeSpecificDataAlert      = 10
)

// Permission is one entry of the report server's Permission model.
type Permission struct {
	Access     int    // flags: Read=1, Modify=2, Delete=4, Create=8
	ResourceID string // for Specific… and ReportsInCategory scopes
	Scope      int    // PermissionScope enum
}

// Permissions reads the report server's permission model with the service
// account (ReportServer adapts the reportserver client). Methods return an
// error wrapping ErrOwnerMissing when the user is unknown or disabled; any
// other error is transient.
type Permissions interface {
	// CheckUser returns nil when the user exists and is enabled.
	CheckUser(ctx context.Context, userID string) error
	// IsAdmin reports whether the user is a report-server administrator.
	IsAdmin(ctx context.Context, userName string) (bool, error)
	// EffectivePermissions returns the user's own permissions and those of
	// all its roles for one PermissionCategory (Report=0 … DataAlert=4).
	EffectivePermissions(ctx context.Context, userID string, category int) ([]Permission, error)
	// ReportCategory returns the category id of a report (for the
	// ReportsInCategory scope); an error when the report is unknown.
	ReportCategory(ctx context.Context, reportID string) (string, error)
}

// Options configures New.
type Options struct {
	// Perms reads permissions; nil means no service account: every
	// non-administrator gets ErrAccessUnknown.
	Perms Permissions
	// KnownAdmin, when set, says whether an owner is already known to be an
	// administrator (the operator, or an identity the admin API verified),
	// without asking the report server.
	KnownAdmin func(rswebhooks.User) bool
	// TTL is how long answers are cached (default DefaultTTL, 1 minute).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Metrics counts decisions (nil: not counted).
	Metrics *Metrics
}

// Checker decides access with the report server's permission
// model: administrators read everything; other users need a permission with
// the Read flag whose scope covers the resource (Any…, Specific… with the
// resource id, or ReportsInCategory with the report's category). Answers
// are cached for TTL; errors are not cached.
type Checker struct {
	opts  Options
	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	missing bool
	admin   bool
	perms   []Permission
	cat     string
	expires time.Time
}

// DefaultTTL is how long answers are cached unless Options.TTL says
// otherwise (--access-cache-ttl).
const DefaultTTL = time.Minute

// New returns a checker; see Options.
func New(opts Options) *Checker {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Checker{opts: opts, cache: map[string]cached{}}
}

func (c *Checker) get(key string) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cache[key]
	if !ok || !c.opts.Now().Before(v.expires) {
		delete(c.cache, key)
		return cached{}, false
	}
	return v, true
}

func (c *Checker) put(key string, v cached) {
	v.expires = c.opts.Now().Add(c.opts.TTL)
	c.mu.Lock()
	c.cache[key] = v
	c.mu.Unlock()
}

// CanRead answers the one question the delivery side asks per webhook: may
// owner read ev's resource? It returns true or false, or an error: one
// wrapping ErrAccessUnknown (no service account) or ErrOwnerMissing (owner
// deleted or disabled) is a decision; any other is transient.
func (c *Checker) CanRead(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error) {
	ok, err := c.canRead(ctx, owner, ev)
	c.opts.Metrics.count(ok, err)
	return ok, err
}

func (c *Checker) canRead(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error) {
	if c.opts.KnownAdmin != nil && c.opts.KnownAdmin(owner) {
		return true, nil
	}
	p := c.opts.Perms
	if p == nil {
		return false, ErrAccessUnknown
	}
	if err := c.checkUser(ctx, owner.ID); err != nil {
		return false, err
	}
	admin, err := c.isAdmin(ctx, owner.Name)
	if err != nil {
		return false, err
	}
	if admin {
		return true, nil
	}
	var category, anyScope, specificScope int
	switch ev.Filter {
	case rswebhooks.FilterReports:
		category, anyScope, specificScope = categoryReport, scopeAnyReport, scopeSpecificReport
	case rswebhooks.FilterCategories:
		category, anyScope, specificScope = categoryCategory, scopeAnyCategory, scopeSpecificCategory
	case rswebhooks.FilterConnections:
		category, anyScope, specificScope = categoryDataConnection, scopeAnyDataConnection, scopeSpecificDataConnection
	case rswebhooks.FilterTasks:
		category, anyScope, specificScope = categoryScheduledTask, scopeAnyScheduledTask, scopeSpecificScheduledTask
	case rswebhooks.FilterAlerts:
		category, anyScope, specificScope = categoryDataAlert, scopeAnyDataAlert, scopeSpecificDataAlert
	default:
		return false, nil
	}
	perms, err := c.permissions(ctx, owner.ID, category)
	if err != nil {
		return false, err
	}
	inCategory := false
	for _, pm := range perms {
		if pm.Access&accessRead == 0 {
			continue
		}
		switch {
		case pm.Scope == anyScope:
			return true, nil
		case pm.Scope == specificScope && ev.ResourceID != "" && pm.ResourceID == ev.ResourceID:
			return true, nil
		case category == categoryReport && pm.Scope == scopeReportsInCategory:
			inCategory = true
		}
	}
	if !inCategory || ev.ResourceID == "" {
		return false, nil
	}
	cat, err := c.reportCategory(ctx, ev.ResourceID)
	if err != nil {
		// A deleted report has no category any more; the scope cannot grant.
		return false, nil //nolint:nilerr // an unknown report is not readable by category
	}
	for _, pm := range perms {
		if pm.Access&accessRead != 0 && pm.Scope == scopeReportsInCategory && pm.ResourceID == cat {
			return true, nil
		}
	}
	return false, nil
}

// checkUser asks whether the owner exists and is enabled; both answers are
// cached, so an owner who comes back is seen within TTL.
func (c *Checker) checkUser(ctx context.Context, userID string) error {
	key := "user/" + userID
	if v, ok := c.get(key); ok {
		if v.missing {
			return fmt.Errorf("user %s: %w", userID, ErrOwnerMissing)
		}
		return nil
	}
	err := c.opts.Perms.CheckUser(ctx, userID)
	switch {
	case errors.Is(err, ErrOwnerMissing):
		c.put(key, cached{missing: true})
		return fmt.Errorf("user %s: %w", userID, err)
	case err != nil:
		return fmt.Errorf("user %s: %w", userID, err)
	}
	c.put(key, cached{})
	return nil
}

func (c *Checker) isAdmin(ctx context.Context, name string) (bool, error) {
	key := "admin/" + name
	if v, ok := c.get(key); ok {
		return v.admin, nil
	}
	admin, err := c.opts.Perms.IsAdmin(ctx, name)
	if err != nil {
		return false, fmt.Errorf("is %q an administrator: %w", name, err)
	}
	c.put(key, cached{admin: admin})
	return admin, nil
}

func (c *Checker) permissions(ctx context.Context, userID string, category int) ([]Permission, error) {
	key := fmt.Sprintf("perm/%s/%d", userID, category)
	if v, ok := c.get(key); ok {
		return v.perms, nil
	}
	perms, err := c.opts.Perms.EffectivePermissions(ctx, userID, category)
	if err != nil {
		return nil, fmt.Errorf("permissions of user %s in category %d: %w", userID, category, err)
	}
	c.put(key, cached{perms: perms})
	return perms, nil
}

func (c *Checker) reportCategory(ctx context.Context, reportID string) (string, error) {
	key := "cat/" + reportID
	if v, ok := c.get(key); ok {
		return v.cat, nil
	}
	cat, err := c.opts.Perms.ReportCategory(ctx, reportID)
	if err != nil {
		return "", fmt.Errorf("category of report %s: %w", reportID, err)
	}
	c.put(key, cached{cat: cat})
	return cat, nil
}
