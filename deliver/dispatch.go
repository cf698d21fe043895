package deliver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// flight is one attempt in progress.
type flight struct {
	webhookID string
	owner     string
	started   time.Time
	ordered   bool
}

// A refill reads at most headScan queue keys from the head of the due
// queue and then, while the buffer has room, at most sweepScan more from
// where the previous refill's sweep stopped, so one busy owner's backlog
// costs each refill a bounded read and still cannot hide another's due
// deliveries: a sweep passes over the whole due queue in steps, and the
// loop takes the next step at once while nothing read so far can start.
//
// Once a pass reaches the end of the due queue the sweep stays there and
// reads only the keys added behind it (new deliveries are due now, so they
// sort last), and a new pass from the head starts passEvery later. While
// every worker is busy or something read from the head can start, a step
// runs at most every sweepEvery (under load refills come with every fan-out
// and every few finished attempts, and a step then finds nothing the head
// did not). So a new delivery is found at its first refill, any other due
// one within about passEvery plus one pass however long the backlog in
// front of it, and a backlog of n due keys costs at most about n/passEvery
// key reads a second.
//
// A wake-up (new deliveries, from the fan-out or the store) that comes
// within sweepEvery of a full refill, with no attempt finished since, while
// that refill read a full head and the sweep follows the end of the queue,
// reads only the keys added behind the sweep and adds them to the buffer:
// whatever such a wake-up announces sorts after everything read (it is due
// now), and the head has not changed. Under a stream of events the queue's
// head is then read about once per sweepEvery, not once per event.
//
// A pass that could not buffer anything is not worth repeating: when every
// webhook the last pass met past the head is still at its per-webhook or
// per-owner limit (counting what the head scan just buffered), a new pass
// would pass over the same keys again, so it waits another passEvery —
// one busy owner's backlog then costs the head scan alone. A pass still
// starts at least every passAtLeast, for keys that were hidden from the last
// one (leased by another node, or unreadable then).
//
// With a store that reads the queue bounded per webhook
// (rswebhooks.DueByWebhookScanner) the head read lists each webhook's
// earliest due deliveries up to what it could buffer (hookBuffer less its
// leases on every node): a long backlog of one webhook costs a few rows,
// and unless the read hits headScan it covered every webhook, so no sweep
// follows; a wake-up then reads it whole again (the read is that cheap),
// and while nothing it listed can start the next one waits passEvery.
//
// In such a shared store a refused lease (another node took the slot, or a
// slot going on with its webhook took the delivery since the read) makes
// the webhook wait for the next read's count of leases (see finish): the
// deliveries buffered with it would be refused alike, a round trip each.
const (
	defaultHeadScan  = 256
	defaultSweepScan = 1024
	sweepEvery       = 20 * time.Millisecond
	passEvery        = 100 * time.Millisecond
	passAtLeast      = time.Second
	// maxPassHooks bounds the webhooks a pass remembers; past it the next
	// pass is never skipped.
	maxPassHooks = 4096
)

// spillAhead bounds how far past its wait a rate-held delivery is moved back
// in the queue.
const spillAhead = time.Second

// blockedPoll is how soon the dispatcher reads the queue again when due
// deliveries are held by their webhook's order and nothing is in flight.
const blockedPoll = 100 * time.Millisecond

// dispatcher is the state of the dispatch loop; only its goroutine touches it.
type dispatcher struct {
	inflight map[string]flight // by delivery id
	perHook  map[string]int
	perOwner map[string]int
	owners   map[string]string      // webhook id → owner id, as last read
	slow     map[string]bool        // webhooks whose last attempt took slowAfter or more
	slowNow  int                    // attempts in flight to slow webhooks, as of the last count
	buf      []rswebhooks.DueRef    // due, not in flight, in due order
	full     bool                   // the last read hit its limit: more may be due
	sweep    *rswebhooks.DueRef     // where the next refill's sweep resumes; nil: after the head
	atEnd    bool                   // the sweep reached the end of the due queue and follows what is added
	swept    time.Time              // when the last sweep step ran
	passed   time.Time              // when the sweep reached the end
	readEnd  *rswebhooks.DueRef     // the last key the last refill read (nil: none)
	headFull bool                   // the last full refill read headScan keys from the head
	fullAt   time.Time              // when the last full refill ran
	finished bool                   // an attempt finished since the last refill
	passFrom time.Time              // when the current pass started
	passHook map[string]bool        // webhooks met by the current pass past the head
	blocked  bool                   // the last read passed over due deliveries for limits
	work     chan rswebhooks.DueRef // to the workers; never more than MaxConcurrency waiting
	done     chan finished          // the slots whose attempts finished

	throttled map[string]time.Time // delivery id → when a rate limit first held it
	paceWait  time.Duration        // until a held delivery's webhook has a token (0: none held)
	recheck   map[string]bool      // ordered webhooks whose head may have to be released
	spilled   bool                 // the last refill moved waiting deliveries back: read again
	ordered   map[string]bool      // webhooks seen Ordered by the last refill

	// elsewhere counts, per webhook, the leases other nodes held at the
	// last refill (a shared store's DueRef.Leased beyond ours): a lease
	// they would refuse is not tried, and the queue is read again within
	// blockedPoll.
	elsewhere map[string]int
	// yield: webhooks whose free slots this node leaves to the node
	// holding most of their leases, since when (nodes.go).
	yield map[string]time.Time
	// overflow: the last read hit its bound or filled the buffer, so
	// more may be due than this node read (nodes.go).
	overflow bool

	lastRefill time.Time // when the queue was last read
	deferred   bool      // a wake-up waits for the store's scan interval (scanGap)
	// chaining: webhooks whose last finished slot went on with their next
	// deliveries (rswebhooks.LeaseChainer); their slots in flight take
	// their earliest due deliveries as they finish (see dispatch).
	chaining map[string]bool
	// stale: a slot that went on with its webhook came back, and the
	// webhook's buffered deliveries were dropped (see finish): read
	// before starting anything.
	stale bool
}

