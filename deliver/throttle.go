package deliver

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// Rate limits per webhook (see pacer).
const (
	// slowdownEvery: a webhook's rate is cut at most once per this period,
	// however many of its attempts in flight come back 429 or 503.
	slowdownEvery = time.Second
	// recoverEvery is the period of one recovery step; recoverSteps steps
	// take a webhook from nothing back to its ceiling.
	recoverEvery = time.Second
	recoverSteps = 10
	// maxPaces bounds the webhooks the pacer keeps state for; beyond it the
	// state of webhooks that are not slowed down is forgotten.
	maxPaces = 100000
)

// Throttle reasons (label values of rswebhooks_throttled_total).
const (
	// ThrottleMaxPerSecond: the webhook's own MaxPerSecond held a delivery.
	ThrottleMaxPerSecond = "max_per_second"
	// ThrottleAdaptive: the rate lowered after 429/503 answers held it.
	ThrottleAdaptive = "adaptive"
	// ThrottleRetryAfter: the receiver's Retry-After pause held it.
	ThrottleRetryAfter = "retry_after"
)

// Burst is the token bucket size for a rate: a tenth of a second's worth,
// at least one. No second sees more than rate+Burst(rate) notifications.
func Burst(rate float64) float64 { return max(1, math.Floor(rate/10)) }

// pacer decides when the next notification may go to each webhook. Each
// webhook has:
//
//   - a token bucket refilled at its effective rate, holding Burst(rate)
//     tokens (full after an idle spell), one token per attempt;
//   - an adaptive rate: a 429 or 503 answer halves it (at most once per
//     second; a webhook without MaxPerSecond starts from the rate it was
//     being sent at, PerWebhookConcurrency over the attempt's duration),
//     down to rswebhooks.MinPerSecond, and every second without one raises it by a
//     tenth of its ceiling (MaxPerSecond, or the rate it started from) until
//     it reaches the ceiling and is dropped: multiplicative decrease,
//     additive increase;
//   - a pause until a Retry-After on a 429 or 503 ends (bounded by the
//     policy's MaxRetryAfter).
//
// The effective rate is the lower of MaxPerSecond and the adaptive rate;
// with neither, attempts are bounded by concurrency alone. State lives in
// memory: a restart forgets slowdowns (MaxPerSecond is stored).
type pacer struct {
	now func() time.Time

	mu    sync.Mutex
	paces map[string]*pace
}

type pace struct {
	maxPS   float64   // configured MaxPerSecond (0: none)
	rate    float64   // adaptive rate (0: none)
	ceiling float64   // rate at which the adaptive rate is dropped
	tokens  float64   // as of last
	last    time.Time // tokens counted up to here
	until   time.Time // Retry-After pause
	cut     time.Time // last decrease
	step    time.Time // last recovery step (or decrease)
}

func newPacer(now func() time.Time) *pacer {
	return &pacer{now: now, paces: map[string]*pace{}}
}

// effective returns the rate in force and the reason that goes with it (0:
// no bound).
func (p *pace) effective() (float64, string) {
	switch {
	case p.rate > 0 && (p.maxPS == 0 || p.rate < p.maxPS):
		return p.rate, ThrottleAdaptive
	case p.maxPS > 0:
		return p.maxPS, ThrottleMaxPerSecond
	}
	return 0, ""
}

// advance brings the adaptive rate and the bucket up to now.
func (p *pace) advance(now time.Time) {
	if p.rate > 0 {
		if n := now.Sub(p.step) / recoverEvery; n > 0 {
			p.rate += float64(n) * p.ceiling / recoverSteps
			p.step = p.step.Add(n * recoverEvery)
			if p.rate >= p.ceiling || (p.maxPS > 0 && p.rate >= p.maxPS) {
				p.rate, p.ceiling = 0, 0
			}
		}
	}
	rate, _ := p.effective()
	if rate == 0 {
		p.tokens, p.last = 0, time.Time{} // a rate set later starts full
		return
	}
	burst := Burst(rate)
	if p.last.IsZero() {
		p.tokens = burst
	} else if d := now.Sub(p.last); d > 0 {
		p.tokens = min(burst, p.tokens+d.Seconds()*rate)
	}
	p.last = now
}

