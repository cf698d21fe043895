package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
)

// notifyDue tells every node that deliveries are due, and this one at once.
func (db *DB) notifyDue(ctx context.Context) {
	db.signalDue()
	if _, err := db.pool.Exec(ctx, "SELECT pg_notify($1, $2)", chanDue, db.self); err != nil && ctx.Err() == nil {
		db.log.Warn().Err(err).Msg("notifying other nodes of due deliveries failed; they find them on their next poll")
	}
}

// PutDelivery stores a new delivery; ErrConflict if the id exists.
func (db *DB) PutDelivery(ctx context.Context, d *rswebhooks.Delivery) error {
	if err := checkDelivery(d); err != nil {
		return fmt.Errorf("pgstore: put delivery: %w", err)
	}
	r, err := db.rowOf(d)
	if err != nil {
		return fmt.Errorf("pgstore: put delivery: %w", err)
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO deliveries (id, webhook_id, event_id, state, next_at, expires_at, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		r.id, r.webhook, r.event, r.state, r.next, r.expires, r.body)
	if err != nil {
		return fmt.Errorf("pgstore: put delivery %s: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: put delivery: delivery %s: %w", d.ID, rswebhooks.ErrConflict)
	}
	if dueNow(db.now(), d) {
		db.notifyDue(ctx)
	}
	return nil
}

func decodeDelivery(id string, body []byte) (*rswebhooks.Delivery, error) {
	d := new(rswebhooks.Delivery)
	if err := json.Unmarshal(body, d); err != nil {
		return nil, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return d, nil
}

// GetDelivery returns the delivery or ErrNotFound (also once it expired).
func (db *DB) GetDelivery(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	var body []byte
	err := db.pool.QueryRow(ctx, `SELECT body FROM deliveries WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)`,
		id, db.now()).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: %w", notFound("delivery", id))
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: get delivery %s: %w", id, err)
	}
	d, err := decodeDelivery(id, body)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return d, nil
}

// ListDeliveries returns up to limit deliveries of a webhook, newest first.
func (db *DB) ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*rswebhooks.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, body FROM deliveries
		WHERE webhook_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC LIMIT $3`,
		webhookID, db.now(), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("pgstore: list deliveries of %s: %w", webhookID, err)
	}
	out, err := readDeliveries(rows, db.log)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list deliveries of %s: %w", webhookID, err)
	}
	return out, nil
}

// scanPage is how many queue rows ScanDue reads per query.
const scanPage = 256

// ScanDue calls fn with each pending, unleased delivery due at or before
// now, in due order, with the number of leases its webhook holds.
func (db *DB) ScanDue(ctx context.Context, now time.Time, max int, fn func(rswebhooks.DueRef) bool) error {
	return db.scanDue(ctx, now, nil, max, fn)
}

// ScanDueAfter is ScanDue resumed past after (due time, then id).
func (db *DB) ScanDueAfter(ctx context.Context, now time.Time, after rswebhooks.DueRef, max int, fn func(rswebhooks.DueRef) bool) error {
	return db.scanDue(ctx, now, &after, max, fn)
}

func (db *DB) scanDue(ctx context.Context, now time.Time, after *rswebhooks.DueRef, max int, fn func(rswebhooks.DueRef) bool) error {
	n := 0
	var afterAt time.Time
	afterID := ""
	first := after == nil
	if after != nil {
		afterAt, afterID = after.Due, after.ID
	}
	for {
		page := scanPage
		if max > 0 {
			page = min(page, max-n)
		}
		rows, err := db.pool.Query(ctx, `
WITH due AS (
	SELECT id, webhook_id, next_at FROM deliveries
	 WHERE state = 'pending' AND next_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
	   AND ($2 OR (next_at, id) > ($3, $4))
	 ORDER BY next_at, id LIMIT $5
), leased AS (
	SELECT webhook_id, count(*) AS n FROM deliveries
	 WHERE lease_until > $1 AND webhook_id IN (SELECT webhook_id FROM due) GROUP BY webhook_id
)
SELECT due.id, due.webhook_id, due.next_at, coalesce(leased.n, 0)
  FROM due LEFT JOIN leased USING (webhook_id) ORDER BY due.next_at, due.id`,
			now, first, afterAt, afterID, page)
		if err != nil {
			return fmt.Errorf("pgstore: due deliveries: %w", err)
		}
		var refs []rswebhooks.DueRef
		for rows.Next() {
			var r rswebhooks.DueRef
			if err := rows.Scan(&r.ID, &r.WebhookID, &r.Due, &r.Leased); err != nil {
				rows.Close()
				return fmt.Errorf("pgstore: due deliveries: %w", err)
			}
			r.Due = r.Due.UTC()
			refs = append(refs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pgstore: due deliveries: %w", err)
		}
		for _, r := range refs {
			n++
			if !fn(r) || (max > 0 && n >= max) {
				return nil
			}
		}
		if len(refs) < page {
			return nil
		}
		last := refs[len(refs)-1]
		afterAt, afterID, first = last.Due, last.ID, false
	}
}

// NextDue returns the earliest time a pending delivery is due, or for a
// leased one, when its lease ends.
func (db *DB) NextDue(ctx context.Context) (time.Time, bool, error) {
	now := db.now()
	var free, lease *time.Time
	err := db.pool.QueryRow(ctx, `SELECT
		(SELECT next_at FROM deliveries WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= $1)
		  ORDER BY next_at, id LIMIT 1),
		(SELECT min(greatest(next_at, lease_until)) FROM deliveries WHERE lease_until > $1 AND state = 'pending')`,
		now).Scan(&free, &lease)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("pgstore: next due: %w", err)
	}
	switch {
	case free == nil && lease == nil:
		return time.Time{}, false, nil
	case free == nil:
		return lease.UTC(), true, nil
	case lease == nil || free.Before(*lease):
		return free.UTC(), true, nil
	}
	return lease.UTC(), true, nil
}

// QueueStats counts pending deliveries and gives the earliest due time.
func (db *DB) QueueStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest *time.Time
	err := db.pool.QueryRow(ctx, `SELECT count(*), min(next_at) FROM deliveries WHERE state = 'pending'`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("pgstore: queue stats: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, oldest.UTC(), nil
}

func checkLease(req rswebhooks.LeaseRequest) error {
	if req.Holder == "" {
		return errors.New("LeaseRequest.Holder is required")
	}
	if req.For <= 0 {
		return fmt.Errorf("LeaseRequest.For must be positive, got %s", req.For)
	}
	if req.PerWebhook < 0 {
		return fmt.Errorf("LeaseRequest.PerWebhook must not be negative, got %d", req.PerWebhook)
	}
	return nil
}

// leaseRefusals explains rswebhooks_lease's results other than ok.
var leaseRefusals = map[string]string{
	"locked": "another node is leasing it",
	"state":  "not pending",
	"due":    "not due yet",
	"leased": "leased by another holder",
	"busy":   "its webhook is at its concurrency limit",
}

// Lease leases a pending, due delivery (see the package doc).
func (db *DB) Lease(ctx context.Context, id string, now time.Time, req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	if err := checkLease(req); err != nil {
		return nil, fmt.Errorf("pgstore: lease delivery %s: %w", id, err)
	}
	var result string
	var body []byte
	err := db.pool.QueryRow(ctx, `SELECT result, body FROM rswebhooks_lease($1, $2, $3, $4, $5)`,
		id, now, req.Holder, now.Add(req.For), req.PerWebhook).Scan(&result, &body)
	if err != nil {
		return nil, fmt.Errorf("pgstore: lease delivery %s: %w", id, err)
	}
	switch result {
	case "ok":
		d, err := decodeDelivery(id, body)
		if err != nil {
			return nil, fmt.Errorf("pgstore: lease: %w", err)
		}
		return d, nil
	case "absent":
		return nil, fmt.Errorf("pgstore: lease: %w", notFound("delivery", id))
	}
	return nil, fmt.Errorf("pgstore: lease delivery %s: %s: %w", id, leaseRefusals[result], rswebhooks.ErrLeaseRefused)
}

// Release ends holder's lease of the delivery, if it holds one.
func (db *DB) Release(ctx context.Context, id, holder string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE deliveries SET lease_holder = NULL, lease_until = NULL
		WHERE id = $1 AND lease_holder = $2`, id, holder)
	if err != nil {
		return fmt.Errorf("pgstore: release delivery %s: %w", id, err)
	}
	if tag.RowsAffected() > 0 {
		db.notifyDue(ctx)
	}
	return nil
}

