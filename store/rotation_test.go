package store

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
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

// The previous secret leaves the stored record itself (not only the
// decoded webhook) when its grace period ends, and at once when a
// rotation without grace replaces it; the conformance suite checks the
// rotation's behaviour.
func TestRotationErasesStoredSecrets(t *testing.T) {
	ctx := context.Background()
	db, clk := newDB(t)
	mustNil(t, db.CreateWebhook(ctx, webhook("w1", "u1", t0)))
	_, err := db.RotateSecret(ctx, "w1", newSecret, time.Hour)
	mustNil(t, err)
	clk.t = t0.Add(30 * time.Minute)
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

	// Grace 0 during a rotation: the leaked-secret case, replaced at once.
	mustNil(t, db.CreateWebhook(ctx, webhook("w2", "u1", t0)))
	_, err = db.RotateSecret(ctx, "w2", newSecret, time.Hour)
	mustNil(t, err)
	const third = "third-secret-third-secret-third-secret"
	_, err = db.RotateSecret(ctx, "w2", third, 0)
	mustNil(t, err)
	raw = storedBytes(t, db, "w2")
	if bytes.Contains(raw, []byte(oldSecret)) || bytes.Contains(raw, []byte(newSecret)) || !bytes.Contains(raw, []byte(third)) {
		t.Fatalf("earlier secrets still stored: %s", raw)
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
