package deliver

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
)

const fanOutBatch = 256

// fanOutLoop turns stored events into deliveries until ctx is done.
func (e *Engine) fanOutLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	woken := false // by Wake: events, or deliveries the caller wrote, wait
	for {
		start := e.opts.Now()
		n, full, err := e.fanOutOnce(ctx)
		if err != nil && ctx.Err() == nil {
			e.storeLog(err).Msg("fan out events")
		}
		switch {
		case n > 0 && e.nodeWaker != nil:
			// Only the webhooks the fan-out noted got deliveries the
			// store signalled to no one (direct writes signal DueSignal).
			e.wakeForFanned()
		case n > 0 || woken:
			e.wakeDispatcher()
		}
		woken = false
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
			woken = true
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if woken && n > 0 && !e.paceFanOut(ctx, timer, start) {
			return
		}
	}
}

// paceFanOut, with a store that paces its queue reads
// (rswebhooks.DueScanPacer: each call a round trip and a transaction with a
// fixed cost on a shared server), holds a fan-out woken after one that
// wrote something until the store's scan interval has passed since that
// one started, so the events appended meanwhile go in one batch, not one
// fan-out each (a stream of events spread over several nodes would
// otherwise be fanned out a couple at a time per node). An event waits at
// most that interval longer, and only in a stream. It reports false when
// ctx is done.
func (e *Engine) paceFanOut(ctx context.Context, timer *time.Timer, last time.Time) bool {
	if e.scanGap <= 0 {
		return true
	}
	rest := last.Add(e.scanGap).Sub(e.opts.Now())
	if rest <= 0 || rest > e.scanGap {
		return true
	}
	timer.Reset(rest)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// fanOutOnce fans out up to one batch of waiting events. It returns the
// number of events fanned out and whether the batch was full (more may wait).
// Fan-out only writes: access is decided per delivery before its first
// attempt, so no webhook's owner can hold up an event, and an event that
// cannot be written does not hold up the ones after it.
func (e *Engine) fanOutOnce(ctx context.Context) (n int, full bool, err error) {
	evs, err := e.unfanned(ctx, fanOutBatch)
	if err != nil || len(evs) == 0 {
		return 0, false, err
	}
	hooks, err := e.hooks.all(ctx)
	if err != nil {
		return 0, false, err
	}
	if e.nodeWaker != nil {
		// Its own dispatcher takes the deliveries, and wakes the other
		// nodes for those it cannot (nodes.go).
		return e.fanOutBatch(ctx, e.nodeWaker.FanOutEventsHere, evs, hooks)
	}
	if b, ok := e.opts.Store.(rswebhooks.FanOutBatcher); ok {
		return e.fanOutBatch(ctx, b.FanOutEvents, evs, hooks)
	}
	var firstErr error
	for _, ev := range evs {
		ds := e.deliveriesFor(ev, hooks)
		span := e.startFanOutSpan(ctx, ev, len(ds))
		err := e.opts.Store.FanOut(ctx, ev.ID, ds)
		endSpan(span, err)
		if err != nil {
			if ctx.Err() != nil {
				return n, false, ctx.Err()
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("fan out event %s to %d webhooks: %w", ev.ID, len(ds), err)
			}
			continue
		}
		n++
	}
	// With failing events in the batch a full batch would spin; wait instead.
	return n, len(evs) == fanOutBatch && firstErr == nil, firstErr
}

// fanOutBatch is fanOutOnce's loop for a store that fans out a batch of
// events in one call (rswebhooks.FanOutBatcher or NodeWaker: fanOut), with
// the same outcome.
func (e *Engine) fanOutBatch(ctx context.Context, fanOut func(context.Context, []rswebhooks.EventFanOut) []error,
	evs []*rswebhooks.Event, hooks []*rswebhooks.Webhook) (n int, full bool, err error) {
	fs := make([]rswebhooks.EventFanOut, len(evs))
	spans := make([]trace.Span, len(evs))
	for i, ev := range evs {
		fs[i] = rswebhooks.EventFanOut{EventID: ev.ID, Deliveries: e.deliveriesFor(ev, hooks)}
		spans[i] = e.startFanOutSpan(ctx, ev, len(fs[i].Deliveries))
	}
	errs := fanOut(ctx, fs)
	var firstErr error
	for i := range fs {
		var err error
		if errs != nil {
			err = errs[i]
		}
		endSpan(spans[i], err)
		if err == nil {
			n++
			if e.nodeWaker != nil {
				e.fanned.add(fs[i].Deliveries)
			}
		} else if firstErr == nil {
			firstErr = fmt.Errorf("fan out event %s to %d webhooks: %w", fs[i].EventID, len(fs[i].Deliveries), err)
		}
	}
	if ctx.Err() != nil {
		return n, false, ctx.Err()
	}
	return n, len(evs) == fanOutBatch && firstErr == nil, firstErr
}

// deliveriesFor returns the deliveries of one event: a pending one per
// webhook that is not paused and matches the event's filter, its access
// still to be decided. Ids derive from the event and webhook, so a fan-out
// repeated after a crash writes nothing twice.
func (e *Engine) deliveriesFor(ev *rswebhooks.Event, hooks []*rswebhooks.Webhook) []*rswebhooks.Delivery {
	now := e.opts.Now().UTC()
	var ds []*rswebhooks.Delivery
	for _, w := range hooks {
		if w.IsPaused || !w.Matches(ev.Filter) {
			continue
		}
		ds = append(ds, &rswebhooks.Delivery{
			ID: rswebhooks.DeliveryID(ev, w.ID), WebhookID: w.ID, EventID: ev.ID, Event: *ev,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now,
			AccessPending: true,
		})
	}
	return ds
}
