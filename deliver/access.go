package deliver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// ErrAccessUnknown is returned by an Access that cannot decide (no service
// account): the delivery is skipped with reason access_unknown.
var ErrAccessUnknown = rswebhooks.ErrAccessUnknown

// Access decides whether a webhook's owner may see an event's resource
// (package access implements it). An error wrapping ErrAccessUnknown or
// rswebhooks.ErrOwnerMissing is a decision; any other is transient and only
// that delivery waits: it is asked again on the retry schedule.
type Access interface {
	CanRead(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error)
}

// AllowAll grants everything. Use it only where every webhook owner may see
// every resource (tests, single-tenant setups).
type AllowAll struct{}

// CanRead returns true.
func (AllowAll) CanRead(context.Context, rswebhooks.User, *rswebhooks.Event) (bool, error) {
	return true, nil
}

var _ Access = AllowAll{}

// decideAccess settles d's pending access decision just before its first
// send. It returns true when the attempt may go ahead (d.AccessPending is
// then cleared, stored with the attempt); otherwise it has recorded what
// happened: discarded (denied), skipped (access_unknown, owner_missing, or
// access_error once the retry window is spent) or rescheduled (transient
// error, recorded as an attempt without a request).
func (e *Engine) decideAccess(ctx context.Context, log *deliveryLog, d *rswebhooks.Delivery, w *rswebhooks.Webhook, now time.Time) bool {
	actx, cancel := context.WithTimeout(ctx, e.opts.AttemptTimeout)
	start := time.Now()
	ok, err := e.opts.Access.CanRead(actx, w.User, &d.Event)
	cancel()
	if ctx.Err() != nil {
		return false // shutting down: stays pending
	}
	switch {
	case err == nil && ok:
		d.AccessPending = false
		if w.OwnerMissing {
			e.setOwnerMissing(ctx, log, w, false)
		}
		return true
	case err == nil:
		// Denied: the owner may not even learn that the event happened.
		if err := e.opts.Store.DiscardDelivery(ctx, d.ID); err != nil {
			log.get().Error().Err(err).Msg("discard a delivery its owner may not see")
			return false
		}
		e.m.Denied.Inc()
		if e.onComplete != nil {
			e.onComplete(*d)
		}
		return false
	case errors.Is(err, ErrAccessUnknown):
		e.warnOnce("access/"+w.ID, func() *zerolog.Event {
			return log.get().Warn().Str("owner", w.User.Name)
		}, "cannot check the owner's access without a service account; notifications skipped (access_unknown)")
		e.finishWithout(ctx, log, d, rswebhooks.DeliverySkipped, ReasonAccessUnknown, OutcomeSkipped, now)
		return false
	case errors.Is(err, rswebhooks.ErrOwnerMissing):
		if !w.OwnerMissing {
			e.setOwnerMissing(ctx, log, w, true)
		}
		e.finishWithout(ctx, log, d, rswebhooks.DeliverySkipped, ReasonOwnerMissing, OutcomeSkipped, now)
		return false
	}
	// Transient: only this delivery waits, on the retry schedule.
	n := d.Attempts + 1
	a := &rswebhooks.Attempt{DeliveryID: d.ID, N: n, StartedUTC: now, Duration: time.Since(start),
		Error: fmt.Sprintf("access check (no request sent): %v", err)}
	d.Attempts, d.LastStatus, d.LastError, d.UpdatedUTC = n, 0, a.Error, e.opts.Now().UTC()
	outcome := ""
	if wait, more := e.policy.Next(n, Decision{Kind: Retry, Reason: a.Error}, e.opts.Rand()); more {
		d.State, d.Reason, d.NextUTC = rswebhooks.DeliveryPending, a.Error, now.Add(wait)
	} else {
		d.State, d.Reason = rswebhooks.DeliverySkipped, ReasonAccessError
		outcome = OutcomeSkipped
	}
	if err := e.opts.Store.Complete(ctx, d, a); err != nil {
		log.get().Error().Err(err).Msg("record access check failure; delivery stays pending")
		return false
	}
	log.get().Warn().Err(err).Int("attempt", n).Str("state", d.State).Time("next", d.NextUTC).Msg("access check failed")
	if outcome != "" {
		e.m.Deliveries.WithLabelValues(outcome).Inc()
	}
	if e.onComplete != nil {
		e.onComplete(*d)
	}
	return false
}

// setOwnerMissing records that the owner of w is gone (or back) on all of
// the owner's webhooks, logging the change once.
func (e *Engine) setOwnerMissing(ctx context.Context, log *deliveryLog, w *rswebhooks.Webhook, missing bool) {
	changed, err := e.opts.Store.SetOwnerMissing(ctx, w.User.ID, missing)
	if err != nil {
		log.get().Error().Err(err).Msg("record the owner's state")
		return
	}
	if len(changed) == 0 {
		return
	}
	ev := log.get().Warn()
	msg := "the report server does not know the webhook owner or has disabled it; notifications skipped (owner_missing) until the owner is back or an administrator reassigns or deletes the webhooks"
	if !missing {
		ev = log.get().Info()
		msg = "the webhook owner is back; notifications resume"
	}
	ev.Str("owner_id", w.User.ID).Str("owner", w.User.Name).Int("webhooks", len(changed)).Msg(msg)
}
