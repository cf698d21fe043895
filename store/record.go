package store

import (
	"fmt"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

// encodeDelivery is encodeJSON of a delivery record without reflection: the
// same bytes (TestEncodeDeliveryMatchesJSON), for the records written on
// every fan-out and attempt (with the finishing attempt, schema 3). Records
// it cannot write so (strings JSON escapes, an inline snapshot, times
// outside years 0–9999) take encodeJSON.
func encodeDelivery(key []byte, rec *deliveryRecord) ([]byte, error) {
	if rec.Event == nil {
		if b, ok := recjson.AppendDelivery(nil, &rec.Delivery, rec.OrderKey, rec.FinalAttempt); ok {
			return b, nil
		}
	}
	return encodeJSON(key, rec)
}

// encodeAttempt is encodeJSON of an attempt record without reflection: the
// same bytes (recjson.TestMarshalAttemptMatchesJSON), for the record every attempt
// writes. Attempts it cannot write so (strings JSON escapes, a start
// outside years 0–9999) take encodeJSON.
func encodeAttempt(key []byte, a *rswebhooks.Attempt) ([]byte, error) {
	b, err := recjson.MarshalAttempt(a)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	return b, nil
}

// decodeDeliveryRecord decodes a delivery record as encodeDelivery writes it
// without reflection (the fields in its order, strings without escapes), the
// form of every record written on a fan-out or an attempt, read back by
// every lease. Anything else (an inline snapshot, escaped strings, another
// field order, a record that is not valid JSON) goes to encoding/json, so
// the result and the errors are always encoding/json's
// (TestDecodeDeliveryMatchesJSON, FuzzDecodeDelivery).
func decodeDeliveryRecord(key, b []byte, rec *deliveryRecord) error {
	if decodeDeliveryFast(b, rec) {
		return nil
	}
	*rec = deliveryRecord{}
	return jsonUnmarshal(key, b, rec)
}

// decodeDeliveryFast is decodeDeliveryRecord's own parser; false: the record
// is not in encodeDelivery's form (rec is then partly set).
func decodeDeliveryFast(b []byte, rec *deliveryRecord) bool {
	rec.Event, rec.FinalAttempt = nil, nil
	orderKey, ok := recjson.ParseDelivery(b, &rec.Delivery)
	rec.OrderKey = orderKey
	return ok
}