// Complete records attempt a and d's new state in one transaction and ends
// any lease of d.
func (db *DB) Complete(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt) error {
	if err := checkDelivery(d); err != nil {
		return fmt.Errorf("pgstore: complete delivery: %w", err)
	}
	var abody []byte
	if a != nil {
		if a.DeliveryID == "" {
			a.DeliveryID = d.ID
		}
		if a.DeliveryID != d.ID {
			return fmt.Errorf("pgstore: complete delivery %s: attempt DeliveryId is %q", d.ID, a.DeliveryID)
		}
		if a.N < 1 {
			return fmt.Errorf("pgstore: complete delivery %s: attempt number must be at least 1, got %d", d.ID, a.N)
		}
		var err error
		if abody, err = encode(a); err != nil {
			return fmt.Errorf("pgstore: complete delivery %s: encode attempt: %w", d.ID, err)
		}
	}
	r, err := db.rowOf(d)
	if err != nil {
		return fmt.Errorf("pgstore: complete delivery: %w", err)
	}
	notify := dueNow(db.now(), d)
	var updated int
	err = db.pool.QueryRow(ctx, `
WITH upd AS (
	UPDATE deliveries SET webhook_id = $2, event_id = $3, state = $4, next_at = $5, expires_at = $6, body = $7,
		lease_holder = NULL, lease_until = NULL
	 WHERE id = $1 RETURNING id
), att AS (
	INSERT INTO attempts (delivery_id, n, expires_at, body)
	SELECT id, $8, $9, $10 FROM upd WHERE $10::bytea IS NOT NULL
	ON CONFLICT (delivery_id, n) DO UPDATE SET expires_at = excluded.expires_at, body = excluded.body
	RETURNING 1
), note AS (
	SELECT pg_notify($12, $13) FROM upd WHERE $11 LIMIT 1
)
SELECT (SELECT count(*) FROM upd) + 0 * (SELECT count(*) FROM att) + 0 * (SELECT count(*) FROM note)`,
		r.id, r.webhook, r.event, r.state, r.next, r.expires, r.body, attemptN(a), db.expiry(), abody, notify, chanDue, db.self).Scan(&updated)
	if err != nil {
		return fmt.Errorf("pgstore: complete delivery %s: %w", d.ID, err)
	}
	if updated == 0 {
		return fmt.Errorf("pgstore: complete: %w", notFound("delivery", d.ID))
	}
	if notify {
		db.signalDue()
	}
	return nil
}

