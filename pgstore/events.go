package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

// AppendEvent stores a new event waiting for fan-out; ErrConflict if the
// id exists (on any node).
func (db *DB) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e == nil {
		return errors.New("pgstore: append event: event is nil")
	}
	if err := rswebhooks.CheckStoreID("event Id", e.ID); err != nil {
		return fmt.Errorf("pgstore: append event: %w", err)
	}
	body, err := recjson.Marshal(e)
	if err != nil {
		return fmt.Errorf("pgstore: append event %s: %w", e.ID, err)
	}
	// A plain INSERT: its unique violation is the conflict. (ON CONFLICT DO
	// NOTHING would make every append a speculative insertion, which costs
	// the server a conflict check, a lock and a WAL record more per event;
	// a failed single-statement transaction costs nothing else.)
	if _, err := db.pool.Exec(ctx, `INSERT INTO events (id, at, body) VALUES ($1, $2, $3)`, e.ID, e.Time, body); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("pgstore: append event: event %s: %w", e.ID, rswebhooks.ErrConflict)
		}
		return fmt.Errorf("pgstore: append event %s: %w", e.ID, err)
	}
	db.own.add(e.ID, db.now())
	return nil
}

// fanOutGrace is how long an event of another node waits for its node's
// fan-out before NodeUnfannedEvents hands it to this one too.
const fanOutGrace = 2 * time.Second

// ownEvents remembers the events appended through this store that wait
// for fan-out (id → when appended), for NodeUnfannedEvents.
type ownEvents struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// maxOwn bounds ownEvents; past it the set starts over (those events are
// then fanned out after the grace period, by whichever node comes first).
const maxOwn = 20000

func (o *ownEvents) add(id string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= maxOwn {
		o.m = map[string]time.Time{}
	}
	o.m[id] = at
}

func (o *ownEvents) forget(ids []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		delete(o.m, id)
	}
}

// ids returns the events appended within keep before now, forgetting the
// older ones (by then any node fans them out).
func (o *ownEvents) ids(now time.Time, keep time.Duration) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.m))
	for id, at := range o.m {
		if now.Sub(at) > keep {
			delete(o.m, id)
			continue
		}
		out = append(out, id)
	}
	return out
}

// NodeUnfannedEvents returns up to limit events waiting for fan-out, oldest
// first, of those appended through this store and those whose time is more
// than fanOutGrace old (see rswebhooks.NodeUnfanned).
func (db *DB) NodeUnfannedEvents(ctx context.Context, limit int) ([]*rswebhooks.Event, error) {
	now := db.now()
	return db.queryEvents(ctx, "unfanned events", `SELECT id, body FROM events WHERE NOT fanned AND (id = ANY ($1) OR at <= $2)
		ORDER BY id LIMIT $3`, db.own.ids(now, time.Minute), now.Add(-fanOutGrace), limitArg(limit))
}

// GetEvent returns the event or ErrNotFound (also once it has expired).
func (db *DB) GetEvent(ctx context.Context, id string) (*rswebhooks.Event, error) {
	body, err := db.unexpiredBody(ctx, "events", "event", id)
	if err != nil {
		return nil, err
	}
	e := new(rswebhooks.Event)
	if err := json.Unmarshal(body, e); err != nil {
		return nil, fmt.Errorf("pgstore: decode event %s: %w", id, err)
	}
	return e, nil
}

