// Package recjson writes and reads the JSON records the stores keep for
// deliveries and attempts without reflection: the same bytes encoding/json
// writes (with HTML escaping off), for the records written on every fan-out
// and attempt and read back by every lease. Records it cannot write so
// (strings JSON escapes, times outside years 0–9999) are left to the
// caller's encoding/json, and records it cannot read so to
// encoding/json's decoding, so results and errors are always encoding/json's.
package recjson

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rswebhooks/rswebhooks"
)

// AppendDelivery appends d's JSON without its event (as a struct embedding
// d whose own Event field is nil and omitted), then `,"OrderKey":true` when
// orderKey, then `,"FinalAttempt":` and final's JSON when final is not nil,
// then the closing brace. False (b unchanged): d or final has a string JSON
// escapes or a time outside years 0–9999; use encoding/json.
func AppendDelivery(b []byte, d *rswebhooks.Delivery, orderKey bool, final *rswebhooks.Attempt) ([]byte, bool) {
	if !Plain(d.ID) || !Plain(d.WebhookID) || !Plain(d.EventID) || !Plain(d.State) ||
		!Plain(d.Reason) || !Plain(d.LastError) || !PlainTime(d.NextUTC) || !PlainTime(d.CreatedUTC) || !PlainTime(d.UpdatedUTC) {
		return b, false
	}
	start := len(b)
	b = slices.Grow(b, 340+len(d.Reason)+len(d.LastError))
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
	if orderKey {
		b = append(b, `,"OrderKey":true`...)
	}
	if final != nil {
		b = append(b, `,"FinalAttempt":`...)
		var ok bool
		if b, ok = AppendAttempt(b, final); !ok {
			return b[:start], false
		}
	}
	return append(b, '}'), true
}

// AppendAttempt appends a's JSON. False (b unchanged): a has a string JSON
// escapes or a start outside years 0–9999; use encoding/json.
func AppendAttempt(b []byte, a *rswebhooks.Attempt) ([]byte, bool) {
	if !Plain(a.DeliveryID) || !Plain(a.Error) || !Plain(a.ResponseBody) || !PlainTime(a.StartedUTC) {
		return b, false
	}
	n := 160 + len(a.Error) + len(a.ResponseBody)
	for k, vs := range a.ResponseHeaders {
		if !Plain(k) {
			return b, false
		}
		n += len(k) + 6
		for _, v := range vs {
			if !Plain(v) {
				return b, false
			}
			n += len(v) + 3
		}
	}
	b = slices.Grow(b, n)
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
	return append(b, '}'), true
}

// Marshal is v's JSON as both stores write their records: encoding/json
// with HTML escaping off (raw JSON values are stored byte for byte), no
// trailing newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MarshalAttempt is Marshal(a): AppendAttempt's where it can,
// encoding/json's otherwise.
func MarshalAttempt(a *rswebhooks.Attempt) ([]byte, error) {
	if b, ok := AppendAttempt(nil, a); ok {
		return b, nil
	}
	return Marshal(a)
}

// Plain reports whether encoding/json (HTML escaping off) writes s as it
// is, between quotes: printable ASCII other than '"' and '\'.
func Plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// PlainTime reports whether encoding/json writes t as t.AppendFormat with
// time.RFC3339Nano does: years 0 to 9999 and zone offsets under 24 hours
// (others are an error there).
func PlainTime(t time.Time) bool {
	y := t.Year()
	_, off := t.Zone()
	return y >= 0 && y <= 9999 && off > -24*3600 && off < 24*3600
}

// ParseDelivery reads a record as AppendDelivery writes it (the fields in
// its order, strings without escapes) into d, and reports whether it had an
// OrderKey. False: the record is not in that form (d is then partly set);
// decode it with encoding/json.
func ParseDelivery(b []byte, d *rswebhooks.Delivery) (orderKey, ok bool) {
	p := recordParser{b: b}
	*d = rswebhooks.Delivery{}
	if !p.lit(`{"Id":`) || !p.str(&d.ID) || !p.lit(`,"WebhookId":`) || !p.str(&d.WebhookID) ||
		!p.lit(`,"EventId":`) || !p.str(&d.EventID) {
		return false, false
	}
	if p.lit(`,"Ping":true`) {
		d.Ping = true
	}
	if !p.lit(`,"State":`) || !p.str(&d.State) {
		return false, false
	}
	if p.lit(`,"Reason":`) && !p.str(&d.Reason) {
		return false, false
	}
	if !p.lit(`,"Attempts":`) || !p.int(&d.Attempts) ||
		!p.lit(`,"NextAttemptUtc":`) || !p.time(&d.NextUTC) ||
		!p.lit(`,"CreatedUtc":`) || !p.time(&d.CreatedUTC) ||
		!p.lit(`,"UpdatedUtc":`) || !p.time(&d.UpdatedUTC) {
		return false, false
	}
	if p.lit(`,"LastStatusCode":`) && !p.int(&d.LastStatus) {
		return false, false
	}
	if p.lit(`,"LastError":`) && !p.str(&d.LastError) {
		return false, false
	}
	if p.lit(`,"AccessPending":true`) {
		d.AccessPending = true
	}
	if p.lit(`,"OrderKey":true`) {
		orderKey = true
	}
	return orderKey, p.lit("}") && len(p.b) == 0
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

// str reads a string JSON writes as it is (see Plain): no escapes, no
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
