package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, url string, c storetest.Config) *pgstore.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgstore.Open(ctx, pgstore.Options{
		URL:       url,
		Logger:    zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Retention: c.Retention,
		Now:       c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// The PostgreSQL store meets the storage contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, c storetest.Config) rswebhooks.Store {
		return open(t, pgtest.NewDatabase(t), c)
	})
}