// queryEvents runs q (selecting id and body from events) and decodes the
// events; one that cannot be decoded is logged and skipped. Errors name op.
func (db *DB) queryEvents(ctx context.Context, op, q string, args ...any) ([]*rswebhooks.Event, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	defer rows.Close()
	var out []*rswebhooks.Event
	for rows.Next() {
		var id string
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("pgstore: %s: %w", op, err)
		}
		e := new(rswebhooks.Event)
		if err := json.Unmarshal(body, e); err != nil {
			db.log.Error().Err(err).Str("event_id", id).Msg("stored event cannot be decoded; skipped")
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	return out, nil
}

// limitArg maps "<= 0: all" to SQL's LIMIT NULL.
func limitArg(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}

// ListEvents returns up to limit events with ids after afterID, in id order.
func (db *DB) ListEvents(ctx context.Context, afterID string, limit int) ([]*rswebhooks.Event, error) {
	return db.queryEvents(ctx, "list events", `SELECT id, body FROM events
		WHERE id > $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY id LIMIT $3`,
		afterID, db.now(), limitArg(limit))
}

// UnfannedEvents returns up to limit events waiting for fan-out, oldest first.
func (db *DB) UnfannedEvents(ctx context.Context, limit int) ([]*rswebhooks.Event, error) {
	return db.queryEvents(ctx, "unfanned events", `SELECT id, body FROM events WHERE NOT fanned ORDER BY id LIMIT $1`, limitArg(limit))
}

// UnfannedStats counts the events waiting for fan-out and gives the
// oldest one's time.
func (db *DB) UnfannedStats(ctx context.Context) (n int, oldest time.Time, err error) {
	var at *time.Time
	err = db.pool.QueryRow(ctx, `SELECT count(*), min(at) FROM events WHERE NOT fanned`).Scan(&n, &at)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("pgstore: unfanned stats: %w", err)
	}
	if at != nil {
		oldest = at.UTC()
	}
	return n, oldest, nil
}

// dueNow reports whether one of ds is pending and due at now.
func dueNow(now time.Time, ds ...*rswebhooks.Delivery) bool {
	for _, d := range ds {
		if d.State == rswebhooks.DeliveryPending && !d.NextUTC.After(now) {
			return true
		}
	}
	return false
}

// FanOut stores an event's deliveries and marks it fanned out, in one
// statement (see the package doc and FanOutEvents).
func (db *DB) FanOut(ctx context.Context, eventID string, ds []*rswebhooks.Delivery) error {
	if errs := db.FanOutEvents(ctx, []rswebhooks.EventFanOut{{EventID: eventID, Deliveries: ds}}); errs != nil {
		return errs[0]
	}
	return nil
}

// FanOutEvents fans out several events in one round trip per chunk of
// distinct events and delivery ids (rswebhooks.FanOutBatcher), each event
// as FanOut would: the chunk locks its events in id order, then one
// statement marks those not yet fanned out and without a conflicting
// delivery id, and inserts their deliveries.
func (db *DB) FanOutEvents(ctx context.Context, fs []rswebhooks.EventFanOut) []error {
	return db.fanOutEvents(ctx, fs, true)
}

// FanOutEventsHere is FanOutEvents waking no dispatcher
// (rswebhooks.NodeWaker): the caller wakes its own, and the transaction
// does not queue a notification (a transaction that did waits its turn on
// the server's notification queue at commit).
func (db *DB) FanOutEventsHere(ctx context.Context, fs []rswebhooks.EventFanOut) []error {
	return db.fanOutEvents(ctx, fs, false)
}

// fanOutEvents is FanOutEvents; wake says whether due deliveries wake the
// dispatchers (DueSignal here, NOTIFY for the other nodes).
func (db *DB) fanOutEvents(ctx context.Context, fs []rswebhooks.EventFanOut, wake bool) []error {
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(fs))
		}
		errs[i] = err
	}
	var chunk []int
	events, dids := map[string]bool{}, map[string]bool{}
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		res, err := db.fanOutChunk(ctx, fs, chunk, wake)
		for j, i := range chunk {
			if err != nil {
				fail(i, fmt.Errorf("pgstore: fan out %s: %w", fs[i].EventID, err))
			} else if res[j] != nil {
				fail(i, res[j])
			}
		}
		chunk = chunk[:0]
		clear(events)
		clear(dids)
	}
	for i, f := range fs {
		if err := checkFanOut(f); err != nil {
			fail(i, fmt.Errorf("pgstore: fan out %s: %w", f.EventID, err))
			continue
		}
		// A chunk holds distinct events and delivery ids, so one statement
		// writes each row once, as separate calls would.
		dup := events[f.EventID] || len(chunk) >= maxBatch
		for _, d := range f.Deliveries {
			dup = dup || dids[d.ID]
		}
		if dup {
			flush()
		}
		chunk = append(chunk, i)
		events[f.EventID] = true
		for _, d := range f.Deliveries {
			dids[d.ID] = true
		}
	}
	flush()
	return errs
}

