package deliver

import (
	"context"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// ReasonOrderedWait is the Reason of a pending delivery to an ordered
// webhook moved back in the queue while an earlier one waits for a retry.
const ReasonOrderedWait = "waiting for an earlier notification to this ordered webhook"

// ReasonThrottled is the Reason of a pending delivery moved back in the
// queue because its webhook's rate (MaxPerSecond, or a slowdown after 429
// or 503 answers) holds it and more were due than one read of the queue
// covers.
const ReasonThrottled = "waiting for the webhook's rate limit"

// maxHolds bounds the deliveries one refill moves back in the queue (behind
// the head of their ordered webhook, or after their webhook's rate); more
// wait for the next refill.
const maxHolds = 1024

// Ordered delivery
//
// A webhook with Ordered gets one attempt at a time, and only for the first
// of its pending deliveries in event order, read from the store's order
// index (store.OrderHead), so the order survives restarts. While that
// first one waits for a retry, the due ones behind it are moved in the
// queue to its retry time (store.HoldDelivery, Reason ReasonOrderedWait),
// so they neither spin the dispatcher nor hide other webhooks' due
// deliveries; when it ends (delivered, failed after its last retry,
// skipped) the next one is the head. A held delivery that became the head
// while its hold runs (the one before it was redelivered and answered
// early) is brought forward at once.

// hookSettings are the webhook fields the dispatcher reads.
type hookSettings struct {
	Ordered      bool
	MaxPerSecond float64
}

// settings returns the webhook's dispatch settings (zero when it cannot be
// read: its attempt finds out why).
func (e *Engine) settings(ctx context.Context, webhookID string) hookSettings {
	w, err := e.hooks.get(ctx, webhookID)
	if err != nil {
		return hookSettings{}
	}
	return hookSettings{Ordered: w.Ordered, MaxPerSecond: w.MaxPerSecond}
}

type orderHead struct {
	ref rswebhooks.DueRef
	ok  bool
}

func (e *Engine) orderHead(ctx context.Context, webhookID string) orderHead {
	r, ok, err := e.opts.Store.OrderHead(ctx, webhookID)
	if err != nil {
		if ctx.Err() == nil {
			e.storeLog(err).Str("webhook_id", webhookID).Msg("read the first pending delivery of an ordered webhook")
		}
		// Nothing of this webhook goes until the order can be read.
		return orderHead{ok: true}
	}
	return orderHead{ref: r, ok: ok}
}

type hold struct {
	id     string
	until  time.Time
	reason string
}

// holdOrdered moves waiting deliveries back in the queue and returns how
// many it moved.
func (e *Engine) holdOrdered(ctx context.Context, holds []hold) int {
	n := 0
	for _, h := range holds {
		moved, err := e.opts.Store.HoldDelivery(ctx, h.id, h.until, h.reason)
		if err != nil {
			if ctx.Err() == nil {
				e.storeLog(err).Str("delivery_id", h.id).Msg("move a waiting delivery back in the queue")
			}
			continue
		}
		if moved {
			n++
		}
	}
	return n
}

// releaseHeads brings forward the head of each ordered webhook whose
// attempt ended since the last refill, if it is held.
func (e *Engine) releaseHeads(ctx context.Context, st *dispatcher, now time.Time) {
	for id := range st.recheck {
		delete(st.recheck, id)
		h := e.orderHead(ctx, id)
		if !h.ok || h.ref.ID == "" || !h.ref.Due.After(now) {
			continue
		}
		moved, err := e.opts.Store.ReleaseDelivery(ctx, h.ref.ID, now, ReasonOrderedWait)
		if err != nil {
			if ctx.Err() == nil {
				e.storeLog(err).Str("delivery_id", h.ref.ID).Msg("release a held delivery")
			}
			continue
		}
		if moved {
			e.wakeDispatcher()
		}
	}
}

// recheckOrdered marks every ordered webhook for releaseHeads, so a head
// left held (by a restart at the wrong moment) does not wait for its hold.
func (e *Engine) recheckOrdered(ctx context.Context, st *dispatcher) {
	hooks, err := e.hooks.all(ctx)
	if err != nil {
		return
	}
	for _, w := range hooks {
		if w.Ordered && !w.IsPaused {
			st.recheck[w.ID] = true
		}
	}
	if len(st.recheck) > 0 {
		e.wakeDispatcher()
	}
}

// heldByPace notes that a webhook's rate held a delivery.
func (e *Engine) heldByPace(st *dispatcher, id string, wait time.Duration, reason string, now time.Time) {
	if wait > 0 && (st.paceWait == 0 || wait < st.paceWait) {
		st.paceWait = wait
	}
	if _, ok := st.throttled[id]; ok {
		return
	}
	if len(st.throttled) >= 100000 {
		clear(st.throttled)
	}
	st.throttled[id] = now
	if reason != "" {
		e.m.Throttled.WithLabelValues(reason).Inc()
	}
}
