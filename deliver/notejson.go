package deliver

import (
	"time"

	"github.com/rswebhooks/rswebhooks/internal/recjson"
)

// appendNotes appends the Notifications element of a body holding nt
// alone, as indented writes []Notification{nt} (an element at depth 1,
// TestAppendNotesMatchesIndented), without reflection. False (b
// unchanged): nt has a string JSON escapes, a time outside years 0–9999,
// or lists (DocumentIds, Documents, Missing); use indented.
func appendNotes(b []byte, nt *Notification) ([]byte, bool) {
	if len(nt.DocumentIDs) > 0 || len(nt.Documents) > 0 || len(nt.Missing) > 0 ||
		!recjson.PlainTime(nt.TimestampUTC) || nt.ExecutionDateUTC != nil && !recjson.PlainTime(*nt.ExecutionDateUTC) {
		return b, false
	}
	strs := [...]string{nt.Action, nt.EventType, nt.EventID, nt.Source, nt.ResourceID, nt.ResourceName, nt.UserID, nt.UserName,
		nt.APIVersion, nt.Method, nt.Path, nt.CategoryID, nt.CategoryName, nt.ExecutionID, nt.Note}
	n := 400
	for _, s := range strs {
		if !recjson.Plain(s) {
			return b, false
		}
		n += len(s)
	}
	b = append(make([]byte, 0, len(b)+n), b...)
	field := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, ",\n      \""...)
		b = append(b, name...)
		b = append(b, `": "`...)
		b = append(b, v...)
		b = append(b, '"')
	}
	b = append(b, "[\n    {\n      \"Action\": \""...)
	b = append(b, nt.Action...)
	b = append(b, '"')
	field("EventType", nt.EventType, false)
	field("EventId", nt.EventID, false)
	field("Source", nt.Source, true)
	field("ResourceId", nt.ResourceID, true)
	field("ResourceName", nt.ResourceName, true)
	field("UserId", nt.UserID, true)
	field("UserName", nt.UserName, true)
	b = append(b, ",\n      \"TimestampUtc\": \""...)
	b = nt.TimestampUTC.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	field("ApiVersion", nt.APIVersion, true)
	field("Method", nt.Method, true)
	field("Path", nt.Path, true)
	field("CategoryId", nt.CategoryID, true)
	field("CategoryName", nt.CategoryName, true)
	field("ExecutionId", nt.ExecutionID, true)
	if nt.ExecutionDateUTC != nil {
		b = append(b, ",\n      \"ExecutionDateUtc\": \""...)
		b = nt.ExecutionDateUTC.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if nt.AlertTriggered != nil {
		if *nt.AlertTriggered {
			b = append(b, ",\n      \"AlertTriggered\": true"...)
		} else {
			b = append(b, ",\n      \"AlertTriggered\": false"...)
		}
	}
	field("Note", nt.Note, true)
	return append(b, "\n    }\n  ]"...), true
}