func checkFanOut(f rswebhooks.EventFanOut) error {
	for i, d := range f.Deliveries {
		if err := rswebhooks.CheckStoredDelivery(d); err != nil {
			return fmt.Errorf("delivery %d: %w", i, err)
		}
	}
	return nil
}

// fanOutSQL is the statement of fanOutChunk: [false] inserts the
// deliveries and snapshots with plain INSERTs, [true] tolerates rows there
// already (ON CONFLICT DO NOTHING).
//
// A chunk is sent with [false] first: its events are locked and not yet
// fanned out, so their deliveries and snapshots are new but in rare cases
// (a delivery put under an id fan-out derives, a snapshot kept for an
// event id appended again after its event was deleted), and a plain INSERT
// spares the server a speculative insertion per row (a conflict check, a
// lock and a WAL record more). A unique violation rolls the chunk back and
// it is sent again with [true].
var fanOutSQL = map[bool]string{
	true: fanOutTolerant,
	false: strings.NewReplacer("\n\tON CONFLICT (id) DO NOTHING RETURNING", "\n\tRETURNING",
		"\n\tON CONFLICT (event_id) DO NOTHING", "").Replace(fanOutTolerant),
}

// fanOutTolerant is fanOutSQL[true].
const fanOutTolerant = `
WITH u AS (
	SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
		$8::bytea[], $9::bytea[]) AS u(k, id, webhook_id, event_id, state, next_at, expires_at, record, own)
), f AS (
	SELECT * FROM unnest($10::integer[], $11::text[], $12::bytea[]) AS f(k, event_id, snap)
), clash AS (
	SELECT DISTINCT u.k FROM deliveries x JOIN u ON x.id = u.id
	 WHERE x.id = ANY ($2) AND (x.event_id <> u.event_id OR x.webhook_id <> u.webhook_id)
), ev AS (
	UPDATE events e SET fanned = true, expires_at = $13
	  FROM f WHERE e.id = f.event_id AND e.id = ANY ($11) AND NOT e.fanned AND f.k NOT IN (SELECT k FROM clash)
	RETURNING f.k
), other AS (
	SELECT f.k FROM f JOIN snapshots s ON s.event_id = f.event_id WHERE s.event_id = ANY ($11) AND s.body <> f.snap
), ins AS (
	INSERT INTO deliveries (id, webhook_id, event_id, state, next_at, expires_at, record, shared, own_event)
	SELECT u.id, u.webhook_id, u.event_id, u.state, u.next_at, u.expires_at, u.record,
		u.own IS NULL AND u.k NOT IN (SELECT k FROM other),
		CASE WHEN u.own IS NULL AND u.k IN (SELECT k FROM other)
			THEN convert_to('{"Event":', 'UTF8') || f.snap || convert_to('}', 'UTF8') ELSE u.own END
	  FROM u JOIN f ON f.k = u.k WHERE u.k IN (SELECT k FROM ev)
	ON CONFLICT (id) DO NOTHING RETURNING event_id, shared, state, next_at
), snap AS (
	INSERT INTO snapshots (event_id, body)
	SELECT f.event_id, f.snap FROM f WHERE f.event_id IN (SELECT event_id FROM ins WHERE shared)
	ON CONFLICT (event_id) DO NOTHING
), due AS (
	SELECT 1 FROM ins WHERE state = 'pending' AND next_at <= $16 LIMIT 1
), note AS (
	SELECT pg_notify($14, $15) FROM due WHERE $17
)
SELECT f.k, f.k IN (SELECT k FROM clash) AND EXISTS (SELECT 1 FROM events e WHERE e.id = f.event_id AND NOT e.fanned),
	(SELECT count(*) FROM due) + 0 * (SELECT count(*) FROM note)
  FROM f ORDER BY f.k`

