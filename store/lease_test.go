package store

import (
	"context"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// Complete takes the old index fields from the lease only while the stored
// record is the one the lease read: a delivery moved in the queue after it
// was leased (here held) leaves no queue key behind when it completes.
func TestCompleteAfterLeasedDeliveryMoved(t *testing.T) {
	ctx := context.Background()
	for _, moved := range []bool{false, true} {
		db, _ := newDB(t)
		mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", t0)))
		d := &rswebhooks.Delivery{ID: "D1", WebhookID: "W1", EventID: "E1", State: rswebhooks.DeliveryPending,
			NextUTC: t0, CreatedUTC: t0, UpdatedUTC: t0}
		mustNil(t, db.PutDelivery(ctx, d))
		leased, err := db.Lease(ctx, "D1", t0, rswebhooks.LeaseRequest{Holder: "n1", For: time.Minute})
		mustNil(t, err)
		if moved {
			ok, err := db.HoldDelivery(ctx, "D1", t0.Add(time.Hour), "held")
			mustNil(t, err)
			if !ok {
				t.Fatal("HoldDelivery did not move the leased delivery")
			}
		}
		leased.State, leased.Attempts, leased.UpdatedUTC = rswebhooks.DeliverySucceeded, 1, t0
		mustNil(t, db.Complete(ctx, leased, &rswebhooks.Attempt{N: 1, StartedUTC: t0, StatusCode: 200}))
		depth, _, err := db.QueueStats(ctx)
		mustNil(t, err)
		refs, err := db.DueRefs(ctx, t0.Add(2*time.Hour), 0)
		mustNil(t, err)
		if depth != 0 || len(refs) != 0 {
			t.Errorf("moved=%v: queue depth %d, due %v after the delivery completed; want none", moved, depth, refs)
		}
		got, err := db.GetDelivery(ctx, "D1")
		mustNil(t, err)
		if got.State != rswebhooks.DeliverySucceeded {
			t.Errorf("moved=%v: state %s, want succeeded", moved, got.State)
		}
		as, err := db.Attempts(ctx, "D1")
		mustNil(t, err)
		if len(as) != 1 {
			t.Errorf("moved=%v: %d attempts stored, want 1", moved, len(as))
		}
	}
}
