package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/pgstore"
)

// Run erases the previous secret once a rotation's grace period is over.
func TestRunEndsRotations(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	var mu sync.Mutex
	clock, reads := t0, 0
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); reads++; return clock }
	readsSoFar := func() int { mu.Lock(); defer mu.Unlock(); return reads }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := pgstore.Open(ctx, pgstore.Options{
		URL:               pgtest.NewDatabase(t),
		Logger:            zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		RetentionInterval: 20 * time.Millisecond,
		Now:               now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	w := &rswebhooks.Webhook{ID: "W1", URI: "http://127.0.0.1/hook", Secret: "old-secret-old-secret-old-secret",
		Filters: []string{"*"}, User: rswebhooks.User{ID: "u1", Name: "u1"}, CreatedUTC: t0, UpdatedUTC: t0}
	if err := db.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RotateSecret(ctx, "W1", "new-secret-new-secret-new-secret", time.Hour); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	before := readsSoFar()
	go func() { done <- db.Run(ctx) }()
	// Each pass of Run reads the clock (expiry, then rotations): several
	// reads mean passes ran during the grace period.
	deadline := time.Now().Add(10 * time.Second)
	for readsSoFar() < before+4 {
		if time.Now().After(deadline) {
			t.Fatal("Run made no passes within 10 s")
		}
		<-time.After(20 * time.Millisecond)
	}
	if got, err := db.GetWebhook(ctx, "W1"); err != nil || got.Rotation == nil {
		t.Fatalf("during the grace period: rotation %+v, %v", got, err)
	}
	mu.Lock()
	clock = t0.Add(time.Hour)
	mu.Unlock()
	deadline = time.Now().Add(10 * time.Second)
	for {
		got, err := db.GetWebhook(ctx, "W1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Rotation == nil {
			if got.Secret != "new-secret-new-secret-new-secret" {
				t.Fatalf("secret after the rotation = %q", got.Secret)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not end the rotation within 10 s")
		}
		<-time.After(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
