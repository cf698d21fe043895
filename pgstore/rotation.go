package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
		return nil, fmt.Errorf("pgstore: rotate secret of %s: a secret and a grace of 0 or more are required", id)
	}
	var w *rswebhooks.Webhook
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		var err error
		if w, err = lockWebhook(ctx, tx, id); err != nil {
			return err
		}
		if err := w.StartRotation(secret, grace, db.now().UTC()); err != nil {
			return err
		}
		return updateWebhook(ctx, tx, w)
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: rotate secret of %s: %w", id, err)
	}
	return w, nil
}

// PromoteRotation makes ms-signature use the new secret before the grace
// period ends, and when uri is not empty also makes it the WebHookUri in
// the same write. webhook-signature keeps both signatures until the grace
// period ends. It fails with an error wrapping rswebhooks.ErrNoRotation
// when no grace period runs.
func (db *DB) PromoteRotation(ctx context.Context, id, uri string) (*rswebhooks.Webhook, error) {
	var w *rswebhooks.Webhook
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		var err error
		if w, err = lockWebhook(ctx, tx, id); err != nil {
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
		return updateWebhook(ctx, tx, w)
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: promote rotation of %s: %w", id, err)
	}
	return w, nil
}

// rotatingWebhooks selects the webhooks that hold a rotation (few: one is
// added by RotateSecret and erased when its grace period ends).
const rotatingWebhooks = `FROM webhooks WHERE convert_from(body, 'UTF8')::jsonb ? 'Rotation'`

// EndRotations erases the previous secret of every webhook whose grace
// period is over and returns their ids. Run calls it every
// RetentionInterval; it is safe to call at any time, from any node.
func (db *DB) EndRotations(ctx context.Context) ([]string, error) {
	due, err := db.rotationsDue(ctx)
	if err != nil || !due {
		return nil, err
	}
	var ended []string
	err = db.webhookWrite(ctx, func(tx pgx.Tx) error {
		ended = ended[:0]
		rows, err := tx.Query(ctx, "SELECT id, body "+rotatingWebhooks+" ORDER BY id FOR UPDATE")
		if err != nil {
			return err
		}
		ws, err := readWebhooks(rows, db.log)
		if err != nil {
			return err
		}
		now := db.now()
		var due []*rswebhooks.Webhook
		for _, w := range ws {
			if w.Rotation != nil && !w.Rotation.Active(now) {
				due = append(due, w)
			}
		}
		for _, w := range due {
			w.Rotation = nil
			if err := updateWebhook(ctx, tx, w); err != nil {
				return err
			}
			ended = append(ended, w.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: end secret rotations: %w", err)
	}
	for _, id := range ended {
		db.log.Info().Str("webhook_id", id).Msg("secret rotation ended: previous secret erased")
	}
	return ended, nil
}

// rotationsDue reports, without locking, whether a webhook's grace period
// is over, so that EndRotations writes (and wakes the other nodes' webhook
// caches) only when it has something to erase.
func (db *DB) rotationsDue(ctx context.Context) (bool, error) {
	rows, err := db.pool.Query(ctx, "SELECT body "+rotatingWebhooks)
	if err != nil {
		return false, fmt.Errorf("pgstore: end secret rotations: %w", err)
	}
	defer rows.Close()
	now := db.now()
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return false, fmt.Errorf("pgstore: end secret rotations: %w", err)
		}
		var w rswebhooks.Webhook
		if json.Unmarshal(body, &w) == nil && w.Rotation != nil && !w.Rotation.Active(now) {
			return true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("pgstore: end secret rotations: %w", err)
	}
	return false, nil
}