// wokenRefill reports whether a wake-up (Wake, DueSignal, the timer)
// reads the queue now. With a scan gap (rswebhooks.DueScanPacer) one
// within the gap after the last read is deferred to the gap's end instead;
// only a finished attempt reads at once.
func (e *Engine) wokenRefill(st *dispatcher) bool {
	if e.scanGap > 0 && within(e.opts.Now(), st.lastRefill, e.scanGap) {
		st.deferred = true
		return false
	}
	return true
}

// dispatchLoop reads due deliveries and hands them to workers until ctx is
// done, then waits for the workers.
func (e *Engine) dispatchLoop(ctx context.Context) {
	st := &dispatcher{
		inflight: map[string]flight{},
		perHook:  map[string]int{},
		perOwner: map[string]int{},
		owners:   map[string]string{},
		slow:     map[string]bool{},
		work:     make(chan rswebhooks.DueRef, e.opts.MaxConcurrency),
		done:     make(chan finished, e.opts.MaxConcurrency),

		passHook: map[string]bool{},

		throttled: map[string]time.Time{},
		recheck:   map[string]bool{},
		ordered:   map[string]bool{},
		elsewhere: map[string]int{},
		yield:     map[string]time.Time{},
		chaining:  map[string]bool{},
	}
	// Long-lived workers: an attempt runs on a goroutine whose stack has
	// already grown to what the store and the HTTP client need.
	var workers sync.WaitGroup
	for range e.opts.MaxConcurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for r := range st.work {
				st.done <- finished{id: r.ID, started: e.work(ctx, r)}
			}
		}()
	}
	defer func() {
		close(st.work)
		workers.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastStats time.Time
	refresh, tail := true, false // read the queue: all of it, or (maybe) what was added
	for ctx.Err() == nil {
		now := e.opts.Now()
		if now.Sub(lastStats) >= e.opts.StatsInterval || lastStats.IsZero() {
			e.updateStats(ctx)
			e.recheckOrdered(ctx, st)
			lastStats = now
		}
		switch {
		case refresh:
			e.refill(ctx, st, now, false)
		case tail:
			e.refill(ctx, st, now, e.tailOnly(st, now))
		}
		if refresh || tail {
			st.lastRefill, st.deferred = now, false
		}
		e.dispatch(ctx, st)
		if refresh || tail {
			e.wakeNodes(st)
		}
		moved := e.postponeSlow(ctx, st, now) || st.spilled

		// Decide how long to sleep when nothing else happens.
		wait := e.opts.PollInterval
		switch {
		case moved:
			wait = 0
		case len(st.buf) == 0 && len(st.inflight) < e.opts.MaxConcurrency && !st.blocked:
			// (Blocked: what is due waits for attempts in flight, here or
			// on other nodes; a finishing worker, a DueSignal or the poll
			// wakes us.)
			if next, ok, err := e.opts.Store.NextDue(ctx); err == nil && ok {
				d := next.Sub(e.opts.Now())
				if d <= 0 {
					// Due, yet nothing could go: a webhook's rate or order
					// holds it. Look again when the rate allows one, or
					// soon (a hold that failed is tried again).
					d = min(blockedPoll, e.opts.PollInterval)
					if st.paceWait > 0 {
						d = st.paceWait
					}
				}
				if d < wait {
					wait = max(d, 0)
				}
			}
		case len(st.buf) > 0:
			// Blocked by per-webhook limits or a full pool: a finishing
			// worker wakes us; re-check when the oldest attempt turns slow.
			if st.full {
				for _, f := range st.inflight {
					wait = min(wait, max(f.started.Add(e.slowAfter).Sub(e.opts.Now()), 10*time.Millisecond))
				}
			}
		}
		if wait == 0 && !moved && len(st.inflight) > 0 && len(st.buf) == 0 {
			// Everything due is in flight; wait for a worker.
			wait = e.opts.PollInterval
		}
		if len(st.inflight) < e.opts.MaxConcurrency && st.full && !e.anyDispatchable(st) {
			// Nothing read so far can start: sweep on at once, or start
			// the next pass when it is due.
			next := time.Duration(0)
			if st.atEnd {
				next = max(0, st.passed.Add(passEvery).Sub(e.opts.Now()))
			}
			wait = min(wait, next)
		}
		if len(st.elsewhere) > 0 && len(st.buf) > 0 {
			// Deliveries wait for leases other nodes hold, whose end no
			// signal announces: look again soon.
			wait = min(wait, blockedPoll)
		}
		if w := e.yieldWait(st); w > 0 && len(st.buf) > 0 {
			wait = min(wait, w) // a slot left to another node may be free by then
		}
		if st.paceWait > 0 && !moved {
			// A rate limit holds deliveries: look again when it allows one.
			wait = min(wait, st.paceWait)
		}
		if e.scanGap > 0 {
			// Every timer wake-up reads the queue: none before the store's
			// scan interval has passed, and a deferred one right then.
			rest := max(0, st.lastRefill.Add(e.scanGap).Sub(e.opts.Now()))
			wait = max(wait, rest)
			if st.deferred {
				wait = rest
			}
		}
		timer.Reset(wait) // since Go 1.23 a Reset timer never delivers a stale tick
		refresh, tail = false, false
		select {
		case <-ctx.Done():
		case f := <-st.done:
			e.finish(st, f)
			for drained := false; !drained; {
				select {
				case f := <-st.done:
					e.finish(st, f)
				default:
					drained = true
				}
			}
			refresh = len(st.buf) == 0 || !e.anyDispatchable(st) || st.stale
		case <-e.wake:
			if !e.nothingToStart(st) {
				tail = e.wokenRefill(st)
			}
		case <-e.opts.Store.DueSignal():
			tail = e.wokenRefill(st)
		case <-timer.C:
			refresh = e.wokenRefill(st)
		}
		if refresh || tail {
			// The refill about to run sees every write signalled so far.
			select {
			case <-e.wake:
			default:
			}
			e.fanned.take()
			select {
			case <-e.opts.Store.DueSignal():
			default:
			}
		}
	}
	for len(st.inflight) > 0 {
		e.finish(st, <-st.done)
	}
	e.contended.Store(false)
}

