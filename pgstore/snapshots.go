package pgstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

// A delivery row holds the delivery's state, and its event elsewhere
// (schema 4, migrations/0004_snapshots.sql): the event's snapshot is stored
// once in snapshots and shared by the event's deliveries (shared), or the
// row keeps one of its own in own_event as {"Event": …} (pings, replays,
// and rows written before schema 4 once rewritten: their former body).
// A row of schema 3 or older not rewritten since holds its event in its
// record.

// deliveryRow is a delivery's columns: record is its JSON without its
// event; own, when not nil, is its own_event ({"Event": …}) for an insert.
type deliveryRow struct {
	id, webhook, event, state string
	next                      time.Time
	expires                   *time.Time
	record                    []byte
	own                       []byte
}

// withoutEvent encodes as a Delivery without its Event (the outer Event,
// nil and omitted, shadows the embedded one).
type withoutEvent struct {
	*rswebhooks.Delivery
	Event *struct{} `json:"Event,omitempty"`
}

// eventDoc is own_event's shape: a JSON object whose member Event is the
// delivery's event, which a delivery's whole JSON (a row of schema 3 or
// older) is too.
type eventDoc struct {
	Event *rswebhooks.Event `json:"Event"`
}

// rowOf encodes d's state; finished deliveries expire after the retention.
func (db *DB) rowOf(d *rswebhooks.Delivery) (deliveryRow, error) {
	rec, err := encodeRecord(d)
	if err != nil {
		return deliveryRow{}, fmt.Errorf("encode delivery %s: %w", d.ID, err)
	}
	r := deliveryRow{id: d.ID, webhook: d.WebhookID, event: d.EventID, state: d.State, next: d.NextUTC, record: rec}
	if d.State != rswebhooks.DeliveryPending {
		exp := db.expiry()
		r.expires = &exp
	}
	return r, nil
}

// ownRowOf is rowOf with d's event as the row's own (own_event).
func (db *DB) ownRowOf(d *rswebhooks.Delivery) (deliveryRow, error) {
	r, err := db.rowOf(d)
	if err != nil {
		return r, err
	}
	if r.own, err = recjson.Marshal(eventDoc{Event: &d.Event}); err != nil {
		return deliveryRow{}, fmt.Errorf("encode the event of delivery %s: %w", d.ID, err)
	}
	return r, nil
}

// encodeRecord is recjson.Marshal(withoutEvent{Delivery: d}), byte for byte
// (TestRecordMatchesJSON), without reflection for the records every fan-out
// and attempt writes.
func encodeRecord(d *rswebhooks.Delivery) ([]byte, error) {
	if b, ok := recjson.AppendDelivery(nil, d, false, nil); ok {
		return b, nil
	}
	return recjson.Marshal(withoutEvent{Delivery: d})
}

// decodeRecord is json.Unmarshal of a record into a new Delivery, the same
// result and errors (TestRecordMatchesJSON, FuzzDecodeRecord), without
// reflection for records as encodeRecord writes them.
func decodeRecord(b []byte) (*rswebhooks.Delivery, error) {
	d := new(rswebhooks.Delivery)
	if _, ok := recjson.ParseDelivery(b, d); ok {
		return d, nil
	}
	*d = rswebhooks.Delivery{}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, err
	}
	return d, nil
}

// keepOwnEvent is own_event in an UPDATE … deliveries d that rewrites the
// record: a record of schema 3 or older holds the event, so it moves to
// own_event, byte for byte; other rows keep theirs.
const keepOwnEvent = `own_event = CASE WHEN d.own_event IS NULL AND NOT d.shared THEN d.record ELSE d.own_event END`

// deliveryCols selects what decodeDelivery reads (id, record, own_event,
// shared, the shared snapshot) from deliveries d.
const deliveryCols = `d.id, d.record, d.own_event, d.shared, s.body
  FROM deliveries d LEFT JOIN snapshots s ON d.shared AND s.event_id = d.event_id`

// storedDelivery is a delivery row as read (see deliveryCols).
type storedDelivery struct {
	id     string
	record []byte
	own    []byte
	shared bool
	snap   []byte
}

func (s *storedDelivery) scan(row pgx.Row) error {
	return row.Scan(&s.id, &s.record, &s.own, &s.shared, &s.snap)
}

// decode reassembles the delivery: its record, then its event from
// own_event or the shared snapshot (a record of schema 3 or older holds
// it already).
func (s *storedDelivery) decode() (*rswebhooks.Delivery, error) {
	d, err := decodeRecord(s.record)
	if err != nil {
		return nil, fmt.Errorf("decode delivery %s: %w", s.id, err)
	}
	switch {
	case s.own != nil:
		d.Event = rswebhooks.Event{}
		if err := json.Unmarshal(s.own, &eventDoc{Event: &d.Event}); err != nil {
			return nil, fmt.Errorf("decode the event of delivery %s: %w", s.id, err)
		}
	case s.shared && s.snap == nil:
		return nil, fmt.Errorf("decode delivery %s: %w", s.id, errNoSnapshot)
	case s.shared:
		if err := json.Unmarshal(s.snap, &d.Event); err != nil {
			return nil, fmt.Errorf("decode the event snapshot of delivery %s: %w", s.id, err)
		}
	}
	return d, nil
}

var errNoSnapshot = errors.New("its event's snapshot is missing")

// readDeliveries reads rows of deliveryCols as deliveries; one that cannot
// be decoded is logged and skipped, so it never hides the others. It
// closes rows.
func readDeliveries(rows pgx.Rows, log zerolog.Logger) ([]*rswebhooks.Delivery, error) {
	defer rows.Close()
	var out []*rswebhooks.Delivery
	for rows.Next() {
		var s storedDelivery
		if err := s.scan(rows); err != nil {
			return nil, err
		}
		d, err := s.decode()
		if err != nil {
			log.Error().Err(err).Str("delivery_id", s.id).Msg("stored delivery cannot be decoded; skipped")
			continue
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// dropSnapshots is a data-modifying WITH query that deletes the snapshots
// the deliveries in del (deleted by the same statement: id, event_id,
// shared) referred to, unless another delivery still refers to them.
const dropSnapshots = `gone AS (
	DELETE FROM snapshots s WHERE s.event_id IN (SELECT event_id FROM del WHERE shared)
	   AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.event_id = s.event_id AND x.shared
	                      AND x.id NOT IN (SELECT id FROM del))
)`
