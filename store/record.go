package store

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// encodeDelivery is encodeJSON of a delivery record without reflection: the
// same bytes (TestEncodeDeliveryMatchesJSON), for the records written on
// every fan-out and attempt. Records it cannot write so (strings JSON
// escapes, an inline snapshot, times outside years 0–9999) take
// encodeJSON.
func encodeDelivery(key []byte, rec *deliveryRecord) ([]byte, error) {
	d := &rec.Delivery
	if rec.Event != nil || !plain(d.ID) || !plain(d.WebhookID) || !plain(d.EventID) || !plain(d.State) ||
		!plain(d.Reason) || !plain(d.LastError) || !jsonYear(d.NextUTC) || !jsonYear(d.CreatedUTC) || !jsonYear(d.UpdatedUTC) {
		return encodeJSON(key, rec)
	}
	b := make([]byte, 0, 320+len(d.Reason)+len(d.LastError))
	b = append(b, `{"Id":"`...)
	b = append(b, d.ID...)
	b = append(b, `","WebhookId":"`...)
	b = append(b, d.WebhookID...)
	b = append(b, `","EventId":"`...)
	b = append(b, d.EventID...)
	b = append(b, '"')
	if d.Ping {
		b = append(b, `,"Ping":true`...)
	}
	b = append(b, `,"State":"`...)
	b = append(b, d.State...)
	b = append(b, '"')
	if d.Reason != "" {
		b = append(b, `,"Reason":"`...)
		b = append(b, d.Reason...)
		b = append(b, '"')
	}
	b = append(b, `,"Attempts":`...)
	b = strconv.AppendInt(b, int64(d.Attempts), 10)
	b = append(b, `,"NextAttemptUtc":"`...)
	b = d.NextUTC.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","CreatedUtc":"`...)
	b = d.CreatedUTC.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","UpdatedUtc":"`...)
	b = d.UpdatedUTC.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if d.LastStatus != 0 {
		b = append(b, `,"LastStatusCode":`...)
		b = strconv.AppendInt(b, int64(d.LastStatus), 10)
	}
	if d.LastError != "" {
		b = append(b, `,"LastError":"`...)
		b = append(b, d.LastError...)
		b = append(b, '"')
	}
	if d.AccessPending {
		b = append(b, `,"AccessPending":true`...)
	}
	if rec.OrderKey {
		b = append(b, `,"OrderKey":true`...)
	}
	return append(b, '}'), nil
}

// plain reports whether JSON writes s as it is: printable ASCII other than
// '"' and '\'.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// jsonYear reports whether encoding/json writes t as RFC 3339 (years 0 to
// 9999; others are an error there).
func jsonYear(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}
