package store

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

const (
	oldSecret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t"
	newSecret = "n3w-s3cr3t-n3w-s3cr3t-n3w-s3cr3t-n3w"
)

// storedBytes reads a webhook's record as stored, without decoding it.
func storedBytes(t *testing.T, db *DB, id string) []byte {
	t.Helper()
	var raw []byte
	mustNil(t, db.view(context.Background(), "read raw", func(txn *badger.Txn) error {
		var err error
		raw, err = getRaw(txn, webhookKey(id))
		return err
	}))
	return raw
}

func TestRotateSecretLifecycle(t *testing.T) {
	ctx := context.Background()
	db, clk := newDB(t)
	mustNil(t, db.CreateWebhook(ctx, webhook("w1", "u1", t0)))

	if _, err := db.PromoteRotation(ctx, "w1", ""); !errors.Is(err, rswebhooks.ErrNoRotation) {
		t.Fatalf("promote without rotation: got %v, want ErrNoRotation", err)
	}
	w, err := db.RotateSecret(ctx, "w1", newSecret, time.Hour)
	mustNil(t, err)
	if w.Secret != newSecret || w.Rotation == nil || w.Rotation.PreviousSecret != oldSecret ||
		!w.Rotation.GraceUntilUTC.Equal(t0.Add(time.Hour)) || w.Rotation.Promoted {
		t.Fatalf("after rotate: %+v %+v", w, w.Rotation)
	}
	if _, err := db.RotateSecret(ctx, "w1", "another-secret-another-secret-another", time.Hour); !errors.Is(err, rswebhooks.ErrRotationInProgress) {
		t.Fatalf("second rotation during grace: got %v, want ErrRotationInProgress", err)
	}

	// A PUT that keeps the secret keeps the rotation; Rotation in the
	// input is ignored.
	upd := webhook("w1", "u1", t0)
	upd.Secret, upd.Description = newSecret, "edited"
	upd.Rotation = &rswebhooks.Rotation{PreviousSecret: "forged-forged-forged-forged-forged"}
	mustNil(t, db.UpdateWebhook(ctx, upd))
	got, err := db.GetWebhook(ctx, "w1")
	mustNil(t, err)
	if got.Rotation == nil || got.Rotation.PreviousSecret != oldSecret || got.Description != "edited" {
		t.Fatalf("update with the same secret: rotation %+v", got.Rotation)
	}

	clk.t = t0.Add(30 * time.Minute)
	const newURI = "http://127.0.0.1/hook/b"
	w, err = db.PromoteRotation(ctx, "w1", newURI)
	mustNil(t, err)
	if !w.Rotation.Promoted || w.URI != newURI {
		t.Fatalf("after promote: uri %s rotation %+v", w.URI, w.Rotation)
	}
	if std, ms := w.SigningSecrets(clk.t); ms != newSecret || len(std) != 2 || std[0] != newSecret || std[1] != oldSecret {
		t.Fatalf("signing secrets after promote: %q %q", std, ms)
	}

	// Before the end nothing is erased.
	ended, err := db.EndRotations(ctx)
	mustNil(t, err)
	if len(ended) != 0 || !bytes.Contains(storedBytes(t, db, "w1"), []byte(oldSecret)) {
		t.Fatalf("ended %v before the grace period was over", ended)
	}
	clk.t = t0.Add(time.Hour)
	ended, err = db.EndRotations(ctx)
	mustNil(t, err)
	if len(ended) != 1 || ended[0] != "w1" {
		t.Fatalf("ended = %v, want [w1]", ended)
	}
	raw := storedBytes(t, db, "w1")
	if bytes.Contains(raw, []byte(oldSecret)) || bytes.Contains(raw, []byte("Rotation")) {
		t.Fatalf("stored record still holds the previous secret: %s", raw)
	}
	if !bytes.Contains(raw, []byte(newSecret)) {
		t.Fatalf("stored record lost the new secret: %s", raw)
	}
	// After the end a new rotation may begin.
	_, err = db.RotateSecret(ctx, "w1", oldSecret, time.Hour)
	mustNil(t, err)
}

func TestRotateSecretWithoutGraceAndPutEndRotation(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	mustNil(t, db.CreateWebhook(ctx, webhook("w1", "u1", t0)))
	_, err := db.RotateSecret(ctx, "w1", newSecret, time.Hour)
	mustNil(t, err)
	// Grace 0 during a rotation: the leaked-secret case, replaced at once.
	const third = "third-secret-third-secret-third-secret"
	w, err := db.RotateSecret(ctx, "w1", third, 0)
	mustNil(t, err)
	if w.Rotation != nil || w.Secret != third {
		t.Fatalf("rotation without grace: secret %q rotation %+v", w.Secret, w.Rotation)
	}
	raw := storedBytes(t, db, "w1")
	if bytes.Contains(raw, []byte(oldSecret)) || bytes.Contains(raw, []byte(newSecret)) {
		t.Fatalf("earlier secrets still stored: %s", raw)
	}

	// A PUT with another secret ends a rotation.
	_, err = db.RotateSecret(ctx, "w1", newSecret, time.Hour)
	mustNil(t, err)
	upd := webhook("w1", "u1", t0) // carries oldSecret
	mustNil(t, db.UpdateWebhook(ctx, upd))
	got, err := db.GetWebhook(ctx, "w1")
	mustNil(t, err)
	if got.Rotation != nil || got.Secret != oldSecret {
		t.Fatalf("PUT with another secret: secret %q rotation %+v", got.Secret, got.Rotation)
	}
	if _, err := db.RotateSecret(ctx, "nope", newSecret, time.Hour); !errors.Is(err, rswebhooks.ErrNotFound) {
		t.Fatalf("rotate unknown: %v", err)
	}
}

// atomicClock is a store clock a test moves while Run reads it.
type atomicClock struct{ ns atomic.Int64 }

func (c *atomicClock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func TestRunErasesPreviousSecretWhenGraceEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := &atomicClock{}
	clk.ns.Store(t0.UnixNano())
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.Now = clk.Now
		o.CheckInterval = 5 * time.Millisecond
	})
	mustNil(t, db.CreateWebhook(ctx, webhook("w1", "u1", t0)))
	mustNil(t, db.CreateWebhook(ctx, webhook("w2", "u1", t0)))
	_, err := db.RotateSecret(ctx, "w1", newSecret, time.Hour)
	mustNil(t, err)
	_, err = db.RotateSecret(ctx, "w2", newSecret, 2*time.Hour)
	mustNil(t, err)
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()
	defer func() { cancel(); <-done }()

	clk.ns.Store(t0.Add(time.Hour).UnixNano())
	waitStored(t, db, "w1", func(raw []byte) bool { return !bytes.Contains(raw, []byte(oldSecret)) })
	if !bytes.Contains(storedBytes(t, db, "w2"), []byte(oldSecret)) {
		t.Fatal("w2's previous secret was erased before its grace period ended")
	}
	clk.ns.Store(t0.Add(2 * time.Hour).UnixNano())
	waitStored(t, db, "w2", func(raw []byte) bool { return !bytes.Contains(raw, []byte(oldSecret)) })
}

// waitStored polls a stored record until cond holds, for at most 10 s.
func waitStored(t *testing.T, db *DB, id string, cond func([]byte) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(storedBytes(t, db, id)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the stored record of %s: %s", id, storedBytes(t, db, id))
		}
		<-time.After(5 * time.Millisecond)
	}
}
