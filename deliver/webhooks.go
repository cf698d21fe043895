package deliver

import (
	"context"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// webhookTTL bounds how long a cached webhook is served without a store
// read even when WebhooksVersion has not moved (a safety net: every write
// through the store bumps the version at once).
const webhookTTL = time.Second

// webhookCache keeps the webhooks that fan-out and attempts read, so an
// attempt does not decode its webhook from Badger every time.
//
// Staleness bound: entries are tagged with Store.WebhooksVersion read
// before the store read that filled them, and dropped as soon as the
// version moves, so a pause, delete or update that has returned is seen by
// every attempt (and fan-out) that starts afterwards, exactly as without
// the cache; attempts already in flight finish, as before. Independently,
// no entry is served for longer than webhookTTL. Cached webhooks are
// shared: callers must not modify them.
type webhookCache struct {
	store Store
	now   func() time.Time

	mu      sync.Mutex
	version uint64
	byID    map[string]cachedWebhook
	list    []*rswebhooks.Webhook
	listAt  time.Time
	hasList bool
}

type cachedWebhook struct {
	w  *rswebhooks.Webhook
	at time.Time
}

func newWebhookCache(s Store, now func() time.Time) *webhookCache {
	return &webhookCache{store: s, now: now, byID: map[string]cachedWebhook{}}
}

// sync drops everything when the version moved; it returns the version the
// caller must tag a fill with. c.mu is held.
func (c *webhookCache) sync() uint64 {
	v := c.store.WebhooksVersion()
	if v != c.version {
		c.version = v
		clear(c.byID)
		c.list, c.hasList = nil, false
	}
	return v
}

func (c *webhookCache) fresh(at time.Time) bool {
	age := c.now().Sub(at)
	return age >= 0 && age < webhookTTL
}

// get returns webhook id (an error wrapping rswebhooks.ErrNotFound if unknown).
func (c *webhookCache) get(ctx context.Context, id string) (*rswebhooks.Webhook, error) {
	c.mu.Lock()
	v := c.sync()
	e, ok := c.byID[id]
	c.mu.Unlock()
	if ok && c.fresh(e.at) {
		return e.w, nil
	}
	at := c.now()
	w, err := c.store.GetWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.version == v {
		c.byID[id] = cachedWebhook{w: w, at: at}
	}
	c.mu.Unlock()
	return w, nil
}

// all returns every webhook, oldest first.
func (c *webhookCache) all(ctx context.Context) ([]*rswebhooks.Webhook, error) {
	c.mu.Lock()
	v := c.sync()
	list, ok := c.list, c.hasList && c.fresh(c.listAt)
	c.mu.Unlock()
	if ok {
		return list, nil
	}
	at := c.now()
	list, err := c.store.ListWebhooks(ctx, "")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.version == v {
		c.list, c.listAt, c.hasList = list, at, true
		for _, w := range list {
			c.byID[w.ID] = cachedWebhook{w: w, at: at}
		}
	}
	c.mu.Unlock()
	return list, nil
}
