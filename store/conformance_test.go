package store_test

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

// The Badger store meets the storage contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, c storetest.Config) rswebhooks.Store {
		db, err := store.Open(store.Options{
			Dir:       t.TempDir(),
			Logger:    zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
			Retention: c.Retention,
			Now:       c.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	})
}
