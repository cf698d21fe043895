package reconcile

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// EventStore is where a Gate passes events on (the store, or the execution
// correlator in front of it).
type EventStore interface {
	AppendEvent(ctx context.Context, e *rswebhooks.Event) error
}

// Gate sits between the proxy's detector and the store: give it to
// detect.Options.Store and to Options.Gate. Every event passes through,
// except a proxy event for a change the reconciler has already emitted (its
// read landed between the report server's write and the proxy's append);
// that one is dropped, so each change is notified once. It is safe for
// concurrent use.
//
// On one node (NewGate) the reconciler's emissions are kept in memory and
// a lock orders each append against them. In a cluster (NewSharedGate) the
// reconciler runs on one node while every node's proxy appends, so the
// emissions are kept in the shared store instead, and each claimable proxy
// event costs two store round trips: see NewSharedGate.
type Gate struct {
	next EventStore
	tol  time.Duration
	log  zerolog.Logger
	now  func() time.Time

	// shared, when set, keeps the emissions in the store for every node's
	// Gate (cluster mode); nil keeps them in memory (below).
	shared Shared

	// appendMu is held for reading across each claimable append and for
	// writing while the reconciler records emissions, so an append is
	// either stored before the reconciler looks for claims or checked
	// against its emissions — never neither.
	appendMu sync.RWMutex
	mu       sync.Mutex // guards emitted
	emitted  []emission
}

// emission is a change the reconciler decided to notify.
type emission struct {
	res, typ string
	id       string    // the reconciler's event id (cluster mode: the decision's key)
	read     time.Time // local time of the list read that showed it
	at       time.Time // local time of the decision (for pruning)
	used     bool
}

// NewGate returns a Gate passing events to next, for one node. tol is the
// skew tolerance (Options.Tolerance; zero means DefaultTolerance).
func NewGate(next EventStore, tol time.Duration, log zerolog.Logger) (*Gate, error) {
	if next == nil {
		return nil, errors.New("reconcile: NewGate: next store is required")
	}
	if tol < 0 {
		return nil, errors.New("reconcile: NewGate: tolerance must not be negative")
	}
	if tol == 0 {
		tol = DefaultTolerance
	}
	return &Gate{next: next, tol: tol, log: log.With().Str("component", "reconcile").Logger(), now: time.Now}, nil
}

// resKey names a resource by id: "reports:<id>", lower case.
func resKey(filter, id string) string {
	return filter + ":" + url.PathEscape(strings.ToLower(id))
}

// nameKey names a resource by name, for a Created event without id.
func nameKey(filter, name string) string {
	return filter + "#" + strings.ToLower(name)
}

// claimKey is the key a proxy event claims, or "" when it claims nothing.
func claimKey(e *rswebhooks.Event) string {
	if e == nil || e.Type == rswebhooks.EventExecuted || e.Filter == "" || rswebhooks.EventSource(e) != rswebhooks.SourceProxy {
		return ""
	}
	switch {
	case e.ResourceID != "":
		return resKey(e.Filter, e.ResourceID)
	case e.Type == rswebhooks.EventCreated && e.ResourceName != "":
		return nameKey(e.Filter, e.ResourceName)
	}
	return ""
}

// AppendEvent passes e on, unless it is the proxy's copy of a change the
// reconciler already emitted.
func (g *Gate) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	key := claimKey(e)
	if key == "" {
		return g.next.AppendEvent(ctx, e)
	}
	if g.shared != nil {
		return g.appendShared(ctx, key, e)
	}
	g.appendMu.RLock()
	defer g.appendMu.RUnlock()
	if g.takeEmission(key, e) {
		g.log.Debug().Str("event_id", e.ID).Str("resource", key).Str("event", e.Type).
			Msg("change already notified by the reconciler; proxy event dropped")
		return nil
	}
	return g.next.AppendEvent(ctx, e)
}

func (g *Gate) takeEmission(key string, e *rswebhooks.Event) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.emitted {
		em := &g.emitted[i]
		if !em.used && em.res == key && em.typ == e.Type && !e.Time.After(em.read.Add(g.tol)) {
			em.used = true
			return true
		}
	}
	return false
}

// record adds emissions (pruning old ones) before the reconciler looks
// for claims once more. On one node no claimable append is in flight
// meanwhile; in a cluster each is written to the shared store.
func (g *Gate) record(ctx context.Context, ems []emission) error {
	if g.shared != nil {
		return g.recordShared(ctx, ems)
	}
	g.appendMu.Lock()
	defer g.appendMu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	limit := g.now().Add(-g.life())
	kept := g.emitted[:0]
	for _, em := range g.emitted {
		if em.at.After(limit) {
			kept = append(kept, em)
		}
	}
	g.emitted = append(kept, ems...)
	return nil
}

// life is how long an emission can still absorb the proxy's late copy: a
// copy is absorbed only when its time is within the tolerance of the read,
// and a minute covers its way from the detector to the gate.
func (g *Gate) life() time.Duration { return time.Minute + 2*g.tol }

// withdraw removes an emission again (its change was claimed after all, or
// its event could not be stored).
func (g *Gate) withdraw(ctx context.Context, w emission) {
	if g.shared != nil {
		g.withdrawShared(ctx, w)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.emitted {
		em := &g.emitted[i]
		if em.res == w.res && em.typ == w.typ && em.read.Equal(w.read) {
			em.used = true
		}
	}
}