// finished is a slot whose work ended: the delivery it was given and when
// its last attempt started (later than the flight's start when the slot
// went on with more deliveries of its webhook; zero when none started).
type finished struct {
	id      string
	started time.Time
}

func (e *Engine) finish(st *dispatcher, done finished) {
	f, ok := st.inflight[done.id]
	if !ok {
		return
	}
	delete(st.inflight, done.id)
	st.finished = true
	if done.started.IsZero() && e.scanGap > 0 {
		// Its lease was refused. In a shared store that is another node
		// taking the slot or the delivery since the read (a slot going on
		// with its webhook takes the webhook's earliest due deliveries,
		// the ones a read lists first): the rest of the webhook's
		// buffered deliveries would be refused alike, each a round trip.
		// It waits for the next read's count of leases.
		st.elsewhere[f.webhookID] = e.opts.PerWebhookConcurrency
	}
	if f.ordered {
		st.recheck[f.webhookID] = true
	}
	if e.chainer != nil && !done.started.After(f.started) {
		delete(st.chaining, f.webhookID)
	} else if e.chainer != nil {
		// The slot went on with its webhook (rswebhooks.LeaseChainer),
		// taking the webhook's earliest due deliveries, and so did its
		// other slots meanwhile: the ones buffered for the webhook are
		// most likely sent or leased by now, and leasing them would be
		// refused, a round trip each while the slot waits. They are
		// dropped, and the queue read again before anything starts.
		st.chaining[f.webhookID] = true
		kept := st.buf[:0]
		for _, r := range st.buf {
			if r.WebhookID != f.webhookID {
				kept = append(kept, r)
			}
		}
		if len(kept) < len(st.buf) {
			clear(st.buf[len(kept):])
			st.buf, st.stale = kept, true
		}
	}
	if done.started.After(f.started) {
		f.started = done.started
	}
	if e.opts.Now().Sub(f.started) >= e.slowAfter {
		if len(st.slow) >= 100000 {
			clear(st.slow)
		}
		st.slow[f.webhookID] = true
	} else {
		delete(st.slow, f.webhookID)
	}
	if st.perHook[f.webhookID]--; st.perHook[f.webhookID] <= 0 {
		delete(st.perHook, f.webhookID)
		delete(st.chaining, f.webhookID)
	}
	if st.perOwner[f.owner]--; st.perOwner[f.owner] <= 0 {
		delete(st.perOwner, f.owner)
	}
}

