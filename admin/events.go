package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Access decides whether a user may read an event's resource (implemented
// by *access.Checker). An error wrapping rswebhooks.ErrAccessUnknown or
// ErrOwnerMissing is a "no"; any other error is transient.
type Access interface {
	CanRead(ctx context.Context, user rswebhooks.User, ev *rswebhooks.Event) (bool, error)
}

// Events feed limits.
const (
	DefaultEventLimit = 50
	MaxEventLimit     = 500
	// MaxEventScan bounds the events one page of a non-administrator's
	// feed reads (most may be unreadable to them); past it the page ends
	// early, with a NextCursor to go on from.
	MaxEventScan = 2000
)

// The feed's wire types live in the root package (shared with adminclient).
type (
	FeedEvent     = rswebhooks.FeedEvent
	EventDelivery = rswebhooks.EventDelivery
	EventPage     = rswebhooks.EventPage
)

// eventQuery is a validated events query.
type eventQuery struct {
	from, to string // id bounds, "" open
	filters  []string
	types    []string
	limit    int
	after    string // cursor: the last id of the previous page
}

var eventParams = []string{"since", "until", "filter", "type", "limit", "cursor"}

// parseTime reads an RFC 3339 time or a Go duration before now ("2h").
func parseTime(name, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, bad("%s: must be an RFC 3339 time (2026-11-27T10:00:00Z) or a positive Go duration before now (90m, 2h), got %q", name, s)
}

// list reads a comma-separated, repeatable parameter against a set of
// names (case-insensitive), returning canonical names.
func list(q url.Values, name string, set []string) ([]string, error) {
	var out []string
	for _, v := range q[name] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			i := slices.IndexFunc(set, func(n string) bool { return strings.EqualFold(n, s) })
			if i < 0 {
				return nil, bad("%s: %q is not one of %s (comma-separated or repeated)", name, s, strings.Join(set, ", "))
			}
			if !slices.Contains(out, set[i]) {
				out = append(out, set[i])
			}
		}
	}
	return out, nil
}

// cursorPrefix versions the cursor's encoding.
const cursorPrefix = "e1."

func encodeCursor(id string) string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func decodeCursor(s string) (string, error) {
	rest, ok := strings.CutPrefix(s, cursorPrefix)
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if !ok || err != nil || !validULID(string(b)) {
		return "", bad("cursor: must be a NextCursor from an earlier answer, unchanged")
	}
	return string(b), nil
}

func validULID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789ABCDEFGHJKMNPQRSTVWXYZ", rune(s[i])) {
			return false
		}
	}
	return true
}

// idAt is the smallest event id at time t (ids start with their time).
func idAt(t time.Time) string { return rswebhooks.IDFrom(t, [10]byte{}) }

func (h *Handler) parseEventQuery(q url.Values) (*eventQuery, error) {
	for k, v := range q {
		if !slices.Contains(eventParams, k) {
			return nil, bad("%s: unknown parameter; the events feed takes %s", k, strings.Join(eventParams, ", "))
		}
		if len(v) > 1 && k != "filter" && k != "type" {
			return nil, bad("%s: given %d times; give it once", k, len(v))
		}
	}
	now := h.now()
	eq := &eventQuery{limit: DefaultEventLimit}
	var since, until time.Time
	var err error
	if s := q.Get("since"); q.Has("since") {
		if since, err = parseTime("since", s, now); err != nil {
			return nil, err
		}
		eq.from = idAt(since)
	}
	if s := q.Get("until"); q.Has("until") {
		if until, err = parseTime("until", s, now); err != nil {
			return nil, err
		}
		eq.to = idAt(until)
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return nil, bad("until: must be after since (%s), got %s", since.UTC().Format(time.RFC3339Nano), until.UTC().Format(time.RFC3339Nano))
	}
	if eq.filters, err = list(q, "filter", rswebhooks.Filters()); err != nil {
		return nil, err
	}
	if eq.types, err = list(q, "type", rswebhooks.EventTypes()); err != nil {
		return nil, err
	}
	if q.Has("limit") {
		s := q.Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || strings.TrimLeft(s, "0123456789") != "" || n < 1 || n > MaxEventLimit {
			return nil, bad("limit: must be an integer between 1 and %d, got %q", MaxEventLimit, s)
		}
		eq.limit = n
	}
	if q.Has("cursor") {
		if eq.after, err = decodeCursor(q.Get("cursor")); err != nil {
			return nil, err
		}
	}
	return eq, nil
}

