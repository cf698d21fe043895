package store

import (
	"bytes"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rswebhooks/rswebhooks"
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
	var final []byte
	if rec.FinalAttempt != nil {
		var err error
		if final, err = encodeAttempt(key, rec.FinalAttempt); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, 340+len(d.Reason)+len(d.LastError)+len(final))
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
	if final != nil {
		b = append(b, `,"FinalAttempt":`...)
		b = append(b, final...)
	}
	return append(b, '}'), nil
}

// encodeAttempt is encodeJSON of an attempt record without reflection: the
// same bytes (TestEncodeAttemptMatchesJSON), for the record every attempt
// writes. Attempts it cannot write so (strings JSON escapes, a start
// outside years 0–9999) take encodeJSON.
func encodeAttempt(key []byte, a *rswebhooks.Attempt) ([]byte, error) {
	if !plain(a.DeliveryID) || !plain(a.Error) || !plain(a.ResponseBody) || !jsonYear(a.StartedUTC) {
		return encodeJSON(key, a)
	}
	n := 160 + len(a.Error) + len(a.ResponseBody)
	for k, vs := range a.ResponseHeaders {
		if !plain(k) {
			return encodeJSON(key, a)
		}
		n += len(k) + 6
		for _, v := range vs {
			if !plain(v) {
				return encodeJSON(key, a)
			}
			n += len(v) + 3
		}
	}
	b := make([]byte, 0, n)
	b = append(b, `{"DeliveryId":"`...)
	b = append(b, a.DeliveryID...)
	b = append(b, `","Attempt":`...)
	b = strconv.AppendInt(b, int64(a.N), 10)
	b = append(b, `,"StartedUtc":"`...)
	b = a.StartedUTC.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","DurationNs":`...)
	b = strconv.AppendInt(b, int64(a.Duration), 10)
	if a.StatusCode != 0 {
		b = append(b, `,"StatusCode":`...)
		b = strconv.AppendInt(b, int64(a.StatusCode), 10)
	}
	if a.Error != "" {
		b = append(b, `,"Error":"`...)
		b = append(b, a.Error...)
		b = append(b, '"')
	}
	if len(a.ResponseHeaders) > 0 {
		names := make([]string, 0, len(a.ResponseHeaders))
		for k := range a.ResponseHeaders {
			names = append(names, k)
		}
		slices.Sort(names)
		b = append(b, `,"ResponseHeaders":{`...)
		for i, k := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, `":`...)
			vs := a.ResponseHeaders[k]
			if vs == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, '[')
			for j, v := range vs {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = append(b, v...)
				b = append(b, '"')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if a.ResponseBody != "" {
		b = append(b, `,"ResponseBody":"`...)
		b = append(b, a.ResponseBody...)
		b = append(b, '"')
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
	p := recordParser{b: b}
	d := &rec.Delivery
	*rec = deliveryRecord{}
	if !p.lit(`{"Id":`) || !p.str(&d.ID) || !p.lit(`,"WebhookId":`) || !p.str(&d.WebhookID) ||
		!p.lit(`,"EventId":`) || !p.str(&d.EventID) {
		return false
	}
	if p.lit(`,"Ping":true`) {
		d.Ping = true
	}
	if !p.lit(`,"State":`) || !p.str(&d.State) {
		return false
	}
	if p.lit(`,"Reason":`) && !p.str(&d.Reason) {
		return false
	}
	if !p.lit(`,"Attempts":`) || !p.int(&d.Attempts) ||
		!p.lit(`,"NextAttemptUtc":`) || !p.time(&d.NextUTC) ||
		!p.lit(`,"CreatedUtc":`) || !p.time(&d.CreatedUTC) ||
		!p.lit(`,"UpdatedUtc":`) || !p.time(&d.UpdatedUTC) {
		return false
	}
	if p.lit(`,"LastStatusCode":`) && !p.int(&d.LastStatus) {
		return false
	}
	if p.lit(`,"LastError":`) && !p.str(&d.LastError) {
		return false
	}
	if p.lit(`,"AccessPending":true`) {
		d.AccessPending = true
	}
	if p.lit(`,"OrderKey":true`) {
		rec.OrderKey = true
	}
	return p.lit("}") && len(p.b) == 0
}

// recordParser reads a JSON record of a known shape from the front of b.
type recordParser struct{ b []byte }

// lit consumes s if b starts with it.
func (p *recordParser) lit(s string) bool {
	if len(p.b) < len(s) || string(p.b[:len(s)]) != s {
		return false
	}
	p.b = p.b[len(s):]
	return true
}

// str reads a string JSON writes as it is (see plain): no escapes, no
// control characters, ASCII only.
func (p *recordParser) str(s *string) bool {
	if len(p.b) == 0 || p.b[0] != '"' {
		return false
	}
	for i := 1; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			*s = string(p.b[1:i])
			p.b = p.b[i+1:]
			return true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return false
		}
	}
	return false
}

// int reads an integer as strconv.AppendInt writes it: an optional minus,
// then 1 to 18 digits without a leading zero (or a single 0).
func (p *recordParser) int(n *int) bool {
	i := 0
	if i < len(p.b) && p.b[i] == '-' {
		i++
	}
	start := i
	for i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9' {
		i++
	}
	digits := i - start
	if digits == 0 || digits > 18 || (digits > 1 && p.b[start] == '0') {
		return false
	}
	v, err := strconv.Atoi(string(p.b[:i]))
	if err != nil {
		return false
	}
	*n, p.b = v, p.b[i:]
	return true
}

// time reads a quoted time with time.Time's own JSON decoding.
func (p *recordParser) time(t *time.Time) bool {
	if len(p.b) == 0 || p.b[0] != '"' {
		return false
	}
	end := bytes.IndexByte(p.b[1:], '"')
	if end < 0 {
		return false
	}
	q := p.b[:end+2]
	if bytes.IndexByte(q[1:len(q)-1], '\\') >= 0 || t.UnmarshalJSON(q) != nil {
		return false
	}
	p.b = p.b[end+2:]
	return true
}