// ownerOf returns the owner id of a webhook ("" when it cannot be read: the
// attempt will find out). Owners are remembered for the dispatcher's life;
// a webhook given to another owner is counted under the old one until the
// map is cleared, which only skews fairness, never correctness.
func (e *Engine) ownerOf(ctx context.Context, st *dispatcher, webhookID string) string {
	if o, ok := st.owners[webhookID]; ok {
		return o
	}
	w, err := e.hooks.get(ctx, webhookID)
	if err != nil {
		return ""
	}
	if len(st.owners) >= 100000 {
		clear(st.owners)
	}
	st.owners[webhookID] = w.User.ID
	return w.User.ID
}

// room reports whether one more attempt to the webhook fits the
// per-webhook and per-owner limits and, for a slow webhook, the share of
// workers slow webhooks may hold (half), given extra planned ones.
func (e *Engine) room(st *dispatcher, webhookID, owner string, hookPlanned, ownerPlanned, slowPlanned int) bool {
	if e.yields(st, webhookID) {
		return false // left to the node holding its slots (nodes.go)
	}
	if st.perHook[webhookID]+hookPlanned+st.elsewhere[webhookID] >= e.hookLimit(st, webhookID) ||
		st.perOwner[owner]+ownerPlanned >= e.opts.PerOwnerConcurrency {
		return false
	}
	return !st.slow[webhookID] || st.slowNow+slowPlanned < e.slowShare
}

// bufferable reports whether a refill may buffer one more delivery of the
// webhook: up to twice its per-webhook and per-owner limits counting those
// in flight (up to four times while that takes at most a quarter, for a
// webhook, or half, for an owner, of the buffer), so the deliveries that
// start as workers finish are at hand without a new read, while one
// webhook's or owner's backlog still cannot fill the buffer. Slow webhooks
// get no more than their share of workers.
func (e *Engine) bufferable(st *dispatcher, webhookID, owner string, hookPlanned, ownerPlanned, slowPlanned int) bool {
	if st.perHook[webhookID]+hookPlanned >= e.hookBuffer || st.perOwner[owner]+ownerPlanned >= e.ownerBuffer {
		return false
	}
	return !st.slow[webhookID] || st.slowNow+slowPlanned < e.slowShare
}

// countSlow marks webhooks with an attempt running for slowAfter or more as
// slow and counts the attempts in flight to slow webhooks.
func (e *Engine) countSlow(st *dispatcher, now time.Time) {
	for _, f := range st.inflight {
		if now.Sub(f.started) >= e.slowAfter {
			st.slow[f.webhookID] = true
		}
	}
	st.slowNow = 0
	for _, f := range st.inflight {
		if st.slow[f.webhookID] {
			st.slowNow++
		}
	}
}

