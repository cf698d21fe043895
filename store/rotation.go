package store

import (
	"context"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
)

// RotateSecret makes secret the webhook's secret. With a positive grace the
// current secret is kept as Rotation.PreviousSecret until now+grace, so
// both sign notifications meanwhile; that fails with an error wrapping
// rswebhooks.ErrRotationInProgress while another grace period runs. A grace
// of 0 replaces the secret at once and ends any rotation (for a secret that
// leaked). It returns the stored webhook, or ErrNotFound.
func (db *DB) RotateSecret(ctx context.Context, id, secret string, grace time.Duration) (*rswebhooks.Webhook, error) {
	if secret == "" || grace < 0 {
		return nil, fmt.Errorf("store: rotate secret of %s: a secret and a grace of 0 or more are required", id)
	}
	var w rswebhooks.Webhook
	err := db.webhookUpdate(ctx, "rotate secret of "+id, func(txn *badger.Txn) error {
		w = rswebhooks.Webhook{}
		if err := getJSON(txn, webhookKey(id), &w); err != nil {
			return err
		}
		if err := w.StartRotation(secret, grace, db.now().UTC()); err != nil {
			return err
		}
		return putWebhook(txn, &w)
	})
	if err != nil {
		return nil, err
	}
	if w.Rotation != nil {
		db.noteRotationEnd(w.Rotation.GraceUntilUTC)
	}
	return &w, nil
}

// PromoteRotation makes ms-signature use the new secret before the grace
// period ends, and when uri is not empty also makes it the WebHookUri in
// the same write (so a receiver that keys its secret by URL never sees the
// new secret at the old URL, nor the old one at the new). webhook-signature
// keeps both signatures until the grace period ends. It fails with an
// error wrapping rswebhooks.ErrNoRotation when no grace period runs.
func (db *DB) PromoteRotation(ctx context.Context, id, uri string) (*rswebhooks.Webhook, error) {
	var w rswebhooks.Webhook
	err := db.webhookUpdate(ctx, "promote rotation of "+id, func(txn *badger.Txn) error {
		w = rswebhooks.Webhook{}
		if err := getJSON(txn, webhookKey(id), &w); err != nil {
			return err
		}
		now := db.now().UTC()
		if !w.Rotation.Active(now) {
			return fmt.Errorf("webhook %s: %w", id, rswebhooks.ErrNoRotation)
		}
		w.Rotation.Promoted = true
		if uri != "" {
			w.URI = uri
		}
		w.UpdatedUTC = now
		return putWebhook(txn, &w)
	})
	if err != nil {
		return nil, err
	}
	return &w, nil
}

// EndRotations erases the previous secret of every webhook whose grace
// period is over and returns their ids. Run calls it when the earliest
// known grace period ends; it is safe to call at any time.
func (db *DB) EndRotations(ctx context.Context) ([]string, error) {
	var ended []string
	var next time.Time
	err := db.webhookUpdate(ctx, "end secret rotations", func(txn *badger.Txn) error {
		ended, next = ended[:0], time.Time{}
		now := db.now()
		var due []*rswebhooks.Webhook
		err := eachValue(txn, []byte(pWebhook), func(k, v []byte) error {
			w := new(rswebhooks.Webhook)
			if err := jsonUnmarshal(k, v, w); err != nil {
				return db.skipUnreadable(err)
			}
			switch {
			case w.Rotation == nil:
			case w.Rotation.Active(now):
				if next.IsZero() || w.Rotation.GraceUntilUTC.Before(next) {
					next = w.Rotation.GraceUntilUTC
				}
			default:
				due = append(due, w)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, w := range due {
			w.Rotation = nil
			if err := putWebhook(txn, w); err != nil {
				return err
			}
			ended = append(ended, w.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	db.setRotationEnd(next)
	for _, id := range ended {
		db.log.Info().Str("webhook_id", id).Msg("secret rotation ended: previous secret erased")
	}
	return ended, nil
}

// noteRotationEnd lowers the time of the next EndRotations pass to at.
func (db *DB) noteRotationEnd(at time.Time) {
	ns := at.UnixNano()
	for {
		cur := db.rotationEnd.Load()
		if cur != 0 && cur <= ns {
			return
		}
		if db.rotationEnd.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// setRotationEnd sets the time of the next EndRotations pass (zero: none
// known) after a full pass, unless a rotation begun meanwhile ends sooner.
func (db *DB) setRotationEnd(at time.Time) {
	db.rotationEnd.Store(0)
	if !at.IsZero() {
		db.noteRotationEnd(at)
	}
}

// rotationsDue reports whether a grace period is known to have ended.
func (db *DB) rotationsDue() bool {
	ns := db.rotationEnd.Load()
	return ns != 0 && db.now().UnixNano() >= ns
}
