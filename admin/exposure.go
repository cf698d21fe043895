package admin

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// What a webhook owner who is not an administrator learns about the network
// behind a receiver URI is kept to what they need (see docs/security.md):
// receivers are often on the intranet, and an owner chooses the URI, the
// headers and when to ping, so detailed answers would make the admin API a
// way to read internal services and to scan ports.

// uniformEchoError is the one answer a non-administrator gets when a
// receiver fails verification, whatever went wrong (refused, timed out,
// wrong status, wrong body, refused address); the detail is logged for the
// operator and shown to administrators.
const uniformEchoError = "WebHookUri: receiver verification failed: GET WebHookUri?echo=<value> must answer 2xx with exactly the value, at an address deliveries may reach (add a noecho query parameter to skip the echo request; an administrator can see the detailed reason)"

// attemptHidden replaces an attempt's transport error for non-administrators.
const attemptHidden = "the receiver could not be reached (an administrator can see the detailed reason)"

// forCaller returns the attempts as the caller may see them: administrators
// (and every caller when showResponses is set) see everything recorded;
// other owners see status codes and timings, not the receiver's headers,
// body or the transport error's detail.
func forCaller(as []*rswebhooks.Attempt, who *rswebhooks.Identity, showResponses bool) []*rswebhooks.Attempt {
	if who.Admin || showResponses {
		return as
	}
	out := make([]*rswebhooks.Attempt, len(as))
	for i, a := range as {
		c := *a
		c.ResponseHeaders, c.ResponseBody = nil, ""
		if c.Error != "" {
			c.Error = attemptHidden
		}
		out[i] = &c
	}
	return out
}

// userLimiter is a token bucket per user id for the actions that make
// rswebhooks send requests (registration with its echo check, ping,
// redeliver). Administrators are not limited.
type userLimiter struct {
	perMinute float64
	burst     float64
	now       func() time.Time
	mu        sync.Mutex
	buckets   map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory; full buckets are dropped first.
const maxBuckets = 10000

func newUserLimiter(perMinute, burst int, now func() time.Time) *userLimiter {
	if perMinute <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = perMinute
	}
	return &userLimiter{perMinute: float64(perMinute), burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for who, or returns how long until one is available.
func (l *userLimiter) allow(who *rswebhooks.Identity) (time.Duration, bool) {
	if l == nil || who.Admin {
		return 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[who.ID]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[who.ID] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Minutes()*l.perMinute)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	wait := time.Duration((1 - b.tokens) / l.perMinute * float64(time.Minute))
	return wait, false
}

func (l *userLimiter) pruneLocked(now time.Time) {
	for id, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Minutes()*l.perMinute >= l.burst {
			delete(l.buckets, id)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets) // all busy: forgetting gives each a full bucket, never a lockout
	}
}

// limited answers 429 when who is over the rate; true when it did.
func (h *Handler) limited(w http.ResponseWriter, who *rswebhooks.Identity, action string) bool {
	wait, ok := h.limiter.allow(who)
	if ok {
		return false
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, action+": too many requests from this user (at most "+
		strconv.Itoa(int(h.limiter.perMinute))+" per minute); retry in "+strconv.Itoa(secs)+" s")
	return true
}
