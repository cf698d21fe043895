package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Shared is the part of the store the Gates of a cluster's nodes share:
// small values with an expiry, and the store's create-if-absent, which
// settles a race between two nodes one way for both.
type Shared interface {
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error
	PutMetaIfAbsent(ctx context.Context, key string, v []byte) (stored []byte, created bool, err error)
}

// Meta keys of a shared Gate. Each lives about Gate.life (a minute and two
// tolerances), so none is kept for good.
const (
	// metaEmitted + resource + "/" + type: the reconciler's last emission
	// for it (sharedEmission).
	metaEmitted = "reconcile/emitted/"
	// metaProxied + resource + "/" + type: the last proxy event for it on
	// its way to the store (sharedProxied).
	metaProxied = "reconcile/proxied/"
	// metaDecided + the reconciler's event id: which copy of a contested
	// change is notified: decidedProxy, or decidedReconcile + the id of
	// the proxy event dropped for it.
	metaDecided = "reconcile/decided/"

	decidedProxy     = "proxy"
	decidedReconcile = "reconcile:"
)

type sharedEmission struct {
	ID   string    `json:"id"`
	Read time.Time `json:"read"`
}

type sharedProxied struct {
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
}

// NewSharedGate returns a Gate for a node of a cluster: the reconciler's
// emissions are kept in shared (the store every node uses) instead of in
// memory, so a proxy event appended on any node is checked against the
// emissions of the reconciler, whichever node runs it.
//
// The order that keeps one notification per change, without a lock
// across nodes:
//
//   - A claimable proxy event first records itself (metaProxied, its id
//     and time), then reads the emission for its resource and type
//     (metaEmitted). None, or one read more than the tolerance before the
//     event: it is appended.
//   - The reconciler records each change it is about to emit (metaEmitted),
//     then looks for claims again: in the store, and in metaProxied for a
//     proxy event still on its way.
//
// The store orders the four operations, so either the proxy event sees the
// emission or the reconciler sees the proxy event (or both). When just one
// side sees the other, that side yields: an event that saw the emission is
// dropped, an emission that saw the event is withdrawn. When both see each
// other, both ask the store to create metaDecided for the emission, each
// with its own answer; the value created first holds for both. Each
// emission drops at most one proxy event.
//
// A claimable proxy event costs two store round trips (up to four when it meets
// an emission); a failed one is returned, so the spool in front keeps the
// event and forwards it later. What remains is stated in docs/cluster.md:
// node clocks must agree within the tolerance, and two proxy events of the
// same resource and type racing one reconcile share one metaProxied record.
func NewSharedGate(next EventStore, shared Shared, tol time.Duration, log zerolog.Logger) (*Gate, error) {
	if shared == nil {
		return nil, errors.New("reconcile: NewSharedGate: the shared store is required")
	}
	g, err := NewGate(next, tol, log)
	if err != nil {
		return nil, err
	}
	g.shared = shared
	return g, nil
}

func emittedKey(res, typ string) string { return metaEmitted + res + "/" + typ }
func proxiedKey(res, typ string) string { return metaProxied + res + "/" + typ }
func decidedKey(id string) string       { return metaDecided + id }

// appendShared is AppendEvent for a claimable proxy event in a cluster.
func (g *Gate) appendShared(ctx context.Context, key string, e *rswebhooks.Event) error {
	p, err := json.Marshal(sharedProxied{Event: e.ID, Time: e.Time.UTC()})
	if err != nil {
		return fmt.Errorf("reconcile: gate: encode %s: %w", e.ID, err)
	}
	if err := g.shared.PutMetaUntil(ctx, proxiedKey(key, e.Type), p, g.now().Add(g.life())); err != nil {
		return fmt.Errorf("reconcile: gate: announce proxy event %s: %w", e.ID, err)
	}
	raw, err := g.shared.GetMeta(ctx, emittedKey(key, e.Type))
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
		return g.next.AppendEvent(ctx, e)
	case err != nil:
		return fmt.Errorf("reconcile: gate: read the reconciler's emissions: %w", err)
	}
	var em sharedEmission
	if json.Unmarshal(raw, &em) != nil || em.ID == "" || e.Time.After(em.Read.Add(g.tol)) {
		return g.next.AppendEvent(ctx, e)
	}
	mine := decidedReconcile + e.ID
	v, err := g.settle(ctx, em.ID, mine)
	if err != nil {
		return err
	}
	if v != mine {
		// The reconciler yielded, or another proxy event of the same
		// change type was dropped for this emission: this one stands.
		return g.next.AppendEvent(ctx, e)
	}
	g.log.Debug().Str("event_id", e.ID).Str("resource", key).Str("event", e.Type).Str("reconciled_id", em.ID).
		Msg("change already notified by the reconciler; proxy event dropped")
	return nil
}

// settle asks the store to decide, once for every node, which copy of a
// contested change is notified, proposing want; it returns the decision.
func (g *Gate) settle(ctx context.Context, emissionID, want string) (string, error) {
	v, created, err := g.shared.PutMetaIfAbsent(ctx, decidedKey(emissionID), []byte(want))
	if err != nil {
		return "", fmt.Errorf("reconcile: gate: settle %s: %w", emissionID, err)
	}
	if created {
		// The decision matters while its emission's record lives: give it
		// twice that, so it is not kept for good. Should this fail, a few
		// bytes stay; the decision itself stands.
		if err := g.shared.PutMetaUntil(ctx, decidedKey(emissionID), v, g.now().Add(2*g.life())); err != nil {
			g.log.Warn().Err(err).Str("key", decidedKey(emissionID)).Msg("a reconcile decision could not be given its expiry; it stays in the store")
		}
	}
	return string(v), nil
}

// recordShared writes the emissions for every node's Gate.
func (g *Gate) recordShared(ctx context.Context, ems []emission) error {
	until := g.now().Add(g.life())
	for _, em := range ems {
		raw, err := json.Marshal(sharedEmission{ID: em.id, Read: em.read.UTC()})
		if err != nil {
			return fmt.Errorf("reconcile: encode emission %s: %w", em.id, err)
		}
		if err := g.shared.PutMetaUntil(ctx, emittedKey(em.res, em.typ), raw, until); err != nil {
			return fmt.Errorf("reconcile: record emission %s for the other nodes: %w", em.id, err)
		}
	}
	return nil
}

// withdrawShared removes an emission's record, if it is still this one.
func (g *Gate) withdrawShared(ctx context.Context, w emission) {
	key := emittedKey(w.res, w.typ)
	raw, err := g.shared.GetMeta(ctx, key)
	if err != nil {
		return // gone already, or unreadable: it expires on its own
	}
	var em sharedEmission
	if json.Unmarshal(raw, &em) == nil && em.ID != w.id {
		return
	}
	if err := g.shared.PutMetaUntil(ctx, key, nil, time.Time{}); err != nil {
		g.log.Warn().Err(err).Str("key", key).Msg("a withdrawn emission could not be removed; it expires on its own")
	}
}

// inFlight returns the last proxy event announced for a resource (claim
// key) and type by any node's Gate; ok is false when none is.
func (g *Gate) inFlight(ctx context.Context, key, typ string) (p sharedProxied, ok bool, err error) {
	raw, err := g.shared.GetMeta(ctx, proxiedKey(key, typ))
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
		return p, false, nil
	case err != nil:
		return p, false, fmt.Errorf("reconcile: read the proxy events on their way: %w", err)
	}
	if json.Unmarshal(raw, &p) != nil || p.Event == "" {
		return p, false, nil //nolint:nilerr // a cleared (empty) or unreadable record: no proxy event in flight
	}
	return p, true, nil
}