// idle reports whether the state holds nothing MaxPerSecond alone would not
// rebuild.
func (p *pace) idle(now time.Time) bool {
	return p.rate == 0 && !now.Before(p.until)
}

// get returns the webhook's state with maxPS applied and advanced to now,
// or nil when the webhook is not paced at all. p.mu is held.
func (pc *pacer) get(id string, maxPS float64, now time.Time) *pace {
	p := pc.paces[id]
	if p == nil {
		if maxPS <= 0 {
			return nil
		}
		if len(pc.paces) >= maxPaces {
			pc.forget(now)
		}
		p = &pace{}
		pc.paces[id] = p
	}
	p.maxPS = max(maxPS, 0)
	p.advance(now)
	if p.maxPS == 0 && p.idle(now) {
		delete(pc.paces, id)
		return nil
	}
	return p
}

// forget drops the state of webhooks that are not slowed down. pc.mu is held.
func (pc *pacer) forget(now time.Time) {
	for id, p := range pc.paces {
		if p.idle(now) {
			delete(pc.paces, id)
		}
	}
}

// available returns how many attempts the webhook may start now (-1: no
// bound), how long until it may start one more, and what bounds it.
func (pc *pacer) available(id string, maxPS float64, now time.Time) (n int, wait time.Duration, reason string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p := pc.get(id, maxPS, now)
	if p == nil {
		return -1, 0, ""
	}
	if now.Before(p.until) {
		return 0, p.until.Sub(now), ThrottleRetryAfter
	}
	rate, why := p.effective()
	if rate == 0 {
		return -1, 0, ""
	}
	if p.tokens >= 1 {
		// After these, the next token is 1/rate away.
		return int(p.tokens), time.Duration(math.Ceil(float64(time.Second) / rate)), why
	}
	return 0, time.Duration(math.Ceil((1 - p.tokens) / rate * float64(time.Second))), why
}

// take spends a token for an attempt starting now; false when there is none.
func (pc *pacer) take(id string, maxPS float64, now time.Time) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p := pc.get(id, maxPS, now)
	if p == nil {
		return true
	}
	if now.Before(p.until) {
		return false
	}
	if rate, _ := p.effective(); rate == 0 {
		return true
	}
	if p.tokens < 1 {
		return false
	}
	p.tokens--
	return true
}

// slowdown records a 429 or 503 answer at now: the rate is cut (unless it
// was cut less than slowdownEvery ago) and a Retry-After pauses the webhook
// until now+after. observed is the webhook's rate as seen by this attempt,
// the starting point when it had no rate. It reports whether the rate was
// cut.
func (pc *pacer) slowdown(id string, maxPS float64, observed float64, after time.Duration, now time.Time) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p := pc.paces[id]
	if p == nil {
		if len(pc.paces) >= maxPaces {
			pc.forget(now)
		}
		p = &pace{}
		pc.paces[id] = p
	}
	p.maxPS = max(maxPS, 0)
	p.advance(now)
	if after > 0 && now.Add(after).After(p.until) {
		p.until = now.Add(after)
	}
	if !p.cut.IsZero() && now.Sub(p.cut) < slowdownEvery {
		return false
	}
	cur, _ := p.effective()
	if cur == 0 {
		cur = min(max(observed, rswebhooks.MinPerSecond), rswebhooks.MaxPerSecondLimit)
	}
	if p.rate == 0 {
		p.ceiling = cur
		if p.maxPS > 0 {
			p.ceiling = p.maxPS
		}
	}
	p.rate = max(cur/2, rswebhooks.MinPerSecond)
	p.tokens = min(p.tokens, Burst(p.rate))
	p.cut, p.step = now, now
	return true
}

// rate returns the webhook's effective rate (0: no bound), for tests.
func (pc *pacer) rate(id string, maxPS float64, now time.Time) float64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p := pc.get(id, maxPS, now)
	if p == nil {
		return 0
	}
	r, _ := p.effective()
	return r
}

// slowed counts webhooks under an adaptive rate or a Retry-After pause.
func (pc *pacer) slowed(now time.Time) int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	n := 0
	for _, p := range pc.paces {
		p.advance(now)
		if !p.idle(now) {
			n++
		}
	}
	return n
}

// throttles reports whether an answer asks the sender to slow down.
func throttles(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}
