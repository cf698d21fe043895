package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/recjson"
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
	if err := rswebhooks.CheckStoredDelivery(d); err != nil {
		return fmt.Errorf("pgstore: put delivery: %w", err)
	}
	r, err := db.ownRowOf(d)
	if err != nil {
		return fmt.Errorf("pgstore: put delivery: %w", err)
	}
	tag, err := db.pool.Exec(ctx, insertOwnDelivery, r.id, r.webhook, r.event, r.state, r.next, r.expires, r.record, r.own)
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

// insertOwnDelivery inserts a delivery with an event of its own (see
// ownRowOf), or nothing when its id exists.
const insertOwnDelivery = `INSERT INTO deliveries (id, webhook_id, event_id, state, next_at, expires_at, record, own_event)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`

// GetDelivery returns the delivery or ErrNotFound (also once it expired).
func (db *DB) GetDelivery(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	var s storedDelivery
	err := s.scan(db.pool.QueryRow(ctx, `SELECT `+deliveryCols+`
		WHERE d.id = $1 AND (d.expires_at IS NULL OR d.expires_at > $2)`, id, db.now()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: %w", notFound("delivery", id))
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: get delivery %s: %w", id, err)
	}
	d, err := s.decode()
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return d, nil
}

// ListDeliveries returns up to limit deliveries of a webhook, newest first.
func (db *DB) ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*rswebhooks.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryCols+`
		WHERE d.webhook_id = $1 AND (d.expires_at IS NULL OR d.expires_at > $2) ORDER BY d.id DESC LIMIT $3`,
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

// dueScanInterval paces the due-queue reads of wake-ups and timers
// (rswebhooks.DueScanPacer): under a stream of events a dispatcher reads
// the queue at most every 10 ms instead of once per event, and a new
// delivery waits at most that long for the read that finds it.
const dueScanInterval = 10 * time.Millisecond

// DueScanInterval is the least time between wake-up reads of the due queue.
func (db *DB) DueScanInterval() time.Duration { return dueScanInterval }

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

// The due-queue reads, from the head and past a cursor: two statements, so
// each one's (generic) plan bounds its index scan by its own condition.
const (
	scanHead = `
WITH leased AS (
	SELECT delivery_id, webhook_id FROM leases WHERE until > $1
), due AS (
	SELECT id, webhook_id, next_at FROM deliveries
	 WHERE state = 'pending' AND next_at <= $1 AND id NOT IN (SELECT delivery_id FROM leased)
	 ORDER BY next_at, id LIMIT $2
), per AS (
	SELECT webhook_id, count(*) AS n FROM leased GROUP BY webhook_id
)
SELECT due.id, due.webhook_id, due.next_at, coalesce(per.n, 0)
  FROM due LEFT JOIN per USING (webhook_id) ORDER BY due.next_at, due.id`
	scanAfter = `
WITH leased AS (
	SELECT delivery_id, webhook_id FROM leases WHERE until > $1
), due AS (
	SELECT id, webhook_id, next_at FROM deliveries
	 WHERE state = 'pending' AND next_at <= $1 AND (next_at, id) > ($3, $4)
	   AND id NOT IN (SELECT delivery_id FROM leased)
	 ORDER BY next_at, id LIMIT $2
), per AS (
	SELECT webhook_id, count(*) AS n FROM leased GROUP BY webhook_id
)
SELECT due.id, due.webhook_id, due.next_at, coalesce(per.n, 0)
  FROM due LEFT JOIN per USING (webhook_id) ORDER BY due.next_at, due.id`
)

// scanByWebhook is ScanDueByWebhook's statement: the webhooks with pending
// deliveries found by skipping through deliveries_hook_due (one index probe
// per webhook, however long its backlog), and for each one its earliest due,
// unleased deliveries, as many as its leases leave of the bound.
const scanByWebhook = `
WITH RECURSIVE hooks AS (
	(SELECT webhook_id FROM deliveries WHERE state = 'pending' ORDER BY webhook_id LIMIT 1)
	UNION ALL
	SELECT (SELECT d.webhook_id FROM deliveries d WHERE d.state = 'pending' AND d.webhook_id > h.webhook_id
	         ORDER BY d.webhook_id LIMIT 1)
	  FROM hooks h WHERE h.webhook_id IS NOT NULL
), per AS (
	SELECT webhook_id, count(*) AS n FROM leases WHERE until > $1 GROUP BY webhook_id
)
SELECT c.id, h.webhook_id, c.next_at, coalesce(p.n, 0)
  FROM hooks h LEFT JOIN per p USING (webhook_id)
 CROSS JOIN LATERAL (
	SELECT d.id, d.next_at FROM deliveries d
	 WHERE d.webhook_id = h.webhook_id AND d.state = 'pending' AND d.next_at <= $1
	   AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.delivery_id = d.id AND l.until > $1)
	 ORDER BY d.next_at, d.id LIMIT greatest($2 - coalesce(p.n, 0), 0)) c
 WHERE h.webhook_id IS NOT NULL
 ORDER BY c.next_at, c.id LIMIT $3`

// ScanDueByWebhook calls fn with each webhook's earliest due, unleased
// deliveries, at most perWebhook minus its leases each, in due order (see
// rswebhooks.DueByWebhookScanner), in one statement.
func (db *DB) ScanDueByWebhook(ctx context.Context, now time.Time, perWebhook, max int, fn func(rswebhooks.DueRef) bool) error {
	if perWebhook <= 0 {
		return nil
	}
	refs, err := db.queryDueRefs(ctx, "due deliveries by webhook", scanByWebhook, now, perWebhook, limitArg(max))
	if err != nil {
		return err
	}
	for _, r := range refs {
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// queryDueRefs runs q (selecting id, webhook_id, the due time and whether
// it is leased) and reads all its rows before returning, so the caller's
// function runs with the connection released. Errors name op.
func (db *DB) queryDueRefs(ctx context.Context, op, q string, args ...any) ([]rswebhooks.DueRef, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	defer rows.Close()
	var refs []rswebhooks.DueRef
	for rows.Next() {
		var r rswebhooks.DueRef
		if err := rows.Scan(&r.ID, &r.WebhookID, &r.Due, &r.Leased); err != nil {
			return nil, fmt.Errorf("pgstore: %s: %w", op, err)
		}
		r.Due = r.Due.UTC()
		refs = append(refs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	return refs, nil
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
		q, args := scanHead, []any{now, page}
		if !first {
			q, args = scanAfter, []any{now, page, afterAt, afterID}
		}
		refs, err := db.queryDueRefs(ctx, "due deliveries", q, args...)
		if err != nil {
			return err
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
		(SELECT next_at FROM deliveries WHERE state = 'pending'
		   AND id NOT IN (SELECT delivery_id FROM leases WHERE until > $1)
		  ORDER BY next_at, id LIMIT 1),
		(SELECT min(greatest(d.next_at, l.until)) FROM leases l JOIN deliveries d ON d.id = l.delivery_id
		  WHERE l.until > $1 AND d.state = 'pending')`,
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

// leaseRefusals explains rswebhooks_lease's results other than ok.
var leaseRefusals = map[string]string{
	"locked": "another node is leasing it",
	"state":  "not pending",
	"due":    "not due yet",
	"leased": "leased by another holder",
	"busy":   "its webhook is at its concurrency limit",
}

// leaseReq and leaseRes are one Lease through the lease batcher.
type leaseReq struct {
	id, holder string
	now, until time.Time
	per        int
}

type leaseRes struct {
	result string
	row    storedDelivery
}

// leaseBatch leases reqs in one call of rswebhooks_lease_many (one round
// trip, one transaction), as if one after the other.
func (db *DB) leaseBatch(ctx context.Context, reqs []leaseReq) ([]leaseRes, error) {
	return againIfAborted(ctx, func() ([]leaseRes, error) { return db.leaseOnce(ctx, reqs) })
}

func (db *DB) leaseOnce(ctx context.Context, reqs []leaseReq) ([]leaseRes, error) {
	n := len(reqs)
	ids, holders := make([]string, n), make([]string, n)
	nows, untils := make([]time.Time, n), make([]time.Time, n)
	pers := make([]int32, n)
	for i, r := range reqs {
		ids[i], holders[i], nows[i], untils[i], pers[i] = r.id, r.holder, r.now, r.until, int32(r.per)
	}
	rows, err := db.pool.Query(ctx, `SELECT ord, result, rec, own, shared, snap FROM rswebhooks_lease_many($1, $2, $3, $4, $5)`,
		ids, nows, holders, untils, pers)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]leaseRes, n)
	got := 0
	for rows.Next() {
		var ord int
		var r leaseRes
		if err := rows.Scan(&ord, &r.result, &r.row.record, &r.row.own, &r.row.shared, &r.row.snap); err != nil {
			return nil, err
		}
		if ord < 1 || ord > n {
			return nil, fmt.Errorf("rswebhooks_lease_many answered for request %d of %d", ord, n)
		}
		r.row.id = reqs[ord-1].id
		out[ord-1] = r
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("rswebhooks_lease_many answered %d of %d requests", got, n)
	}
	return out, nil
}

// Lease leases a pending, due delivery (see the package doc). Concurrent
// calls share round trips (see batcher).
func (db *DB) Lease(ctx context.Context, id string, now time.Time, req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	if err := req.Check(); err != nil {
		return nil, fmt.Errorf("pgstore: lease delivery %s: %w", id, err)
	}
	res, err := db.leases.do(ctx, leaseReq{id: id, holder: req.Holder, now: now, until: now.Add(req.For), per: req.PerWebhook})
	if err != nil {
		return nil, fmt.Errorf("pgstore: lease delivery %s: %w", id, err)
	}
	switch res.result {
	case "ok":
		db.ended.forget(id)
		d, err := res.row.decode()
		if err != nil {
			return nil, fmt.Errorf("pgstore: lease: %w", err)
		}
		return d, nil
	case "absent":
		return nil, fmt.Errorf("pgstore: lease: %w", notFound("delivery", id))
	}
	return nil, fmt.Errorf("pgstore: lease delivery %s: %s: %w", id, leaseRefusals[res.result], rswebhooks.ErrLeaseRefused)
}

// endedLeases remembers the leases Complete ended (delivery id → holder)
// until their holder's Release, which then needs no round trip: a lease
// Complete ended is gone, and only a new Lease (which forgets the entry)
// could give the holder another.
type endedLeases struct {
	mu sync.Mutex
	m  map[string]string
}

// maxEnded bounds endedLeases; past it the set starts over (a Release then
// costs its round trip, nothing else).
const maxEnded = 10000

func (e *endedLeases) add(id, holder string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil || len(e.m) >= maxEnded {
		e.m = map[string]string{}
	}
	e.m[id] = holder
}

func (e *endedLeases) forget(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, id)
}

// take reports whether Complete ended holder's lease of id, forgetting it.
func (e *endedLeases) take(id, holder string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.m[id]
	if ok && h == holder {
		delete(e.m, id)
		return true
	}
	return false
}

// Release ends holder's lease of the delivery, if it holds one.
func (db *DB) Release(ctx context.Context, id, holder string) error {
	if db.ended.take(id, holder) {
		return nil // Complete ended it
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM leases WHERE delivery_id = $1 AND holder = $2`, id, holder)
	if err != nil {
		return fmt.Errorf("pgstore: release delivery %s: %w", id, err)
	}
	if tag.RowsAffected() > 0 {
		db.notifyDue(ctx)
	}
	return nil
}

// completeReq is one Complete through the complete batcher: the delivery's
// new row and, when abody is not nil, attempt n.
type completeReq struct {
	r      deliveryRow
	n      int
	abody  []byte
	notify bool
	// next, when set, asks for the webhook's next due delivery leased in
	// the same transaction (CompleteAndLease).
	next *chainReq
}

// chainReq is the lease part of a CompleteAndLease.
type chainReq struct {
	holder     string
	now, until time.Time
	per        int
}

// completeRes says whether the delivery was there and whose lease the
// write ended ("" when none), and for a CompleteAndLease, the next
// delivery leased (id "" when none).
type completeRes struct {
	found  bool
	holder string
	next   storedDelivery
}

// completeBatch records reqs in one transaction and one round trip. A
// delivery twice in reqs is written in request order, by separate
// statements.
func (db *DB) completeBatch(ctx context.Context, reqs []completeReq) ([]completeRes, error) {
	out := make([]completeRes, 0, len(reqs))
	for len(reqs) > 0 {
		seen := map[string]bool{}
		k := 0
		for k < len(reqs) && !seen[reqs[k].r.id] {
			seen[reqs[k].r.id] = true
			k++
		}
		res, err := againIfAborted(ctx, func() ([]completeRes, error) { return db.completeDistinct(ctx, reqs[:k]) })
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		reqs = reqs[k:]
	}
	return out, nil
}

// completeDistinct records reqs (distinct deliveries) in one statement,
// completeSQL, sent in delivery id order: its plan updates the rows in the
// order of its arrays (a nested loop over them), so batches of two nodes
// lock their rows in id order and cannot deadlock over them. (Should a plan
// ever lock them in another order, PostgreSQL aborts one batch of a
// deadlock and againIfAborted sends it again.) Before, a statement of its
// own locked the rows in id order first: a second statement's execution
// and a WAL record per row more.
func (db *DB) completeDistinct(ctx context.Context, reqs []completeReq) ([]completeRes, error) {
	n := len(reqs)
	order := make([]int, n) // order[j]: the request sent j-th
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(reqs[a].r.id, reqs[b].r.id) })
	ids, hooks, evs, states := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	nexts, exps := make([]time.Time, n), make([]*time.Time, n)
	records, abodies := make([][]byte, n), make([][]byte, n)
	ns, pers := make([]int32, n), make([]int32, n)
	cholders, cuntils := make([]string, n), make([]time.Time, n)
	notify := false
	var now time.Time
	for j, i := range order {
		q := reqs[i]
		ids[j], hooks[j], evs[j], states[j], nexts[j], exps[j], records[j] = q.r.id, q.r.webhook, q.r.event, q.r.state, q.r.next, q.r.expires, q.r.record
		ns[j], abodies[j] = int32(q.n), q.abody
		notify = notify || q.notify
		if c := q.next; c != nil {
			cholders[j], cuntils[j], pers[j] = c.holder, c.until, int32(c.per)
			if c.now.After(now) {
				now = c.now // one time for the batch: its calls are concurrent
			}
		}
	}
	rows, err := db.pool.Query(ctx, completeSQL, ids, hooks, evs, states, nexts, exps, records, ns, abodies, db.expiry(), notify,
		chanDue, db.self, cholders, cuntils, pers, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]completeRes, n)
	got := 0
	for rows.Next() {
		var ord int
		var r completeRes
		if err := rows.Scan(&ord, &r.found, &r.holder, &r.next.id, &r.next.record, &r.next.own, &r.next.shared, &r.next.snap,
			new(int64)); err != nil {
			return nil, err
		}
		if ord < 1 || ord > n {
			return nil, fmt.Errorf("complete: result for request %d of %d", ord, n)
		}
		out[order[ord-1]] = r
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("complete: %d results for %d deliveries", got, n)
	}
	return out, nil
}

// completeSQL records a batch of Completes (see completeBatch) and moves
// the leases of CompleteAndLease requests: a request whose delivery's
// lease ended here, held by the request's holder and unexpired, while its
// webhook holds at most its limit of unexpired leases (that one
// included), gets the webhook's earliest due, pending, unleased delivery
// leased in its place. The webhook's count of leases is then unchanged, on
// every node, so no per-webhook lock is needed; the delivery rows are
// taken with FOR UPDATE SKIP LOCKED, never waited for.
//
// The requests of one webhook whose leases move get its free deliveries in
// due order, in the order of their deliveries' ids. The lease check of the delivery rows runs on
// the statement's snapshot, and locking a row another transaction only
// locked (a Lease that has committed since) does not check it again, so
// the lease is written only where no unexpired one is there by then (ON
// CONFLICT sees the newest row): a delivery leased meanwhile is left to
// its holder, and the request gets none. One row per request: ord, found, the holder
// whose lease ended, the delivery leased in its place (id "" when none;
// its record, own_event, shared and snapshot) and a count that makes the
// side effects run.
const completeSQL = `
WITH u AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bytea[],
		$8::integer[], $9::bytea[], $14::text[], $15::timestamptz[], $16::integer[]) WITH ORDINALITY
		AS u(id, webhook_id, event_id, state, next_at, expires_at, record, n, abody, cholder, cuntil, per, ord)
), upd AS (
	UPDATE deliveries d SET webhook_id = u.webhook_id, event_id = u.event_id, state = u.state, next_at = u.next_at,
		expires_at = u.expires_at, record = u.record, ` + keepOwnEvent + `
	  FROM u WHERE d.id = u.id RETURNING d.id
), gone AS (
	DELETE FROM leases l WHERE l.delivery_id IN (SELECT id FROM upd) RETURNING l.delivery_id, l.holder, l.until
), att AS (
	INSERT INTO attempts (delivery_id, n, expires_at, body)
	SELECT u.id, u.n, $10, u.abody FROM u WHERE u.abody IS NOT NULL AND u.id IN (SELECT id FROM upd)
	ON CONFLICT (delivery_id, n) DO UPDATE SET expires_at = excluded.expires_at, body = excluded.body
	RETURNING 1
), note AS (
	SELECT pg_notify($12, $13) FROM upd WHERE $11 LIMIT 1
), mv AS (
	SELECT u.ord, u.webhook_id, u.cholder, u.cuntil, row_number() OVER (PARTITION BY u.webhook_id ORDER BY u.ord) AS rn
	  FROM u JOIN gone g ON g.delivery_id = u.id
	 WHERE u.cholder <> '' AND g.holder = u.cholder AND g.until > $17
	   AND (u.per <= 0 OR (SELECT count(*) FROM leases l WHERE l.webhook_id = u.webhook_id AND l.until > $17) <= u.per)
), grp AS (
	SELECT mv.webhook_id, count(*) AS want FROM mv GROUP BY mv.webhook_id
), nxt AS (
	SELECT grp.webhook_id, c.id, c.event_id, c.record, c.own_event, c.shared,
		row_number() OVER (PARTITION BY grp.webhook_id ORDER BY c.next_at, c.id) AS rn
	  FROM grp CROSS JOIN LATERAL (
		SELECT d.id, d.event_id, d.record, d.own_event, d.shared, d.next_at FROM deliveries d
		 WHERE d.webhook_id = grp.webhook_id AND d.state = 'pending' AND d.next_at <= $17
		   AND d.id <> ALL ($1::text[])
		   AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.delivery_id = d.id AND l.until > $17)
		 ORDER BY d.next_at, d.id LIMIT grp.want
		 FOR UPDATE OF d SKIP LOCKED) c
), pair AS (
	SELECT mv.ord, mv.cholder, mv.cuntil, nxt.webhook_id, nxt.id, nxt.event_id, nxt.record, nxt.own_event, nxt.shared
	  FROM mv JOIN nxt USING (webhook_id, rn)
), ins AS (
	INSERT INTO leases AS l (delivery_id, webhook_id, holder, until)
	SELECT pair.id, pair.webhook_id, pair.cholder, pair.cuntil FROM pair
	ON CONFLICT (delivery_id) DO UPDATE SET webhook_id = excluded.webhook_id, holder = excluded.holder, until = excluded.until
	 WHERE l.until <= $17
	RETURNING l.delivery_id
)
SELECT u.ord::integer, u.id IN (SELECT id FROM upd), coalesce(g.holder, ''), coalesce(p.id, ''), p.record, p.own_event,
	coalesce(p.shared, false), s.body, (SELECT count(*) FROM att) + (SELECT count(*) FROM note)
  FROM u LEFT JOIN gone g ON g.delivery_id = u.id
  LEFT JOIN pair p ON p.ord = u.ord AND p.id IN (SELECT delivery_id FROM ins)
  LEFT JOIN snapshots s ON p.shared AND s.event_id = p.event_id`

// Complete records attempt a and d's new state in one transaction and ends
// any lease of d. Concurrent calls share round trips (see batcher); each
// returns once its own write is committed.
func (db *DB) Complete(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt) error {
	_, err := db.complete(ctx, d, a, nil)
	return err
}

// complete is Complete, and with next, CompleteAndLease's lease too.
func (db *DB) complete(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt, next *chainReq) (completeRes, error) {
	if err := rswebhooks.CheckStoredDelivery(d); err != nil {
		return completeRes{}, fmt.Errorf("pgstore: complete delivery: %w", err)
	}
	if err := rswebhooks.CheckCompletedAttempt(d, a); err != nil {
		return completeRes{}, fmt.Errorf("pgstore: complete %w", err)
	}
	var abody []byte
	if a != nil {
		var err error
		if abody, err = recjson.MarshalAttempt(a); err != nil {
			return completeRes{}, fmt.Errorf("pgstore: complete delivery %s: encode attempt: %w", d.ID, err)
		}
	}
	r, err := db.rowOf(d)
	if err != nil {
		return completeRes{}, fmt.Errorf("pgstore: complete delivery: %w", err)
	}
	notify := dueNow(db.now(), d)
	res, err := db.completes.do(ctx, completeReq{r: r, n: attemptN(a), abody: abody, notify: notify, next: next})
	if err != nil {
		return completeRes{}, fmt.Errorf("pgstore: complete delivery %s: %w", d.ID, err)
	}
	if !res.found {
		return completeRes{}, fmt.Errorf("pgstore: complete: %w", notFound("delivery", d.ID))
	}
	if res.holder != "" {
		db.ended.add(d.ID, res.holder)
	}
	if notify {
		db.signalDue()
	}
	return res, nil
}

// CompleteAndLease records attempt a and d's new state like Complete and,
// in the same statement, moves req.Holder's lease of d to the earliest due,
// free delivery of d's webhook (see rswebhooks.LeaseChainer and
// completeSQL). Concurrent calls share round trips with each other and with
// Complete.
func (db *DB) CompleteAndLease(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt, now time.Time,
	req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	if err := req.Check(); err != nil {
		return nil, fmt.Errorf("pgstore: complete and lease: %w", err)
	}
	res, err := db.complete(ctx, d, a, &chainReq{holder: req.Holder, now: now, until: now.Add(req.For), per: req.PerWebhook})
	if err != nil || res.next.id == "" {
		return nil, err
	}
	db.ended.forget(res.next.id)
	next, err := res.next.decode()
	if err != nil {
		// Recorded, and the next one leased but unreadable: not this
		// call's failure. Its lease is given back, and a dispatcher that
		// leases it finds the same.
		db.log.Error().Err(err).Str("delivery_id", res.next.id).Msg("leased delivery cannot be decoded")
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = db.Release(rctx, res.next.id, req.Holder)
		cancel()
		return nil, nil
	}
	return next, nil
}

func attemptN(a *rswebhooks.Attempt) int {
	if a == nil {
		return 0
	}
	return a.N
}

// deleteDeliveries deletes the deliveries $1 with their leases, and their
// events' snapshots that no other delivery refers to.
const deleteDeliveries = `WITH l AS (DELETE FROM leases WHERE delivery_id = ANY ($1)),
del AS (DELETE FROM deliveries WHERE id = ANY ($1) RETURNING id, event_id, shared), ` + dropSnapshots + `
SELECT 1 FROM del` // its tag counts the rows deleted

// deleteLocked deletes, in one transaction, the deliveries that lock (a
// SELECT of delivery ids … FOR UPDATE, with args) returns, with their
// attempts, leases and unshared snapshots, and returns how many it
// deleted. The rows are locked first and the attempts deleted by a later
// statement, whose snapshot sees an attempt a completion recorded while
// the lock waited for it (attempts have no foreign key since schema 5).
func (db *DB) deleteLocked(ctx context.Context, lock string, args ...any) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, lock, args...)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM attempts WHERE delivery_id = ANY ($1)`, ids); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, deleteDeliveries, ids)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// deleteDelivery deletes delivery id (see deleteLocked) and reports
// whether it was there.
func (db *DB) deleteDelivery(ctx context.Context, id string) (bool, error) {
	n, err := db.deleteLocked(ctx, `SELECT id FROM deliveries WHERE id = $1 FOR UPDATE`, id)
	return n > 0, err
}

// DiscardDelivery removes a delivery with its attempts, or ErrNotFound.
func (db *DB) DiscardDelivery(ctx context.Context, id string) error {
	found, err := db.deleteDelivery(ctx, id)
	if err != nil {
		return fmt.Errorf("pgstore: discard delivery %s: %w", id, err)
	}
	if !found {
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
		var s storedDelivery
		err := s.scan(tx.QueryRow(ctx, `SELECT `+deliveryCols+`
			WHERE d.id = $1 AND (d.expires_at IS NULL OR d.expires_at > $2) FOR UPDATE OF d`, id, db.now()))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("delivery", id)
		}
		if err != nil {
			return err
		}
		if d, err = s.decode(); err != nil {
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
		if _, err := tx.Exec(ctx, `UPDATE deliveries d SET state = $2, next_at = $3, expires_at = NULL, record = $4, `+keepOwnEvent+`
			WHERE d.id = $1`, id, r.state, r.next, r.record); err != nil {
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
		found, err := db.deleteDelivery(ctx, id)
		if err != nil {
			return fmt.Errorf("pgstore: delete unreadable delivery %s: %w", id, err)
		}
		if !found {
			return fmt.Errorf("pgstore: delete unreadable: %w", notFound(kind, id))
		}
		return nil
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
