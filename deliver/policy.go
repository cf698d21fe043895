package deliver

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind is what to do after an attempt.
type Kind int

// Decision kinds.
const (
	// Success: the receiver answered 2xx; the delivery ends.
	Success Kind = iota
	// Retry: try again on the schedule (After may ask for a longer wait).
	Retry
	// Gone: the receiver answered 410; the webhook is paused and the
	// delivery ends.
	Gone
	// Fail: retrying cannot help (the address policy refused the receiver,
	// or the request cannot be built); the delivery ends as failed.
	Fail
)

func (k Kind) String() string {
	switch k {
	case Success:
		return "success"
	case Retry:
		return "retry"
	case Gone:
		return "gone"
	case Fail:
		return "fail"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Decision is the classification of one attempt's outcome.
type Decision struct {
	Kind Kind
	// After is the receiver's Retry-After (429 and 503 only), already
	// bounded by Policy.MaxRetryAfter; 0 when absent.
	After time.Duration
	// Reason is a short human-readable explanation.
	Reason string
}

// DefaultDelays is the default retry schedule: the waits between attempts.
// Attempt 1 goes out as soon as the event is fanned out, then after 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h and 14 h: 8 attempts spread over about 31.6 hours
// (over 25 hours even if the ±20% jitter shortens every wait).
func DefaultDelays() []time.Duration {
	return []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 14 * time.Hour}
}

// Policy is the retry schedule and the rules for reading a receiver's answer.
// The zero value is not useful; start from DefaultPolicy.
type Policy struct {
	// Delays are the waits between attempts (flag --retry-delays): the
	// delivery gets len(Delays)+1 attempts in total. Empty means one attempt.
	Delays []time.Duration
	// Jitter spreads each delay uniformly by ±Jitter (0.2 = ±20%) so that a
	// burst of failures does not retry in lock step. 0 disables it.
	Jitter float64
	// MaxRetryAfter bounds a receiver's Retry-After (default 1 h). The next
	// attempt waits max(scheduled delay, Retry-After): Retry-After can delay
	// a retry but never hurry it, so one receiver cannot make us hammer it.
	MaxRetryAfter time.Duration
}

// DefaultPolicy returns DefaultDelays with ±20% jitter and Retry-After
// bounded to 1 hour.
func DefaultPolicy() Policy {
	return Policy{Delays: DefaultDelays(), Jitter: 0.2, MaxRetryAfter: time.Hour}
}

// Validate reports a policy that cannot work, naming the field and the rule.
func (p Policy) Validate() error {
	for i, d := range p.Delays {
		if d < 0 {
			return fmt.Errorf("Policy.Delays[%d] = %s: must not be negative", i, d)
		}
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		return fmt.Errorf("Policy.Jitter = %g: must be in [0, 1)", p.Jitter)
	}
	if p.MaxRetryAfter < 0 {
		return fmt.Errorf("Policy.MaxRetryAfter = %s: must not be negative", p.MaxRetryAfter)
	}
	return nil
}

// MaxAttempts is len(Delays)+1.
func (p Policy) MaxAttempts() int { return len(p.Delays) + 1 }

// Next returns how long to wait before the attempt after attempt number done
// (1-based) given the decision d for it, and false when no attempt is left
// or d does not ask for a retry. u is a uniform random number in [0, 1) used
// for jitter (pass 0.5 for none).
func (p Policy) Next(done int, d Decision, u float64) (time.Duration, bool) {
	if d.Kind != Retry || done < 1 || done > len(p.Delays) {
		return 0, false
	}
	wait := p.Delays[done-1]
	if p.Jitter > 0 {
		wait = time.Duration(float64(wait) * (1 + p.Jitter*(2*u-1)))
	}
	if d.After > wait {
		wait = d.After
	}
	return wait, true
}

// Classify maps one attempt's outcome to a Decision. status is the response
// status (0 when err is set), header the response header (may be nil) and
// now the clock used to read an HTTP-date Retry-After. It is pure.
//
//   - 2xx: Success.
//   - 410: Gone.
//   - 429, 503: Retry, with After = Retry-After (seconds or HTTP date),
//     bounded by MaxRetryAfter.
//   - 3xx: Retry (redirects are not followed; a receiver must answer itself).
//   - any other status: Retry.
//   - an *AddressDeniedError: Fail.
//   - any other error (connection refused or reset, timeout, TLS): Retry.
func (p Policy) Classify(status int, err error, header http.Header, now time.Time) Decision {
	if err != nil {
		var denied *AddressDeniedError
		if errors.As(err, &denied) {
			return Decision{Kind: Fail, Reason: denied.Error()}
		}
		return Decision{Kind: Retry, Reason: "transport error"}
	}
	switch {
	case status >= 200 && status < 300:
		return Decision{Kind: Success, Reason: "receiver answered " + strconv.Itoa(status)}
	case status == http.StatusGone:
		return Decision{Kind: Gone, Reason: "receiver answered 410 Gone"}
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		d := Decision{Kind: Retry, Reason: "receiver answered " + strconv.Itoa(status)}
		if after, ok := parseRetryAfter(header.Get("Retry-After"), now); ok {
			if p.MaxRetryAfter > 0 && after > p.MaxRetryAfter {
				after = p.MaxRetryAfter
			}
			d.After = after
		}
		return d
	case status >= 300 && status < 400:
		return Decision{Kind: Retry, Reason: "receiver answered redirect " + strconv.Itoa(status) + " (not followed)"}
	}
	return Decision{Kind: Retry, Reason: "receiver answered " + strconv.Itoa(status)}
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// statusClass is the bounded label value for an attempt's outcome.
func statusClass(status int, err error) string {
	switch {
	case err != nil || status < 200 || status >= 600:
		return "error"
	case status < 300:
		return "2xx"
	case status < 400:
		return "3xx"
	case status < 500:
		return "4xx"
	}
	return "5xx"
}
