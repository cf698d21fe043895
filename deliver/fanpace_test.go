package deliver

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

// pacedStore is a real store that fans out in batches, recording each
// batch's events and when it came (fake time), with a scan interval, as
// a shared store has.
type pacedStore struct {
	*store.DB
	mu      sync.Mutex
	batches [][]string
	at      []time.Time
}

func (s *pacedStore) FanOutEvents(ctx context.Context, fs []rswebhooks.EventFanOut) []error {
	var ids []string
	errs := make([]error, len(fs))
	for i, f := range fs {
		ids = append(ids, f.EventID)
		errs[i] = s.DB.FanOut(ctx, f.EventID, f.Deliveries)
	}
	s.mu.Lock()
	s.batches, s.at = append(s.batches, ids), append(s.at, time.Now())
	s.mu.Unlock()
	return errs
}

func (s *pacedStore) DueScanInterval() time.Duration { return 20 * time.Millisecond }

// With a store that paces its reads, an event after a quiet spell is
// fanned out at once, and events appended within the scan interval of that
// fan-out go in the next one together, which comes when the interval has
// passed, not one fan-out each.
func TestFanOutPacedByScanInterval(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		var ps *pacedStore
		b := newBubble(t, dir, func(o *Options) {
			ps = &pacedStore{DB: o.Store.(*store.DB)}
			o.Store = ps
		})
		b.addWebhook("w1", nil, nil)
		synctest.Wait() // the engine's first fan-out found nothing
		t0 := time.Now()
		appendOne := func(res string) string {
			now := time.Now().UTC()
			ev := &rswebhooks.Event{ID: b.ids.Next(now), Filter: rswebhooks.FilterReports, Type: rswebhooks.EventUpdated,
				ResourceID: res, Time: now}
			if err := b.db.AppendEvent(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			b.e.Wake()
			return ev.ID
		}
		e1 := appendOne("1")
		synctest.Wait()
		time.Sleep(time.Millisecond) // the next events come 1 and 2 ms later
		e2 := appendOne("2")
		time.Sleep(time.Millisecond)
		e3 := appendOne("3")
		time.Sleep(time.Second)
		ps.mu.Lock()
		defer ps.mu.Unlock()
		var got [][]string
		for _, bt := range ps.batches {
			if len(bt) > 0 {
				got = append(got, bt)
			}
		}
		if want := [][]string{{e1}, {e2, e3}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("fan-out batches %v, want %v", got, want)
		}
		last := len(ps.at) - 1
		if d := ps.at[last-1].Sub(t0); d != 0 {
			t.Errorf("first event fanned out %s after it came, want at once", d)
		}
		if d := ps.at[last].Sub(t0); d != 20*time.Millisecond {
			t.Errorf("second fan-out %s after the first, want the scan interval (20ms)", d)
		}
		if n := len(b.got("w1")); n != 3 {
			t.Errorf("%d deliveries, want 3", n)
		}
	})
}