// refill replaces the buffer with due deliveries not already in flight, in
// due order, passing over those whose webhook or owner is at its limit so
// one busy owner's backlog cannot hide another's due deliveries. It reads
// queue keys only: a delivery is loaded by the worker that sends it. It
// reads the head of the queue, then continues the sweep (see headScan).
//
// With tail (see tailOnly) it keeps the buffer and reads only the keys
// added behind the sweep's position.
func (e *Engine) refill(ctx context.Context, st *dispatcher, now time.Time, tail bool) {
	limit := e.opts.MaxConcurrency + e.opts.BatchSize
	hookPlanned := map[string]int{}
	ownerPlanned := map[string]int{}
	slowPlanned := 0
	e.countSlow(st, now)
	st.finished = false
	st.stale = false
	if tail {
		for _, r := range st.buf {
			hookPlanned[r.WebhookID]++
			ownerPlanned[st.owners[r.WebhookID]]++
			if st.slow[r.WebhookID] {
				slowPlanned++
			}
		}
	} else {
		st.buf = st.buf[:0]
		clear(st.elsewhere)
		st.paceWait = 0
		st.blocked = false
		st.fullAt = now
	}
	var (
		last    rswebhooks.DueRef
		scanned int
		bufFull bool
		// cut: a read bounded per webhook (rswebhooks.DueByWebhookScanner)
		// stopped at a webhook's bound.
		cut      bool
		readHook map[string]int
	)
	heads := map[string]orderHead{}
	// Webhooks (not Ordered) this read found at their buffer bound: what
	// bounds them only grows during a read, so their later keys are passed
	// over without looking the webhook up again (a busy owner's backlog is
	// most of what a head read passes over).
	full := map[string]bool{}
	var holds []hold
	// Deliveries passed over because their webhook's order or rate holds
	// them: moved back in the queue if the read was full, so a long
	// backlog of one webhook cannot hide others' due deliveries.
	var spill []hold
	spillN := map[string]int{}
	take := func(d rswebhooks.DueRef) bool {
		scanned++
		last = d
		if _, busy := st.inflight[d.ID]; busy {
			return true
		}
		if full[d.WebhookID] {
			return true // st.blocked is already set
		}
		w := e.settings(ctx, d.WebhookID)
		if w.Ordered {
			st.ordered[d.WebhookID] = true
		} else {
			delete(st.ordered, d.WebhookID)
		}
		if w.Ordered {
			h, ok := heads[d.WebhookID]
			if !ok {
				h = e.orderHead(ctx, d.WebhookID)
				heads[d.WebhookID] = h
			}
			if h.ok && h.ref.ID != d.ID {
				// Not its turn. While the one before it waits for a
				// retry, move it out of the due part of the queue.
				if h.ref.Due.After(now) {
					if len(holds) < maxHolds {
						holds = append(holds, hold{id: d.ID, until: h.ref.Due, reason: ReasonOrderedWait})
					}
				} else if len(spill) < maxHolds && h.ref.ID != "" {
					// Its turn comes after the head's attempt at the
					// earliest; releaseHeads brings the next one forward.
					spill = append(spill, hold{id: d.ID, until: now.Add(e.opts.AttemptTimeout), reason: ReasonOrderedWait})
				}
				return true
			}
		}
		owner := e.ownerOf(ctx, st, d.WebhookID)
		// Leased counts attempts in flight on every node (ours too), so
		// the per-webhook limit holds across a cluster.
		elsewhere := max(d.Leased-st.perHook[d.WebhookID], 0)
		if elsewhere > 0 {
			st.elsewhere[d.WebhookID] = elsewhere
		} else {
			delete(st.elsewhere, d.WebhookID)
		}
		if !e.bufferable(st, d.WebhookID, owner, hookPlanned[d.WebhookID]+elsewhere, ownerPlanned[owner], slowPlanned) {
			st.blocked = true
			if !w.Ordered {
				full[d.WebhookID] = true
			}
			return true
		}
		if n, wait, reason := e.pace.available(d.WebhookID, w.MaxPerSecond, now); n >= 0 && hookPlanned[d.WebhookID] >= n {
			e.heldByPace(st, d.ID, wait, reason, now)
			if len(spill) < maxHolds {
				// The k-th one waiting gets a token about k/rate later.
				k := spillN[d.WebhookID]
				spillN[d.WebhookID]++
				// At most spillAhead beyond its wait: the rate may recover
				// before a turn computed at today's rate comes, and the
				// next read spills it again at the rate of then.
				until := now.Add(wait)
				if r := e.pace.rate(d.WebhookID, w.MaxPerSecond, now); r > 0 {
					until = until.Add(min(spillAhead, time.Duration(float64(k)/r*float64(time.Second))))
				}
				spill = append(spill, hold{id: d.ID, until: until, reason: ReasonThrottled})
			}
			return true
		}
		hookPlanned[d.WebhookID]++
		ownerPlanned[owner]++
		if st.slow[d.WebhookID] {
			slowPlanned++
		}
		st.buf = append(st.buf, d)
		bufFull = len(st.buf) >= limit
		return !bufFull
	}
	// bufferable: whether the read could still buffer a delivery of the
	// webhook, given what it has buffered so far.
	bufferable := func(webhookID string) bool {
		owner := e.ownerOf(ctx, st, webhookID)
		return e.bufferable(st, webhookID, owner, hookPlanned[webhookID], ownerPlanned[owner], slowPlanned)
	}
	var err error
	if tail {
		bufFull = len(st.buf) >= limit
		if !bufFull {
			err = e.opts.Store.ScanDueAfter(ctx, now, *st.sweep, e.sweepScan, func(d rswebhooks.DueRef) bool {
				last = d
				if len(st.passHook) <= maxPassHooks {
					st.passHook[d.WebhookID] = true
				}
				return take(d)
			})
		}
		if err == nil && scanned > 0 {
			st.sweep, st.readEnd = &last, &last
		}
	} else {
		if e.byWebhook != nil {
			readHook = map[string]int{}
			err = e.byWebhook.ScanDueByWebhook(ctx, now, e.hookBuffer, e.headScan, func(d rswebhooks.DueRef) bool {
				if readHook[d.WebhookID]++; readHook[d.WebhookID] >= e.hookBuffer-d.Leased {
					cut = true // more of this webhook may be due
				}
				return take(d)
			})
		} else {
			err = e.opts.Store.ScanDue(ctx, now, e.headScan, take)
		}
		st.headFull = scanned >= e.headScan
		if err == nil && !st.headFull {
			st.restartSweep() // the whole due queue was read
			if e.byWebhook != nil {
				// Each webhook's due deliveries were read up to what it
				// could buffer: a pass past them would find nothing more
				// to start before passEvery.
				st.atEnd, st.passed = true, now
			}
		}
		if err == nil && !bufFull && st.headFull {
			err = e.sweepStep(ctx, st, now, last, &scanned, &bufFull, take, bufferable)
		}
		st.readEnd = nil
		if scanned > 0 {
			st.readEnd = &last
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			e.storeLog(err).Msg("read due deliveries")
		}
		st.buf, st.full, st.headFull, st.readEnd, st.overflow = st.buf[:0], false, false, nil, false
		st.restartSweep()
		return
	}
	st.full = st.full && tail || bufFull || scanned >= e.headScan || cut
	st.overflow = bufFull || scanned >= e.headScan
	if !tail {
		e.updateYield(st, now)
	}
	st.spilled = false
	if st.full && len(spill) > 0 {
		holds = append(holds, spill...)
		st.spilled = true
	}
	if e.holdOrdered(ctx, holds) == 0 {
		st.spilled = false // nothing moved: do not read again at once
	}
	e.releaseHeads(ctx, st, now)
}

