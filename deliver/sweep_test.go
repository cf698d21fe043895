package deliver

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// sweepCounter counts the queue keys the dispatcher's sweep reads.
type sweepCounter struct {
	Store
	keys atomic.Int64
}

func (s *sweepCounter) ScanDueAfter(ctx context.Context, now time.Time, after rswebhooks.DueRef, max int, fn func(rswebhooks.DueRef) bool) error {
	return s.Store.ScanDueAfter(ctx, now, after, max, func(r rswebhooks.DueRef) bool {
		s.keys.Add(1)
		return fn(r)
	})
}

// newBacklog starts, inside a synctest bubble, an engine on the store wrap
// returns (a counter around the real one) with 4 workers, one attempt per
// webhook and small head and sweep reads, and one owner's webhook "busy"
// that takes 50 ms per attempt until quick is set (set it at the end, so no
// handler sleeps past the test), with a backlog of 400 events fanned out
// and the first sweep pass done.
func newBacklog(t *testing.T, dir string, wrap func(Store) Store) (b *bubble, quick *atomic.Bool) {
	t.Helper()
	b = newBubble(t, dir, func(o *Options) {
		o.Store = wrap(o.Store)
		o.MaxConcurrency = 4
		o.PerWebhookConcurrency = 1
	}, func(e *Engine) { e.headScan, e.sweepScan = 10, 50 })
	quick = &atomic.Bool{}
	b.addWebhook("busy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !quick.Load() {
			time.Sleep(50 * time.Millisecond)
		}
	}), nil)
	b.addEvents(400)
	time.Sleep(500 * time.Millisecond) // fanned out, the first pass done
	synctest.Wait()
	return b, quick
}

// While one owner's backlog fills the queue and that owner is at its limit
// with workers to spare, a sweep pass that met only that owner's webhooks is
// not repeated every passEvery (it could buffer nothing), yet a pass still
// runs at least every passAtLeast, and another owner's notifications added
// behind the backlog go out at once.
func TestSweepDoesNotRepeatUselessPasses(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		count := &sweepCounter{}
		b, quick := newBacklog(t, dir, func(s Store) Store { count.Store = s; return count })
		from := count.keys.Load()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		swept := count.keys.Load() - from
		// ~60 delivered in 3 s leave ~340 due keys past the head: a pass
		// every passEvery would read ~10,000 of them, one every passAtLeast
		// about 1,000.
		if swept > 2500 {
			t.Errorf("the sweep read %d queue keys in 3 s behind a backlog it could not buffer from; want a pass at most every %s", swept, passAtLeast)
		}
		if swept < 300 {
			t.Errorf("the sweep read %d queue keys in 3 s; want at least one whole pass every %s", swept, passAtLeast)
		}

		b.addWebhook("other", nil, func(w *rswebhooks.Webhook) { w.Filters = []string{rswebhooks.FilterTasks} })
		since := time.Now()
		now := since.UTC()
		for i := range 5 {
			ev := &rswebhooks.Event{ID: b.ids.Next(now), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventUpdated,
				ResourceID: itoa(i + 1), Time: now}
			if err := b.db.AppendEvent(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		b.e.Wake()
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := b.got("other"); len(got) != 5 {
			t.Errorf("another owner's webhook got %d of 5 notifications within 200 ms behind the backlog", len(got))
		}
		quick.Store(true)
		time.Sleep(time.Second)
		synctest.Wait()
	})
}

// headCounter counts the dispatcher's reads of the queue's head.
type headCounter struct {
	Store
	heads atomic.Int64
}

func (s *headCounter) ScanDue(ctx context.Context, now time.Time, max int, fn func(rswebhooks.DueRef) bool) error {
	s.heads.Add(1)
	return s.Store.ScanDue(ctx, now, max, fn)
}

// Behind a backlog of an owner at its limit, each event's wake-up reads
// only the keys added behind the sweep, not the queue's head again: a
// stream of events costs a head read per sweepEvery, and every notification
// still goes out once.
func TestWakeUpsReadOnlyWhatWasAdded(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		count := &headCounter{}
		b, quick := newBacklog(t, dir, func(s Store) Store { count.Store = s; return count })

		const n = 100
		from := count.heads.Load()
		for i := range n {
			now := time.Now().UTC()
			ev := &rswebhooks.Event{ID: b.ids.Next(now), Filter: rswebhooks.FilterTasks, Type: rswebhooks.EventUpdated,
				ResourceID: itoa(1000 + i), Time: now}
			if err := b.db.AppendEvent(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			b.e.Wake()
			time.Sleep(2 * time.Millisecond)
		}
		heads := count.heads.Load() - from
		// 200 ms of events: about 10 head reads for sweepEvery, some for
		// the busy webhook's finished attempts.
		if heads > n/4 {
			t.Errorf("%d head reads for %d wake-ups in 200 ms; want the tail read instead", heads, n)
		}
		quick.Store(true)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		got := b.got("busy")
		seen := map[string]bool{}
		for _, h := range got {
			if seen[h.resource] {
				t.Fatalf("resource %s notified twice", h.resource)
			}
			seen[h.resource] = true
		}
		if len(got) != 400+n {
			t.Fatalf("busy webhook got %d of %d notifications", len(got), 400+n)
		}
	})
}
