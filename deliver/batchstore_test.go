package deliver

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
)

// batchingStore is a real store with the optional interfaces of a shared
// one: fan-out in batches (one failing event on request) and a scan
// interval.
type batchingStore struct {
	*store.DB
	mu      sync.Mutex
	batches [][]string // event ids per FanOutEvents call
	single  int        // FanOut calls by the engine
	fail    string     // event id whose fan-out fails
}

var errInjected = errors.New("injected fan-out failure")

func (s *batchingStore) FanOut(ctx context.Context, eventID string, ds []*rswebhooks.Delivery) error {
	s.mu.Lock()
	s.single++
	s.mu.Unlock()
	return s.DB.FanOut(ctx, eventID, ds)
}

func (s *batchingStore) FanOutEvents(ctx context.Context, fs []rswebhooks.EventFanOut) []error {
	var ids []string
	errs := make([]error, len(fs))
	for i, f := range fs {
		ids = append(ids, f.EventID)
		if f.EventID == s.fail {
			errs[i] = errInjected
			continue
		}
		errs[i] = s.DB.FanOut(ctx, f.EventID, f.Deliveries)
	}
	s.mu.Lock()
	s.batches = append(s.batches, ids)
	s.mu.Unlock()
	return errs
}

func (s *batchingStore) DueScanInterval() time.Duration { return 20 * time.Millisecond }

// A store that fans out in batches gets every waiting event in one call;
// an event whose fan-out fails stays waiting without holding up the others,
// and wake-ups deferred by the scan interval still deliver.
func TestFanOutBatchStore(t *testing.T) {
	ch := make(chan received, 10)
	srv := httptest.NewServer(receiver(ch, nil))
	defer srv.Close()
	var bs *batchingStore
	h := newHarness(t, func(o *Options) {
		bs = &batchingStore{DB: o.Store.(*store.DB)}
		o.Store = bs
	})
	h.addWebhook(srv.URL, nil)
	evs := []*rswebhooks.Event{h.addEvent("reports", "r1"), h.addEvent("reports", "r2"), h.addEvent("reports", "r3")}
	bs.fail = evs[1].ID
	h.start()
	got := map[string]bool{}
	for range 2 {
		d := h.nextFinal()
		if d.State != rswebhooks.DeliverySucceeded {
			t.Fatalf("delivery %s: %s %s", d.ID, d.State, d.Reason)
		}
		got[d.EventID] = true
		recv(t, ch, "a notification")
	}
	if !got[evs[0].ID] || !got[evs[2].ID] {
		t.Fatalf("delivered events %v, want %s and %s", got, evs[0].ID, evs[2].ID)
	}
	un, err := h.db.UnfannedEvents(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != 1 || un[0].ID != evs[1].ID {
		t.Fatalf("unfanned %v, want the failed event %s", un, evs[1].ID)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.single != 0 {
		t.Fatalf("the engine called FanOut %d times beside FanOutEvents", bs.single)
	}
	want := []string{evs[0].ID, evs[1].ID, evs[2].ID}
	slices.Sort(want) // waiting events come in id order
	if len(bs.batches) == 0 || !slices.Equal(bs.batches[0], want) {
		t.Fatalf("FanOutEvents batches %v, want first %v", bs.batches, want)
	}
}