// tailOnly reports whether a wake-up's refill may read only the keys added
// behind the sweep (see the wake-up paragraph at headScan): the last full
// refill read a full head and ran within sweepEvery, no attempt finished
// since, and the sweep follows the end of the queue from the last key read.
func (e *Engine) tailOnly(st *dispatcher, now time.Time) bool {
	return st.headFull && st.atEnd && !st.finished && st.sweep != nil && st.readEnd != nil &&
		!dueAfter(*st.readEnd, *st.sweep) && within(now, st.fullAt, sweepEvery)
}

// sweepStep reads the next step of the sweep past the head, whose last key
// was headEnd (see headScan), unless it is not due yet.
func (e *Engine) sweepStep(ctx context.Context, st *dispatcher, now time.Time, headEnd rswebhooks.DueRef,
	scanned *int, bufFull *bool, take func(rswebhooks.DueRef) bool, bufferable func(webhookID string) bool) error {
	if st.atEnd && !within(now, st.passed, passEvery) {
		if within(now, st.passFrom, passAtLeast) && !st.passWorthIt(bufferable) {
			st.passed = now // nothing the last pass met could be buffered: wait on
		} else {
			st.restartSweep() // a new pass, from the end of the head
		}
	}
	if st.sweep == nil && !st.atEnd && st.passFrom.IsZero() {
		st.passFrom = now
	}
	if within(now, st.swept, sweepEvery) && (len(st.inflight) >= e.opts.MaxConcurrency || e.anyDispatchable(st)) {
		return nil // every worker is busy or work is at hand: sweep on later
	}
	st.swept = now
	from := headEnd
	if st.sweep != nil && dueAfter(*st.sweep, headEnd) {
		from = *st.sweep
	}
	head := *scanned
	var last rswebhooks.DueRef
	err := e.opts.Store.ScanDueAfter(ctx, now, from, e.sweepScan, func(d rswebhooks.DueRef) bool {
		last = d
		if len(st.passHook) <= maxPassHooks {
			st.passHook[d.WebhookID] = true
		}
		return take(d)
	})
	if err != nil {
		return err
	}
	if *scanned > head {
		from = last
	}
	st.sweep = &from
	if !*bufFull && *scanned-head < e.sweepScan && !st.atEnd {
		// The end of the due queue: from now on the sweep follows the keys
		// added behind it until the next pass.
		st.atEnd, st.passed = true, now
	}
	return nil
}

// restartSweep makes the next sweep step start a new pass after the head.
func (st *dispatcher) restartSweep() {
	st.sweep, st.atEnd, st.passFrom = nil, false, time.Time{}
	clear(st.passHook)
}

// passWorthIt reports whether a new pass could buffer something: some
// webhook the last pass met past the head is not at its limits now (or the
// pass met too many to remember).
func (st *dispatcher) passWorthIt(bufferable func(webhookID string) bool) bool {
	if len(st.passHook) > maxPassHooks {
		return true
	}
	for id := range st.passHook {
		if bufferable(id) {
			return true
		}
	}
	return false
}

// within reports whether now is less than d after t (a clock that went
// back counts as d passed, so nothing waits on it).
func within(now, t time.Time, d time.Duration) bool {
	since := now.Sub(t)
	return since >= 0 && since < d
}

