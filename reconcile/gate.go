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
type Gate struct {
	next EventStore
	tol  time.Duration
	log  zerolog.Logger
	now  func() time.Time

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
	read     time.Time // local time of the list read that showed it
	at       time.Time // local time of the decision (for pruning)
	used     bool
}

// NewGate returns a Gate passing events to next. tol is the skew tolerance
// (Options.Tolerance; zero means DefaultTolerance).
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

// record adds emissions and prunes old ones; while it runs no claimable
// append is in flight.
func (g *Gate) record(ems []emission) {
	g.appendMu.Lock()
	defer g.appendMu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	limit := g.now().Add(-time.Minute - 2*g.tol)
	kept := g.emitted[:0]
	for _, em := range g.emitted {
		if em.at.After(limit) {
			kept = append(kept, em)
		}
	}
	g.emitted = append(kept, ems...)
}

// withdraw removes emissions again (an event that could not be stored).
func (g *Gate) withdraw(res, typ string, read time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.emitted {
		em := &g.emitted[i]
		if em.res == res && em.typ == typ && em.read.Equal(read) {
			em.used = true
		}
	}
}
