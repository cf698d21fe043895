package doclink_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// loadAll calls LoadKey on each store at once and returns the keys.
func loadAll(t *testing.T, stores []doclink.KeyStore) [][]byte {
	t.Helper()
	keys := make([][]byte, len(stores))
	errs := make([]error, len(stores))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			keys[i], errs[i] = doclink.LoadKey(context.Background(), s)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("LoadKey %d: %v", i, err)
		}
	}
	return keys
}

func oneKey(t *testing.T, keys [][]byte) []byte {
	t.Helper()
	for i, k := range keys {
		if len(k) != doclink.KeySize {
			t.Fatalf("LoadKey %d returned %d bytes, want %d", i, len(k), doclink.KeySize)
		}
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("LoadKey %d returned %x, LoadKey 0 %x: the racers disagree on the key", i, k, keys[0])
		}
	}
	return keys[0]
}

// Loads racing in one process on Badger make one key, and a restart of
// the store reads it back, so links survive restarts.
func TestLoadKeyRacingOnBadger(t *testing.T) {
	dir := t.TempDir()
	open := func() *store.DB {
		db, err := store.Open(store.Options{Dir: dir, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	stores := make([]doclink.KeyStore, 16)
	for i := range stores {
		stores[i] = db
	}
	k := oneKey(t, loadAll(t, stores))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	t.Cleanup(func() { _ = db.Close() })
	again, err := doclink.LoadKey(context.Background(), db)
	if err != nil || !bytes.Equal(again, k) {
		t.Fatalf("LoadKey after a restart = %x, %v; want the stored %x", again, err, k)
	}
}

// Nodes of a cluster starting at once (each its own connection pool on
// one PostgreSQL database) all sign with the same key.
func TestLoadKeyRacingNodesOnPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var stores []doclink.KeyStore
	for range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		db, err := pgstore.Open(ctx, pgstore.Options{URL: url, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		// Three racers per node, as several parts of a node could be.
		stores = append(stores, db, db, db)
	}
	k := oneKey(t, loadAll(t, stores))
	again, err := doclink.LoadKey(context.Background(), stores[len(stores)-1])
	if err != nil || !bytes.Equal(again, k) {
		t.Fatalf("a later LoadKey = %x, %v; want the stored %x", again, err, k)
	}
}

// A key too short to sign with is refused with a message naming the meta
// key, not silently replaced (which nodes racing would each do their own
// way).
func TestLoadKeyRefusesAShortKey(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.PutMeta(context.Background(), doclink.MetaKey, []byte("short")); err != nil {
		t.Fatal(err)
	}
	_, err = doclink.LoadKey(context.Background(), db)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(doclink.MetaKey)) {
		t.Fatalf("LoadKey over a 5-byte key = %v; want an error naming %s", err, doclink.MetaKey)
	}
}