// dueAfter reports whether a sorts after b in the queue's order (due time,
// then id).
func dueAfter(a, b rswebhooks.DueRef) bool {
	if !a.Due.Equal(b.Due) {
		return a.Due.After(b.Due)
	}
	return a.ID > b.ID
}

func (e *Engine) anyDispatchable(st *dispatcher) bool {
	if len(st.inflight) >= e.opts.MaxConcurrency {
		return false
	}
	for _, d := range st.buf {
		if e.room(st, d.WebhookID, st.owners[d.WebhookID], 0, 0, 0) {
			return true
		}
	}
	return false
}

// dispatch starts workers for buffered deliveries, in due order, while the
// pool has room; a delivery whose webhook is at its limit stays buffered and
// does not hold up the others.
//
// The slots in flight of a webhook that go on with its next deliveries
// (chaining) each take its earliest due one as they finish, which are the
// ones a read lists first: a lease of those here would be refused, a
// round trip each while the slot waits, so a free slot of the webhook
// takes the first buffered delivery after as many as the webhook has
// slots in flight. The ones passed over stay buffered (its slots take
// them, or the next read lists them again).
func (e *Engine) dispatch(ctx context.Context, st *dispatcher) {
	kept := st.buf[:0]
	var lead map[string]int // chaining webhooks: buffered deliveries still to pass over
	for _, d := range st.buf {
		owner := st.owners[d.WebhookID]
		if len(st.inflight) >= e.opts.MaxConcurrency || !e.room(st, d.WebhookID, owner, 0, 0, 0) {
			kept = append(kept, d)
			continue
		}
		if e.chainer != nil && st.chaining[d.WebhookID] {
			if lead == nil {
				lead = map[string]int{}
			}
			n, ok := lead[d.WebhookID]
			if !ok {
				n = st.perHook[d.WebhookID]
			}
			if n > 0 {
				lead[d.WebhookID] = n - 1
				kept = append(kept, d)
				continue
			}
			lead[d.WebhookID] = 0
		}
		w := e.settings(ctx, d.WebhookID)
		now := e.opts.Now()
		if !e.pace.take(d.WebhookID, w.MaxPerSecond, now) {
			_, wait, reason := e.pace.available(d.WebhookID, w.MaxPerSecond, now)
			e.heldByPace(st, d.ID, wait, reason, now)
			kept = append(kept, d)
			continue
		}
		if at, ok := st.throttled[d.ID]; ok {
			e.m.ThrottleDelay.Observe(max(0, now.Sub(at).Seconds()))
			delete(st.throttled, d.ID)
		}
		if st.slow[d.WebhookID] {
			st.slowNow++
		}
		st.inflight[d.ID] = flight{webhookID: d.WebhookID, owner: owner, started: now, ordered: w.Ordered}
		st.perHook[d.WebhookID]++
		st.perOwner[owner]++
		st.work <- d // never blocks: fewer than MaxConcurrency are in flight
	}
	clear(st.buf[len(kept):])
	st.buf = kept
	// Slots that delivered go back to the dispatcher instead of going on
	// with their webhook while deliveries the limits would let start wait
	// for a worker.
	contended := false
	if len(st.inflight) >= e.opts.MaxConcurrency {
		for _, d := range st.buf {
			if e.room(st, d.WebhookID, st.owners[d.WebhookID], 0, 0, 0) {
				contended = true
				break
			}
		}
	}
	e.contended.Store(contended)
}

// chainKey carries a *chain in an attempt's context.
type chainKey struct{}

// chain is a slot's request, in its attempt's context, for its webhook's
// next due delivery, leased when the attempt is recorded (complete).
type chain struct {
	next *rswebhooks.Delivery
}

// work leases a listed delivery and makes an attempt of it. With a store
// that can lease while recording (rswebhooks.LeaseChainer), a slot whose
// attempt delivered goes on with its webhook's next due delivery, leased in
// the transaction that recorded the attempt, while mayChain allows: the
// webhook keeps the slot it had, within its and its owner's limits, so a
// slot's cycle is the attempt and one round trip. It returns when the last
// attempt started.
func (e *Engine) work(ctx context.Context, r rswebhooks.DueRef) time.Time {
	d := e.lease(ctx, r)
	var started, last time.Time
	for d != nil {
		last = e.opts.Now()
		if started.IsZero() {
			started = last
		}
		actx := ctx
		var ch *chain
		if e.mayChain(ctx, d.WebhookID, started, last) {
			ch = &chain{}
			actx = context.WithValue(ctx, chainKey{}, ch)
		}
		// Recording the attempt ended the lease; an attempt that was not
		// recorded (shutdown, a store error) leaves the delivery to the
		// next dispatcher at once, not at the lease's end.
		if !e.attempt(actx, d) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = e.opts.Store.Release(rctx, d.ID, e.opts.LeaseHolder)
			cancel()
		}
		d = nil
		if ch != nil {
			d = ch.next
		}
	}
	return last
}