func attemptN(a *rswebhooks.Attempt) int {
	if a == nil {
		return 0
	}
	return a.N
}

// DiscardDelivery removes a delivery with its attempts, or ErrNotFound.
func (db *DB) DiscardDelivery(ctx context.Context, id string) error {
	tag, err := db.pool.Exec(ctx, "DELETE FROM deliveries WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("pgstore: discard delivery %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: discard: %w", notFound("delivery", id))
	}
	return nil
}

// Attempts returns the stored attempts of a delivery in attempt order.
func (db *DB) Attempts(ctx context.Context, deliveryID string) ([]*rswebhooks.Attempt, error) {
	rows, err := db.pool.Query(ctx, `SELECT n, body FROM attempts WHERE delivery_id = $1 AND expires_at > $2 ORDER BY n`,
		deliveryID, db.now())
	if err != nil {
		return nil, fmt.Errorf("pgstore: attempts of %s: %w", deliveryID, err)
	}
	defer rows.Close()
	var out []*rswebhooks.Attempt
	for rows.Next() {
		var n int
		var body []byte
		if err := rows.Scan(&n, &body); err != nil {
			return nil, fmt.Errorf("pgstore: attempts of %s: %w", deliveryID, err)
		}
		a := new(rswebhooks.Attempt)
		if err := json.Unmarshal(body, a); err != nil {
			db.log.Error().Err(err).Str("delivery_id", deliveryID).Int("attempt", n).Msg("stored attempt cannot be decoded; skipped")
			continue
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: attempts of %s: %w", deliveryID, err)
	}
	return out, nil
}

// Redeliver queues a finished delivery again, due at now (see
// rswebhooks.DeliveryStore.Redeliver).
func (db *DB) Redeliver(ctx context.Context, id string, now time.Time) (*rswebhooks.Delivery, error) {
	var d *rswebhooks.Delivery
	changed := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var body []byte
		err := tx.QueryRow(ctx, `SELECT body FROM deliveries WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2) FOR UPDATE`,
			id, db.now()).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("delivery", id)
		}
		if err != nil {
			return err
		}
		if d, err = decodeDelivery(id, body); err != nil {
			return err
		}
		if d.State == rswebhooks.DeliveryPending && !d.NextUTC.After(now) {
			return nil // already due
		}
		d.State = rswebhooks.DeliveryPending
		d.Reason = ""
		d.NextUTC = now.UTC()
		d.UpdatedUTC = now.UTC()
		r, err := db.rowOf(d)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = $2, next_at = $3, expires_at = NULL, body = $4 WHERE id = $1`,
			id, r.state, r.next, r.body); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: redeliver %s: %w", id, err)
	}
	if changed {
		db.notifyDue(ctx)
	}
	return d, nil
}

// UnreadableRecords is empty: PostgreSQL keeps values as written, and a
// value that cannot be decoded is logged where it is read.
func (db *DB) UnreadableRecords(context.Context) ([]rswebhooks.Unreadable, error) { return nil, nil }

// DeleteUnreadable removes one record by kind ("webhook", "event",
// "delivery", "attempt" with id "<deliveryID>.<n>") without decoding it.
func (db *DB) DeleteUnreadable(ctx context.Context, kind, id string) error {
	var q string
	args := []any{id}
	switch kind {
	case "webhook":
		return db.DeleteWebhook(ctx, id)
	case "event":
		q = "DELETE FROM events WHERE id = $1"
	case "delivery":
		q = "DELETE FROM deliveries WHERE id = $1"
	case "attempt":
		i := strings.LastIndexByte(id, '.')
		n, err := strconv.Atoi(id[i+1:])
		if i < 0 || err != nil {
			return fmt.Errorf("pgstore: delete unreadable attempt: id must be <deliveryId>.<n>, got %q", id)
		}
		q, args = "DELETE FROM attempts WHERE delivery_id = $1 AND n = $2", []any{id[:i], n}
	default:
		return fmt.Errorf("pgstore: delete unreadable: kind must be webhook, event, delivery or attempt, got %q", kind)
	}
	tag, err := db.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("pgstore: delete unreadable %s %s: %w", kind, id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: delete unreadable: %w", notFound(kind, id))
	}
	return nil
}
