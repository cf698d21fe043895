// Package poll runs a periodic job the way the execution watcher and the
// reconciler need it: once at start, then every interval spread by jitter,
// backing off exponentially while the job fails and pausing at least twice
// as long as a slow run took.
package poll

import (
	"context"
	"math"
	"time"
)

// Schedule computes the pause between runs. Interval must be positive;
// MaxBackoff below Interval counts as Interval; Jitter is a fraction in
// [0, 1) (0: none); Rand returns a number in [0, 1) and is used only with
// jitter.
type Schedule struct {
	Interval   time.Duration
	MaxBackoff time.Duration
	Jitter     float64
	Rand       func() float64
}

// Next is the pause after a run that took took, with fails consecutive
// failures so far (0 after a success): Interval, doubled per failure, at
// least twice a slow run's duration (slow: over half the interval), capped
// at MaxBackoff, then spread by ±Jitter.
func (s Schedule) Next(fails int, took time.Duration) time.Duration {
	maxB := max(s.MaxBackoff, s.Interval)
	d := s.Interval
	if fails > 0 {
		f := math.Pow(2, float64(min(fails, 30)))
		d = time.Duration(min(float64(s.Interval)*f, float64(maxB)))
	}
	if took > s.Interval/2 {
		d = max(d, 2*took)
	}
	d = min(d, maxB)
	if s.Jitter > 0 && s.Rand != nil {
		d = time.Duration(float64(d) * (1 + s.Jitter*(2*s.Rand()-1)))
	}
	return d
}

// Sleep waits for d or until ctx is done (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Loop runs Once at start and then after each pause of Schedule until ctx is
// done. Errors go to OnError with the count of consecutive failures and the
// pause before the next try; Run returns nil when ctx is done.
type Loop struct {
	Schedule Schedule
	Once     func(ctx context.Context) error
	OnError  func(err error, fails int, retryIn time.Duration)
	// Now is the clock used to time runs; default time.Now.
	Now func() time.Time
	// Sleep replaces the timer (tests); default Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Run is the loop.
func (l Loop) Run(ctx context.Context) error {
	now, sleep := l.Now, l.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = Sleep
	}
	fails := 0
	for {
		t0 := now()
		err := l.Once(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // cancelled: the loop stops cleanly
		}
		took := now().Sub(t0)
		if err != nil {
			fails++
		} else {
			fails = 0
		}
		d := l.Schedule.Next(fails, took)
		if err != nil && l.OnError != nil {
			l.OnError(err, fails, d)
		}
		if sleep(ctx, d) != nil {
			return nil //nolint:nilerr // cancelled: the loop stops cleanly
		}
	}
}
