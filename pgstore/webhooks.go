package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

// webhookWrite runs fn in a transaction that also notifies every node of a
// webhook change, and bumps the local version after it (also after a
// failure; a spurious bump only costs a re-read).
func (db *DB) webhookWrite(ctx context.Context, fn func(tx pgx.Tx) error) error {
	defer db.webhooksVersion.Add(1)
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", chanWebhooks, db.self)
		return err
	})
}

func putWebhookArgs(w *rswebhooks.Webhook) ([]any, error) {
	body, err := recjson.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode webhook %s: %w", w.ID, err)
	}
	return []any{w.ID, w.User.ID, w.CreatedUTC, w.IsPaused, w.OwnerMissing, body}, nil
}

// CreateWebhook stores a new webhook; ErrConflict if the id exists.
func (db *DB) CreateWebhook(ctx context.Context, w *rswebhooks.Webhook) error {
	if err := rswebhooks.CheckStoredWebhook(w); err != nil {
		return fmt.Errorf("pgstore: create webhook: %w", err)
	}
	args, err := putWebhookArgs(w)
	if err != nil {
		return fmt.Errorf("pgstore: create webhook: %w", err)
	}
	err = db.webhookWrite(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO webhooks (id, owner_id, created_utc, paused, owner_missing, body)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("webhook %s: %w", w.ID, rswebhooks.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: create webhook: %w", err)
	}
	return nil
}

// lockWebhook reads a webhook FOR UPDATE in tx.
func lockWebhook(ctx context.Context, tx pgx.Tx, id string) (*rswebhooks.Webhook, error) {
	var body []byte
	err := tx.QueryRow(ctx, "SELECT body FROM webhooks WHERE id = $1 FOR UPDATE", id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("webhook", id)
	}
	if err != nil {
		return nil, err
	}
	return decodeWebhook(id, body)
}

func updateWebhook(ctx context.Context, tx pgx.Tx, w *rswebhooks.Webhook) error {
	args, err := putWebhookArgs(w)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE webhooks SET owner_id = $2, created_utc = $3, paused = $4, owner_missing = $5, body = $6
		WHERE id = $1`, args...)
	return err
}

// UpdateWebhook replaces a stored webhook (ErrNotFound if absent).
func (db *DB) UpdateWebhook(ctx context.Context, w *rswebhooks.Webhook) error {
	if err := rswebhooks.CheckStoredWebhook(w); err != nil {
		return fmt.Errorf("pgstore: update webhook: %w", err)
	}
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		old, err := lockWebhook(ctx, tx, w.ID)
		if err != nil {
			return err
		}
		w.KeepStored(old)
		return updateWebhook(ctx, tx, w)
	})
	if err != nil {
		return fmt.Errorf("pgstore: update webhook %s: %w", w.ID, err)
	}
	return nil
}

// GetWebhook returns the webhook or ErrNotFound.
func (db *DB) GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error) {
	var body []byte
	err := db.pool.QueryRow(ctx, "SELECT body FROM webhooks WHERE id = $1", id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: %w", notFound("webhook", id))
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: get webhook %s: %w", id, err)
	}
	w, err := decodeWebhook(id, body)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return w, nil
}

// ListWebhooks returns the webhooks of ownerID ("" = everyone's), oldest
// first. A record that cannot be decoded is logged and skipped.
func (db *DB) ListWebhooks(ctx context.Context, ownerID string) ([]*rswebhooks.Webhook, error) {
	q := "SELECT id, body FROM webhooks ORDER BY created_utc, id"
	args := []any{}
	if ownerID != "" {
		q = "SELECT id, body FROM webhooks WHERE owner_id = $1 ORDER BY created_utc, id"
		args = append(args, ownerID)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list webhooks: %w", err)
	}
	out, err := readWebhooks(rows, db.log)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes a webhook or returns ErrNotFound.
func (db *DB) DeleteWebhook(ctx context.Context, id string) error {
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM webhooks WHERE id = $1", id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("webhook", id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete webhook: %w", err)
	}
	return nil
}

// DeleteWebhooksOf removes every webhook of ownerID and returns how many.
func (db *DB) DeleteWebhooksOf(ctx context.Context, ownerID string) (int, error) {
	if err := rswebhooks.CheckStoreID("ownerID", ownerID); err != nil {
		return 0, fmt.Errorf("pgstore: delete webhooks of owner: %w", err)
	}
	var n int64
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM webhooks WHERE owner_id = $1", ownerID)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: delete webhooks of %s: %w", ownerID, err)
	}
	return int(n), nil
}

// SetPaused sets IsPaused (and UpdatedUTC when it changes) or returns
// ErrNotFound.
func (db *DB) SetPaused(ctx context.Context, id string, paused bool) error {
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		w, err := lockWebhook(ctx, tx, id)
		if err != nil || w.IsPaused == paused {
			return err
		}
		w.IsPaused = paused
		w.UpdatedUTC = db.now().UTC()
		return updateWebhook(ctx, tx, w)
	})
	if err != nil {
		return fmt.Errorf("pgstore: set paused %s: %w", id, err)
	}
	return nil
}

// SetOwnerMissing sets OwnerMissing on every webhook of ownerID and
// returns the ids of those it changed.
func (db *DB) SetOwnerMissing(ctx context.Context, ownerID string, missing bool) ([]string, error) {
	var changed []string
	err := db.webhookWrite(ctx, func(tx pgx.Tx) error {
		changed = changed[:0]
		rows, err := tx.Query(ctx, `SELECT id, body FROM webhooks WHERE owner_id = $1 AND owner_missing <> $2
			ORDER BY id FOR UPDATE`, ownerID, missing)
		if err != nil {
			return err
		}
		ws, err := readWebhooks(rows, db.log)
		if err != nil {
			return err
		}
		for _, w := range ws {
			w.OwnerMissing = missing
			if err := updateWebhook(ctx, tx, w); err != nil {
				return err
			}
			changed = append(changed, w.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: set owner missing of %s: %w", ownerID, err)
	}
	return changed, nil
}

// CountWebhooks counts webhooks by state.
func (db *DB) CountWebhooks(ctx context.Context) (rswebhooks.WebhookCounts, error) {
	var c rswebhooks.WebhookCounts
	err := db.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE NOT paused AND NOT owner_missing),
		count(*) FILTER (WHERE paused),
		count(*) FILTER (WHERE NOT paused AND owner_missing)
		FROM webhooks`).Scan(&c.Active, &c.Paused, &c.OwnerMissing)
	if err != nil {
		return c, fmt.Errorf("pgstore: count webhooks: %w", err)
	}
	return c, nil
}

// isUniqueViolation reports a unique_violation (23505).
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