// mayChain reports whether a slot that started on the webhook at started
// may go on with the webhook's next delivery after the attempt starting
// now: the store can lease while recording, no delivery the limits would
// let start waits for a worker, the webhook is neither ordered (its order
// is the dispatcher's) nor paced, and the slot has not gone on for chainFor
// (the dispatcher's view of it, for slow webhooks and its refills, stays
// fresh).
func (e *Engine) mayChain(ctx context.Context, webhookID string, started, now time.Time) bool {
	if e.chainer == nil || e.contended.Load() || !within(now, started, e.chainFor) {
		return false
	}
	w := e.settings(ctx, webhookID)
	if w.Ordered || w.MaxPerSecond > 0 {
		return false
	}
	n, _, _ := e.pace.available(webhookID, 0, now)
	return n < 0
}

// complete records attempt a and d's new state. For a slot that may go on
// (see work) and a delivered attempt it leases the webhook's next due
// delivery in the same transaction.
func (e *Engine) complete(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt) error {
	ch, _ := ctx.Value(chainKey{}).(*chain)
	if ch == nil || d.State != rswebhooks.DeliverySucceeded {
		return e.opts.Store.Complete(ctx, d, a)
	}
	next, err := e.chainer.CompleteAndLease(ctx, d, a, e.opts.Now(), rswebhooks.LeaseRequest{
		Holder: e.opts.LeaseHolder, For: e.opts.LeaseFor, PerWebhook: e.opts.PerWebhookConcurrency,
	})
	ch.next = next
	return err
}

// lease leases a listed delivery for an attempt; nil if it is gone, no
// longer pending or due, leased by another node, or its webhook is at its
// concurrency limit across the cluster.
func (e *Engine) lease(ctx context.Context, r rswebhooks.DueRef) *rswebhooks.Delivery {
	d, err := e.opts.Store.Lease(ctx, r.ID, e.opts.Now(), rswebhooks.LeaseRequest{
		Holder: e.opts.LeaseHolder, For: e.opts.LeaseFor, PerWebhook: e.opts.PerWebhookConcurrency,
	})
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound), errors.Is(err, rswebhooks.ErrLeaseRefused):
		return nil
	case err != nil:
		if ctx.Err() == nil {
			e.storeLog(err).Str("delivery_id", r.ID).Msg("lease due delivery; it stays pending")
		}
		return nil
	}
	return d
}

// load reads a listed delivery; nil if it is gone, no longer pending or no
// longer due (finished or moved since it was listed).
func (e *Engine) load(ctx context.Context, r rswebhooks.DueRef) *rswebhooks.Delivery {
	d, err := e.opts.Store.GetDelivery(ctx, r.ID)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
		return nil
	case err != nil:
		if ctx.Err() == nil {
			e.storeLog(err).Str("delivery_id", r.ID).Msg("read due delivery; it stays pending")
		}
		return nil
	case d.State != rswebhooks.DeliveryPending || d.NextUTC.After(e.opts.Now()):
		return nil
	}
	return d
}

// postponeSlow moves the buffered deliveries of slow webhooks (at their
// limit with an attempt running longer than slowAfter) back in the queue by
// AttemptTimeout, when the due read was full and the pool has room, so a
// receiver that hangs cannot hide other webhooks' due deliveries behind its
// own. It reports whether it moved any.
func (e *Engine) postponeSlow(ctx context.Context, st *dispatcher, now time.Time) bool {
	if !st.full || len(st.inflight) >= e.opts.MaxConcurrency || len(st.buf) == 0 {
		return false
	}
	slow := map[string]bool{}
	for _, f := range st.inflight {
		if now.Sub(f.started) >= e.slowAfter {
			slow[f.webhookID] = true
		}
	}
	if len(slow) == 0 {
		return false
	}
	moved := false
	kept := st.buf[:0]
	for _, r := range st.buf {
		if !slow[r.WebhookID] {
			kept = append(kept, r)
			continue
		}
		d := e.load(ctx, r)
		if d == nil {
			continue
		}
		d.NextUTC = now.Add(e.opts.AttemptTimeout).UTC()
		d.UpdatedUTC = now.UTC()
		if err := e.opts.Store.Complete(ctx, d, nil); err != nil {
			e.storeLog(err).Str("delivery_id", d.ID).Msg("postpone delivery of a slow webhook")
			continue
		}
		moved = true
	}
	clear(st.buf[len(kept):])
	st.buf = kept
	return moved
}
