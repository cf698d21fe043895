package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Data dirs written before the store compressed its tables (no
// compression, no block cache, 2 MiB tables) open and read with the current
// profile, and a compaction merges their tables with new compressed ones.
func TestOpensUncompressedTables(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const n = 2000
	old := func(o *Options) {
		o.tweakBadger = func(bo badger.Options) badger.Options {
			return bo.WithCompression(options.None).WithBlockCacheSize(0).WithBaseTableSize(2 << 20)
		}
	}
	db, c := openTest(t, dir, old)
	mustNil(t, db.CreateWebhook(ctx, webhook("W1", "alice", c.t)))
	for i := range n {
		mustNil(t, db.AppendEvent(ctx, event(fmt.Sprintf("E%05d", i))))
	}
	mustNil(t, db.Close())
	if ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(ssts) == 0 {
		t.Fatal("closing the old-profile store left no table: the test would read the memtable log, not a table")
	}

	// SalvageWebhooks reads old uncompressed tables too.
	s, err := SalvageWebhooks(dir)
	mustNil(t, err)
	if len(s.Webhooks) != 1 || s.Webhooks[0].ID != "W1" || len(s.Problems) != 0 {
		t.Fatalf("salvaged from uncompressed tables: %d webhooks, problems %q; want W1 and none", len(s.Webhooks), s.Problems)
	}

	db, c = openTest(t, dir)
	mustNil(t, db.CreateWebhook(ctx, webhook("W2", "alice", c.t)))
	for i := range n {
		mustNil(t, db.AppendEvent(ctx, event(fmt.Sprintf("F%05d", i))))
	}
	// Merges the uncompressed tables with the flushed compressed ones.
	mustNil(t, db.bdb.Load().Flatten(1))
	mustNil(t, db.Close())

	s, err = SalvageWebhooks(dir)
	mustNil(t, err)
	if len(s.Webhooks) != 2 || len(s.Problems) != 0 {
		t.Fatalf("salvaged from compressed tables: %d webhooks, problems %q; want 2 and none", len(s.Webhooks), s.Problems)
	}

	db, _ = openTest(t, dir)
	for _, p := range []string{"E", "F"} {
		for i := range n {
			id := fmt.Sprintf("%s%05d", p, i)
			e, err := db.GetEvent(ctx, id)
			if err != nil {
				t.Fatalf("GetEvent(%s) after reopening with the current profile: %v", id, err)
			}
			if e.ResourceID != "r-"+id {
				t.Fatalf("GetEvent(%s).ResourceID = %q", id, e.ResourceID)
			}
		}
	}
}