// fanOutChunk fans out fs[chunk...] (distinct events and delivery ids) in
// one transaction and returns each one's error. An event's snapshot is
// stored once (snapshots), from its first delivery's event, and shared by
// its deliveries whose event is the same; a delivery with another event
// keeps its own, as do all of an event's deliveries should another
// snapshot be stored under its id already. (The = ANY conditions repeat
// the joins' for the plan, which is generic: with them it finds the rows
// by their keys whatever the tables' statistics were when it was made.)
// With wake, due deliveries wake the dispatchers.
func (db *DB) fanOutChunk(ctx context.Context, fs []rswebhooks.EventFanOut, chunk []int, wake bool) ([]error, error) {
	var ks []int32
	var ids, hooks, evs, states []string
	var nexts []time.Time
	var exps []*time.Time
	var records, owns [][]byte
	fks, fevs, fsnaps := make([]int32, len(chunk)), make([]string, len(chunk)), make([][]byte, len(chunk))
	for j, i := range chunk {
		fks[j], fevs[j] = int32(j), fs[i].EventID
		var shared *rswebhooks.Event
		for _, d := range fs[i].Deliveries {
			r, err := db.rowOf(d)
			if err != nil {
				return nil, err
			}
			share := false
			if d.EventID == fs[i].EventID {
				if shared == nil {
					if fsnaps[j], err = recjson.Marshal(&d.Event); err != nil {
						return nil, fmt.Errorf("encode the event of delivery %s: %w", d.ID, err)
					}
					shared, share = &d.Event, true
				} else {
					share = reflect.DeepEqual(*shared, d.Event)
				}
			}
			if !share {
				if r, err = db.ownRowOf(d); err != nil {
					return nil, err
				}
			}
			ks = append(ks, int32(j))
			ids, hooks, evs, states = append(ids, r.id), append(hooks, r.webhook), append(evs, r.event), append(states, r.state)
			nexts, exps = append(nexts, r.next), append(exps, r.expires)
			records, owns = append(records, r.record), append(owns, r.own)
		}
	}
	a := fanOutArgs{ks, ids, hooks, evs, states, nexts, exps, records, owns, fks, fevs, fsnaps}
	out, due, err := db.sendFanOut(ctx, fs, chunk, a, false, wake)
	if isUniqueViolation(err) {
		out, due, err = db.sendFanOut(ctx, fs, chunk, a, true, wake)
	}
	if err != nil {
		return nil, err
	}
	if due && wake {
		db.signalDue()
	}
	db.own.forget(fevs)
	return out, nil
}

// fanOutArgs are the arrays fanOutSQL takes.
type fanOutArgs struct {
	ks                      []int32
	ids, hooks, evs, states []string
	nexts                   []time.Time
	exps                    []*time.Time
	records, owns           [][]byte
	fks                     []int32
	fevs                    []string
	fsnaps                  [][]byte
}

// sendFanOut runs fanOutSQL[tolerant] on a in one transaction and returns
// each event's error and whether a delivery it wrote is due.
func (db *DB) sendFanOut(ctx context.Context, fs []rswebhooks.EventFanOut, chunk []int, a fanOutArgs, tolerant, wake bool) ([]error, bool, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM events WHERE id = ANY ($1) ORDER BY id FOR UPDATE`, a.fevs)
	b.Queue(fanOutSQL[tolerant], a.ks, a.ids, a.hooks, a.evs, a.states, a.nexts, a.exps, a.records, a.owns, a.fks, a.fevs, a.fsnaps, db.expiry(), chanDue, db.self, db.now(), wake)
	br := db.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, false, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, err
	}
	out := make([]error, len(chunk))
	got, due := 0, false
	for rows.Next() {
		var k int32
		var clashed bool
		var n int64
		if err := rows.Scan(&k, &clashed, &n); err != nil {
			rows.Close()
			return nil, false, err
		}
		if k < 0 || int(k) >= len(chunk) {
			rows.Close()
			return nil, false, fmt.Errorf("fan-out answered for event %d of %d", k, len(chunk))
		}
		if clashed {
			out[k] = fmt.Errorf("pgstore: fan out %s: a delivery id is stored for another event or webhook: %w",
				fs[chunk[k]].EventID, rswebhooks.ErrConflict)
		}
		due = due || n > 0
		got++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if got != len(chunk) {
		return nil, false, fmt.Errorf("fan-out answered %d of %d events", got, len(chunk))
	}
	if err := br.Close(); err != nil {
		return nil, false, err
	}
	return out, due, nil
}
