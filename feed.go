package rswebhooks

import "time"

// FeedEvent is one entry of the admin API's events feed
// (GET /api/webhooks/events): a stored event with the deliveries it
// produced that the caller may see.
type FeedEvent struct {
	Event
	Deliveries []EventDelivery `json:"Deliveries"`
}

// EventDelivery is a delivery as listed with its event, without the event
// snapshot (GET /api/webhooks/deliveries/{id} has the rest).
type EventDelivery struct {
	ID         string     `json:"Id"`
	WebhookID  string     `json:"WebhookId"`
	State      string     `json:"State"`
	Reason     string     `json:"Reason,omitempty"`
	Attempts   int        `json:"Attempts"`
	NextUTC    *time.Time `json:"NextAttemptUtc,omitempty"` // pending only
	LastStatus int        `json:"LastStatusCode,omitempty"`
	LastError  string     `json:"LastError,omitempty"`
	CreatedUTC time.Time  `json:"CreatedUtc"`
	UpdatedUTC time.Time  `json:"UpdatedUtc"`
}

// EventPage is one page of the events feed, newest first.
type EventPage struct {
	Events []FeedEvent `json:"Events"`
	// NextCursor, when set, gets the next (older) page: pass it as cursor
	// with the same since, until, filter and type.
	NextCursor string `json:"NextCursor,omitempty"`
}

// ReplayRequest is the body of POST /api/webhooks/registrations/{id}/replay:
// the stored events in [Since, Until) are queued again for the webhook.
type ReplayRequest struct {
	Since time.Time `json:"Since"`
	// Until defaults to now.
	Until time.Time `json:"Until"`
	// After, when set, continues a replay after this event id (the Next of
	// an earlier answer).
	After string `json:"After,omitempty"`
	// DryRun counts what would be queued and queues nothing.
	DryRun bool `json:"DryRun,omitempty"`
}

// ReplayResult is the answer of a replay.
type ReplayResult struct {
	// Queued counts the new deliveries (new ids: receivers that dedupe on
	// the delivery Id see them as new notifications).
	Queued int `json:"Queued"`
	// Matched counts the events in range the webhook's filters match,
	// before the owner's access check.
	Matched int `json:"Matched"`
	// Done is false when the per-call bound stopped the replay; send Next
	// as the next call's body to continue.
	Done bool           `json:"Done"`
	Next *ReplayRequest `json:"Next,omitempty"`
}

// UnmatchedRoute is one entry of GET /api/webhooks/unmatched: successful
// mutating calls that no detection rule matched, grouped by method and path
// template (ids replaced by placeholders). It holds no bodies and no query
// strings.
type UnmatchedRoute struct {
	Method string `json:"Method"`
	// Path is relative to the report server's virtual directory, as rule
	// templates are.
	Path         string    `json:"Path"`
	Status       int       `json:"Status"` // the last status seen (2xx)
	Count        int64     `json:"Count"`
	FirstSeenUTC time.Time `json:"FirstSeenUtc"`
	LastSeenUTC  time.Time `json:"LastSeenUtc"`
	// Rule is a suggested detection rule for the route, in the field names
	// of a --rules file; Snippet is the same as a --rules YAML file.
	Rule    SuggestedRule `json:"Rule"`
	Snippet string        `json:"Snippet"`
}

// SuggestedRule is a detection rule in the field names of a --rules file.
type SuggestedRule struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	Filter     string `json:"filter,omitempty"`
	Event      string `json:"event"`
	ID         string `json:"id,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	// Note says what was guessed and what to check (a comment in a file).
	Note string `json:"note,omitempty"`
}
