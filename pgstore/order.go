package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
)

// OrderHead returns the first pending delivery of the webhook in event
// order (event id, then delivery id); ok is false when none is pending.
func (db *DB) OrderHead(ctx context.Context, webhookID string) (rswebhooks.DueRef, bool, error) {
	r := rswebhooks.DueRef{WebhookID: webhookID}
	err := db.pool.QueryRow(ctx, `SELECT id, next_at FROM deliveries WHERE webhook_id = $1 AND state = 'pending'
		ORDER BY event_id, id LIMIT 1`, webhookID).Scan(&r.ID, &r.Due)
	if errors.Is(err, pgx.ErrNoRows) {
		return rswebhooks.DueRef{}, false, nil
	}
	if err != nil {
		return rswebhooks.DueRef{}, false, fmt.Errorf("pgstore: order head of %s: %w", webhookID, err)
	}
	r.Due = r.Due.UTC()
	return r, true, nil
}

// HoldDelivery moves a pending delivery due before until to until, with
// reason, and reports whether it moved it.
func (db *DB) HoldDelivery(ctx context.Context, id string, until time.Time, reason string) (bool, error) {
	return db.reschedule(ctx, "hold", id, until, func(d *rswebhooks.Delivery) bool { return d.NextUTC.Before(until) }, reason)
}

// ReleaseDelivery brings a pending delivery held with reason and due after
// now forward to now, clearing the reason, and reports whether it did.
func (db *DB) ReleaseDelivery(ctx context.Context, id string, now time.Time, reason string) (bool, error) {
	moved, err := db.reschedule(ctx, "release", id, now, func(d *rswebhooks.Delivery) bool {
		return d.Reason == reason && d.NextUTC.After(now)
	}, "")
	if moved {
		db.notifyDue(ctx)
	}
	return moved, err
}

func (db *DB) reschedule(ctx context.Context, op, id string, at time.Time, move func(*rswebhooks.Delivery) bool, reason string) (bool, error) {
	moved := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		moved = false
		var s storedDelivery
		err := s.scan(tx.QueryRow(ctx, `SELECT `+deliveryCols+` WHERE d.id = $1 FOR UPDATE OF d`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("delivery", id)
		}
		if err != nil {
			return err
		}
		d, err := s.decode()
		if err != nil {
			return err
		}
		if d.State != rswebhooks.DeliveryPending || !move(d) {
			return nil
		}
		d.NextUTC, d.Reason, d.UpdatedUTC = at.UTC(), reason, db.now().UTC()
		r, err := db.rowOf(d)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries d SET next_at = $2, record = $3, `+keepOwnEvent+` WHERE d.id = $1`,
			id, r.next, r.record); err != nil {
			return err
		}
		moved = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: %s delivery %s: %w", op, id, err)
	}
	return moved, nil
}

// EventDeliveries returns the deliveries made for an event, oldest first.
func (db *DB) EventDeliveries(ctx context.Context, eventID string) ([]*rswebhooks.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryCols+`
		WHERE d.event_id = $1 AND (d.expires_at IS NULL OR d.expires_at > $2) ORDER BY d.id`, eventID, db.now())
	if err != nil {
		return nil, fmt.Errorf("pgstore: deliveries of event %s: %w", eventID, err)
	}
	out, err := readDeliveries(rows, db.log)
	if err != nil {
		return nil, fmt.Errorf("pgstore: deliveries of event %s: %w", eventID, err)
	}
	return out, nil
}

// PutDeliveries stores new deliveries (a replay) in one statement and
// returns how many it wrote; an id that exists is ErrConflict and nothing
// is written.
func (db *DB) PutDeliveries(ctx context.Context, ds []*rswebhooks.Delivery) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for i, d := range ds {
			if err := rswebhooks.CheckStoredDelivery(d); err != nil {
				return fmt.Errorf("delivery %d: %w", i, err)
			}
			r, err := db.ownRowOf(d)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, insertOwnDelivery, r.id, r.webhook, r.event, r.state, r.next, r.expires, r.record, r.own)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("delivery %s: %w", d.ID, rswebhooks.ErrConflict)
			}
		}
		n = len(ds)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: put deliveries: %w", err)
	}
	if dueNow(db.now(), ds...) {
		db.notifyDue(ctx)
	}
	return n, nil
}

// ScanEvents calls fn with the stored events whose ids lie in [from, to)
// ("" leaves that end open), newest first when newestFirst is set, else
// oldest first, until fn returns false or an error (returned as is).
func (db *DB) ScanEvents(ctx context.Context, from, to string, newestFirst bool, fn func(*rswebhooks.Event) (bool, error)) error {
	order := "ASC"
	if newestFirst {
		order = "DESC"
	}
	const page = 256
	var after *string
	for {
		q := `SELECT id, body FROM events WHERE id >= $1 AND ($2 = '' OR id < $2)
			AND (expires_at IS NULL OR expires_at > $3)`
		args := []any{from, to, db.now()}
		if after != nil {
			if newestFirst {
				q += ` AND id < $4`
			} else {
				q += ` AND id > $4`
			}
			args = append(args, *after)
		}
		q += ` ORDER BY id ` + order + ` LIMIT ` + fmt.Sprint(page)
		evs, err := db.queryEvents(ctx, "scan events", q, args...)
		if err != nil {
			return err
		}
		for _, e := range evs {
			more, err := fn(e)
			if err != nil || !more {
				return err
			}
		}
		if len(evs) < page {
			return nil
		}
		last := evs[len(evs)-1].ID
		after = &last
	}
}