func (q *eventQuery) matches(e *rswebhooks.Event) bool {
	return (len(q.filters) == 0 || slices.Contains(q.filters, e.Filter)) &&
		(len(q.types) == 0 || slices.Contains(q.types, e.Type))
}

// mayRead reports whether the caller may see the event: administrators
// always; others when the access checker says they may read the resource
// (no checker, or any failure to decide: no).
func (h *Handler) mayRead(ctx context.Context, who *rswebhooks.Identity, e *rswebhooks.Event) bool {
	if who.Admin {
		return true
	}
	if h.access == nil {
		return false
	}
	ok, err := h.access.CanRead(ctx, who.User, e)
	if err != nil && !errors.Is(err, rswebhooks.ErrAccessUnknown) && !errors.Is(err, rswebhooks.ErrOwnerMissing) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("event_id", e.ID).Msg("events feed: cannot decide access; event left out")
	}
	return err == nil && ok
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	q, err := h.parseEventQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	// Deliveries shown: all for administrators, else those of the
	// caller's own webhooks.
	var mine map[string]bool
	if !who.Admin {
		hooks, err := h.store.ListWebhooks(ctx, who.ID)
		if err != nil {
			storeError(w, r, err, "webhooks")
			return
		}
		mine = make(map[string]bool, len(hooks))
		for _, wh := range hooks {
			mine[wh.ID] = true
		}
	}
	to := q.to
	if q.after != "" && (to == "" || q.after < to) {
		to = q.after
	}
	page := EventPage{Events: []FeedEvent{}}
	var picked []*rswebhooks.Event
	scanned, last := 0, ""
	err = h.store.ScanEvents(ctx, q.from, to, true, func(e *rswebhooks.Event) (bool, error) {
		if len(picked) == q.limit {
			page.NextCursor = encodeCursor(last) // there is at least one more
			return false, nil
		}
		if !who.Admin && scanned == MaxEventScan {
			page.NextCursor = encodeCursor(last)
			return false, nil
		}
		scanned++
		last = e.ID
		if q.matches(e) && h.mayRead(ctx, who, e) {
			picked = append(picked, e)
		}
		return true, nil
	})
	if err != nil {
		storeError(w, r, err, "events")
		return
	}
	for _, e := range picked {
		ds, err := h.store.EventDeliveries(ctx, e.ID)
		if err != nil {
			storeError(w, r, err, "deliveries")
			return
		}
		fe := FeedEvent{Event: *e, Deliveries: []EventDelivery{}}
		for _, d := range ds {
			if who.Admin || (mine[d.WebhookID] && visible(who, d)) {
				fe.Deliveries = append(fe.Deliveries, summary(d))
			}
		}
		page.Events = append(page.Events, fe)
	}
	WriteJSON(w, http.StatusOK, page)
}

func summary(d *rswebhooks.Delivery) EventDelivery {
	s := EventDelivery{ID: d.ID, WebhookID: d.WebhookID, State: d.State, Reason: d.Reason, Attempts: d.Attempts,
		LastStatus: d.LastStatus, LastError: d.LastError, CreatedUTC: d.CreatedUTC, UpdatedUTC: d.UpdatedUTC}
	if d.State == rswebhooks.DeliveryPending {
		t := d.NextUTC
		s.NextUTC = &t
	}
	return s
}
