package deliver

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

const fanOutBatch = 256

// fanOutLoop turns stored events into deliveries until ctx is done.
func (e *Engine) fanOutLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		n, full, err := e.fanOutOnce(ctx)
		if err != nil && ctx.Err() == nil {
			e.storeLog(err).Msg("fan out events")
		}
		if n > 0 {
			e.wakeDispatcher()
		}
		if full && err == nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		timer.Reset(e.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-e.fanWake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// fanOutOnce fans out up to one batch of waiting events. It returns the
// number of events fanned out and whether the batch was full (more may wait).
// An event whose access check fails transiently stays waiting.
func (e *Engine) fanOutOnce(ctx context.Context) (n int, full bool, err error) {
	evs, err := e.opts.Store.UnfannedEvents(ctx, fanOutBatch)
	if err != nil || len(evs) == 0 {
		return 0, false, err
	}
	hooks, err := e.hooks.all(ctx)
	if err != nil {
		return 0, false, err
	}
	stuck := 0
	for _, ev := range evs {
		ds, skipped, err := e.deliveriesFor(ctx, ev, hooks)
		if err != nil {
			stuck++
			e.log.Warn().Err(err).Str("event_id", ev.ID).Msg("access check failed; event will be fanned out later")
			continue
		}
		if err := e.opts.Store.FanOut(ctx, ev.ID, ds); err != nil {
			return n, false, err
		}
		e.m.Deliveries.WithLabelValues(OutcomeSkipped).Add(float64(skipped))
		n++
	}
	// With stuck events at the head a full batch would spin; wait instead.
	return n, len(evs) == fanOutBatch && stuck == 0, nil
}

// deliveriesFor returns the deliveries of one event: a pending one per
// webhook that is not paused, matches the event's filter and whose owner may
// read the resource; a skipped one (reason access_unknown) where access
// cannot be decided. A transient access error aborts the whole event.
func (e *Engine) deliveriesFor(ctx context.Context, ev *rswebhooks.Event, hooks []*rswebhooks.Webhook) ([]*rswebhooks.Delivery, int, error) {
	now := e.opts.Now().UTC()
	var ds []*rswebhooks.Delivery
	skipped := 0
	for _, w := range hooks {
		if w.IsPaused || !w.Matches(ev.Filter) {
			continue
		}
		ok, err := e.opts.Access.CanRead(ctx, w.User, ev)
		d := &rswebhooks.Delivery{
			ID: rswebhooks.NewID(now), WebhookID: w.ID, EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now,
		}
		switch {
		case errors.Is(err, ErrAccessUnknown):
			d.State, d.Reason = rswebhooks.DeliverySkipped, ReasonAccessUnknown
			skipped++
			w := w
			e.warnOnce("access/"+w.ID, func() *zerolog.Event {
				return e.log.Warn().Str("webhook_id", w.ID).Str("owner", w.User.Name)
			}, "cannot check the owner's access without a service account; notifications skipped (access_unknown)")
		case err != nil:
			return nil, 0, err
		case !ok:
			continue
		}
		ds = append(ds, d)
	}
	return ds, skipped, nil
}
