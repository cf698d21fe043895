package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

func TestSizeIsKnownRightAfterWrites(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lsm0, vlog0 := db.Size()
	big := make([]byte, 8<<10) // above the value threshold: goes to the value log
	for i := range big {
		big[i] = byte(i)
	}
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		e := &rswebhooks.Event{ID: rswebhooks.NewID(time.Now()), Filter: "reports", Type: "Created", ResourceName: string(big)}
		if err := db.AppendEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	lsm, vlog := db.Size()
	if lsm <= 0 || vlog < vlog0+1<<20 {
		t.Fatalf("Size after writing 1.6 MB: lsm %d (was %d), vlog %d (was %d)", lsm, lsm0, vlog, vlog0)
	}
	if vlog > 64<<20 {
		t.Fatalf("vlog %d bytes: the sparse preallocation is counted", vlog)
	}
}

// Badger judges TTLs by the wall clock; the store's own clock may say any
// date. Whatever it says, data kept "for an hour" or "for the retention" is
// readable now, and data whose expiry has passed on the store's clock is gone.
func TestTTLsHoldWhateverTheStoreClockSays(t *testing.T) {
	for _, skew := range []time.Duration{-20 * 365 * 24 * time.Hour, -48 * time.Hour, 0, 48 * time.Hour, 30 * 365 * 24 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			now := time.Now().Add(skew)
			db, err := Open(Options{Dir: t.TempDir(), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if err := db.PutMetaUntil(ctx, "token/x", []byte("alice"), now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if v, err := db.GetMeta(ctx, "token/x"); err != nil || string(v) != "alice" {
				t.Fatalf("GetMeta = %q, %v", v, err)
			}
			if err := db.MarkExecutionsSeen(ctx, []string{"run-1"}); err != nil {
				t.Fatal(err)
			}
			if seen, err := db.SeenExecutions(ctx, []string{"run-1"}); err != nil || !seen["run-1"] {
				t.Fatalf("SeenExecutions = %v, %v", seen, err)
			}
			if err := db.PutMetaUntil(ctx, "token/x", []byte("alice"), now.Add(-time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.GetMeta(ctx, "token/x"); !errors.Is(err, rswebhooks.ErrNotFound) {
				t.Fatalf("expired on the store's clock, still read: %v", err)
			}
		})
	}
}
