package deliver

import (
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// Several nodes sharing a store (a cluster on PostgreSQL) coordinate
// through the store alone: the leases count a webhook's attempts on every
// node, and a write that makes deliveries due wakes every node's
// dispatcher. Three rules keep them from getting in each other's way.
//
// A node wakes the others only for work it cannot take (wakeNodes). With a
// store that fans out without waking the other nodes (rswebhooks.NodeWaker)
// each node starts the deliveries of its own events itself, and after a
// read of the queue it wakes the others only while it holds back due
// deliveries another node could start: no worker free, an owner at this
// node's limit, a slow webhook's share used up, or more due than it read.
// A delivery whose webhook is at its limit on the cluster, or that this
// node leaves to the node holding its webhook's slots, is no reason.
//
// A node reads the queue only when it could start something: its own
// fan-out wakes its dispatcher with the webhooks it wrote deliveries for
// (the store signals no one, rswebhooks.NodeWaker), and while each of them
// is at its limit (this node's slots full, or the cluster's) or left to
// another node, the wake-up reads nothing: this node's slots go on with
// those deliveries, a finished attempt reads the queue, and other nodes'
// leases are looked at again within blockedPoll anyway. Any other wake-up
// (DueSignal, a redelivery, a ping, an ordered webhook) reads.
//
// One node at a time takes a webhook's slots (updateYield, yields). A node that
// holds fewer of a webhook's unexpired leases than the other nodes
// together leaves the webhook's free slots to them for affinityGrace: the
// holder, whose slots go on with the webhook's next deliveries
// (rswebhooks.LeaseChainer) and which reads the queue as soon as one of
// its slots ends, takes the slot again well within it. Only a slot still
// free after affinityGrace (the holder is busy elsewhere, slow or gone) is
// taken. So one webhook's completions, leases and index pages are one
// node's, not a contest of all of them, and a webhook still gets every
// slot it may have when its holder cannot use them. A node that died
// holds leases only until they expire (LeaseFor); then the others see the
// webhook free and take it at once.

// affinityGrace is how long a node leaves a webhook's free slots to the
// node holding most of its leases (see updateYield). It is blockedPoll, the
// period at which a node reads the queue again while other nodes' leases
// hold its deliveries: the next read after the first one that saw the
// slot free takes it.
const affinityGrace = blockedPoll

// hookLimit is the webhook's per-webhook concurrency as the dispatcher
// applies it (1 for an ordered webhook).
func (e *Engine) hookLimit(st *dispatcher, webhookID string) int {
	if st.ordered[webhookID] {
		return 1
	}
	return e.opts.PerWebhookConcurrency
}

// updateYield, after a full read of the queue, records the webhooks whose
// free slots this node leaves to other nodes: another node holds more of
// their leases than this one and a slot is free. A webhook keeps the time
// it was first seen so across reads; one that no longer qualifies is
// forgotten.
func (e *Engine) updateYield(st *dispatcher, now time.Time) {
	for id := range st.yield {
		if _, ok := st.elsewhere[id]; !ok {
			delete(st.yield, id)
		}
	}
	for id, others := range st.elsewhere {
		ours := st.perHook[id]
		if ours >= others || ours+others >= e.hookLimit(st, id) {
			delete(st.yield, id)
			continue
		}
		if _, ok := st.yield[id]; !ok {
			st.yield[id] = now
		}
	}
}

// yields reports whether this node leaves the webhook's free slots to the
// node holding them, now (see updateYield and affinityGrace).
func (e *Engine) yields(st *dispatcher, webhookID string) bool {
	since, ok := st.yield[webhookID]
	return ok && within(e.opts.Now(), since, affinityGrace)
}

// yieldWait is how long until the first webhook this node yields stops
// yielding (0: none yields).
func (e *Engine) yieldWait(st *dispatcher) time.Duration {
	var wait time.Duration
	now := e.opts.Now()
	for _, since := range st.yield {
		if d := since.Add(affinityGrace).Sub(now); d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	return wait
}

// othersCould reports whether, after dispatch, this node holds back due
// deliveries another node could start (see wakeNodes).
func (e *Engine) othersCould(st *dispatcher) bool {
	if st.overflow {
		return true
	}
	for _, d := range st.buf {
		if _, paced := st.throttled[d.ID]; paced {
			continue // its webhook's rate holds it, on any node
		}
		if st.perHook[d.WebhookID]+st.elsewhere[d.WebhookID] >= e.hookLimit(st, d.WebhookID) || e.yields(st, d.WebhookID) {
			continue
		}
		if e.chainer != nil && st.chaining[d.WebhookID] && st.perHook[d.WebhookID] > 0 {
			// Left to this node's slots of the webhook, which go on with
			// its earliest deliveries as they finish (see dispatch).
			continue
		}
		return true
	}
	return false
}

// wakeNodes, after a read of the queue and dispatch, wakes the other nodes
// when this one holds back work they could start (rswebhooks.NodeWaker).
func (e *Engine) wakeNodes(st *dispatcher) {
	if e.nodeWaker != nil && e.othersCould(st) {
		e.nodeWaker.WakeNodes()
	}
}

// fannedHooks collects, between two reads of the queue, the webhooks that
// the fan-out wrote deliveries for, or that something else woke the
// dispatcher (then any webhook may have due deliveries).
type fannedHooks struct {
	mu    sync.Mutex
	hooks map[string]bool
	any   bool
}

// maxFannedHooks bounds fannedHooks; past it a wake-up reads the queue.
const maxFannedHooks = 1024

func (f *fannedHooks) add(ds []*rswebhooks.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hooks == nil {
		f.hooks = map[string]bool{}
	}
	for _, d := range ds {
		if len(f.hooks) >= maxFannedHooks {
			f.any = true
			return
		}
		f.hooks[d.WebhookID] = true
	}
}

func (f *fannedHooks) anything() {
	f.mu.Lock()
	f.any = true
	f.mu.Unlock()
}

// take returns and forgets what was collected.
func (f *fannedHooks) take() (hooks map[string]bool, any bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hooks, any = f.hooks, f.any
	f.hooks, f.any = nil, false
	return hooks, any
}

// wakeForFanned wakes the dispatcher for the webhooks the fan-out noted.
func (e *Engine) wakeForFanned() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// nothingToStart reports whether a wake-up (Wake's channel) may skip its
// read: it came from this node's fan-out alone, and every webhook that got
// deliveries is one this node cannot start now (see the paragraph above).
func (e *Engine) nothingToStart(st *dispatcher) bool {
	hooks, any := e.fanned.take() // a read, now or deferred, covers them
	if any || len(hooks) == 0 || e.nodeWaker == nil {
		return false
	}
	for id := range hooks {
		if !e.blockedHere(st, id) {
			return false
		}
	}
	return true
}

// blockedHere reports whether this node cannot start a delivery of the
// webhook now, as of its last read: the webhook's slots are full (here or
// on the cluster), or left to the node holding them. An ordered webhook
// is never blocked here (its order is the reads' business).
func (e *Engine) blockedHere(st *dispatcher, webhookID string) bool {
	if st.ordered[webhookID] {
		return false
	}
	return st.perHook[webhookID]+st.elsewhere[webhookID] >= e.opts.PerWebhookConcurrency || e.yields(st, webhookID)
}
