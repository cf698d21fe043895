package access

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/identity"
)

// DefaultRememberAdmins is how long a verified administrator is remembered
// without a service account (Admins.RememberFor).
const DefaultRememberAdmins = 24 * time.Hour

// Resolver establishes the caller of the admin API (identity.Resolver).
type Resolver interface {
	Resolve(ctx context.Context, bearer string) (*rswebhooks.Identity, error)
}

// MetaStore keeps small values with an expiry (implemented by *store.DB).
type MetaStore interface {
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error
}

// Admins wraps the identity resolver and, without a service account,
// remembers for RememberFor which users it verified as report-server
// administrators (persisted in the store), so that their webhooks are
// notified although nobody can read their permissions. Once the memory
// expires the user counts as unknown again until they call the admin API
// (which verifies them afresh): a demoted or deleted administrator stops
// receiving what only administrators see within RememberFor. With a
// service account nothing is remembered; the Checker asks the report
// server (cached briefly).
type Admins struct {
	// Resolver is the token → user step. Required.
	Resolver Resolver
	// Meta persists the remembered flags. Required when Remember is set.
	Meta MetaStore
	// Remember is true without a service account.
	Remember bool
	// RememberFor bounds how long a verification counts (default
	// DefaultRememberAdmins).
	RememberFor time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives warnings.
	Logger zerolog.Logger

	mu  sync.Mutex
	ids map[string]remembered // user id → last verification
}

type remembered struct {
	admin bool
	until time.Time
}

var _ Resolver = (*Admins)(nil)

func adminKey(userID string) string { return "admin/" + userID }

func (a *Admins) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *Admins) life() time.Duration {
	if a.RememberFor <= 0 {
		return DefaultRememberAdmins
	}
	return a.RememberFor
}

// Resolve implements Resolver and remembers whether the caller is an
// administrator.
func (a *Admins) Resolve(ctx context.Context, bearer string) (*rswebhooks.Identity, error) {
	id, err := a.Resolver.Resolve(ctx, bearer)
	if err != nil || id == nil || id.Operator || !a.Remember {
		return id, err
	}
	now := a.now()
	until := now.Add(a.life())
	a.mu.Lock()
	if a.ids == nil {
		a.ids = map[string]remembered{}
	}
	was, seen := a.ids[id.ID]
	a.ids[id.ID] = remembered{admin: id.Admin, until: until}
	a.mu.Unlock()
	// Persist when new, changed, or half its life is gone.
	if !seen || was.admin != id.Admin || was.until.Sub(now) < a.life()/2 {
		v := []byte("0")
		if id.Admin {
			v = []byte("1")
		}
		if err := a.Meta.PutMetaUntil(ctx, adminKey(id.ID), v, until); err != nil {
			a.Logger.Warn().Err(err).Str("user_id", id.ID).Msg("remembering whether a user is an administrator")
		}
	}
	return id, nil
}

// Known reports whether the owner is the operator or, without a service
// account, a user verified as an administrator within RememberFor.
func (a *Admins) Known(u rswebhooks.User) bool {
	if u.ID == identity.OperatorID {
		return true
	}
	if !a.Remember {
		return false
	}
	now := a.now()
	a.mu.Lock()
	v, ok := a.ids[u.ID]
	a.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.admin
	}
	// The store forgets a verification when it expires (its TTL); its
	// answer is kept here briefly.
	b, err := a.Meta.GetMeta(context.Background(), adminKey(u.ID))
	admin := err == nil && string(b) == "1"
	a.mu.Lock()
	if a.ids == nil {
		a.ids = map[string]remembered{}
	}
	if cur, ok := a.ids[u.ID]; !ok || !now.Before(cur.until) {
		a.ids[u.ID] = remembered{admin: admin, until: now.Add(min(a.life()/10, time.Minute))}
	}
	a.mu.Unlock()
	return admin
}
