package deliver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// Ping notifications carry these values in Action and EventType.
const (
	PingAction    = "ping"
	PingEventType = "Ping"
)

// Body is the notification body (package doc, "Wire format"): the report server's
// WebHookWorkItem shape. Properties is always present ({} when empty).
type Body struct {
	ID            string                     `json:"Id"`
	Attempt       int                        `json:"Attempt"`
	Properties    map[string]json.RawMessage `json:"Properties"`
	Notifications []Notification             `json:"Notifications"`
}

// Notification is one entry of Body.Notifications. Action is the filter name
// (reports, categories, connections, tasks, alerts; "ping" for a ping).
// Optional fields are omitted when empty; Action, EventType, EventId, Source
// (proxy, watch or reconcile; none for a ping) and TimestampUtc are always
// present.
type Notification struct {
	Action       string    `json:"Action"`
	EventType    string    `json:"EventType"`
	EventID      string    `json:"EventId"`
	Source       string    `json:"Source,omitempty"`
	ResourceID   string    `json:"ResourceId,omitempty"`
	ResourceName string    `json:"ResourceName,omitempty"`
	UserID       string    `json:"UserId,omitempty"`
	UserName     string    `json:"UserName,omitempty"`
	TimestampUTC time.Time `json:"TimestampUtc"`
	APIVersion   string    `json:"ApiVersion,omitempty"`
	Method       string    `json:"Method,omitempty"`
	Path         string    `json:"Path,omitempty"`
	CategoryID   string    `json:"CategoryId,omitempty"`
	CategoryName string    `json:"CategoryName,omitempty"`
	ExecutionID  string    `json:"ExecutionId,omitempty"`
	// ExecutionDateUTC is the run's date on the report server's clock.
	ExecutionDateUTC *time.Time `json:"ExecutionDateUtc,omitempty"`
	AlertTriggered   *bool      `json:"AlertTriggered,omitempty"`
	DocumentIDs      []string   `json:"DocumentIds,omitempty"`
	// Documents describes each document of the run, with a download link
	// (Url) when links are configured.
	Documents []Document `json:"Documents,omitempty"`
	// Missing names fields left empty because what held them was not read
	// (see rswebhooks.Event.Missing); Note says why in words.
	Missing []string `json:"Missing,omitempty"`
	Note    string   `json:"Note,omitempty"`
}

// Document is one entry of Notification.Documents.
type Document struct {
	ID       string `json:"Id"`
	Name     string `json:"Name,omitempty"`
	Format   string `json:"Format,omitempty"`
	MimeType string `json:"MimeType,omitempty"`
	// URL downloads the document through rswebhooks, for a limited time;
	// absent without links (see Notification.Note).
	URL string `json:"Url,omitempty"`
}

// NotificationFor maps an event to its notification.
func NotificationFor(ev *rswebhooks.Event) Notification {
	return Notification{
		Action:           ev.Filter,
		EventType:        ev.Type,
		EventID:          ev.ID,
		Source:           source(ev),
		ResourceID:       ev.ResourceID,
		ResourceName:     ev.ResourceName,
		UserID:           ev.UserID,
		UserName:         ev.UserName,
		TimestampUTC:     ev.Time.UTC(),
		APIVersion:       ev.APIVersion,
		Method:           ev.Method,
		Path:             ev.Path,
		CategoryID:       ev.CategoryID,
		CategoryName:     ev.CategoryName,
		ExecutionID:      ev.ExecutionID,
		ExecutionDateUTC: ev.ExecutionDateUTC,
		AlertTriggered:   ev.AlertTriggered,
		DocumentIDs:      ev.DocumentIDs,
		Documents:        documents(ev.Documents),
		Missing:          ev.Missing,
		Note:             ev.Note,
	}
}

func documents(ds []rswebhooks.Document) []Document {
	if len(ds) == 0 {
		return nil
	}
	out := make([]Document, len(ds))
	for i, d := range ds {
		out[i] = Document{ID: d.ID, Name: d.Name, Format: d.Format, MimeType: d.MimeType}
	}
	return out
}

// source is the event's Source; pings have none.
func source(ev *rswebhooks.Event) string {
	if ev.Filter == PingAction {
		return ""
	}
	return rswebhooks.EventSource(ev)
}

// Links makes document download links (see package doclink).
type Links interface {
	// URL returns the link to document docID of ev's run for webhook
	// webhookID, valid from now for the configured time.
	URL(webhookID string, ev *rswebhooks.Event, docID string, now time.Time) string
}

// MarshalBody returns the exact body bytes of attempt n of delivery d to
// webhook w: indented JSON (two spaces, LF), no trailing newline. Documents
// get no links (see MarshalBodyLinks).
func MarshalBody(d *rswebhooks.Delivery, w *rswebhooks.Webhook, n int) ([]byte, error) {
	return MarshalBodyLinks(d, w, n, nil, "", time.Time{})
}

// MarshalBodyLinks is MarshalBody with a download link (made at now) for
// each document of the run; with links nil, documents are listed without
// and offNote (when not empty) becomes the notification's Note.
func MarshalBodyLinks(d *rswebhooks.Delivery, w *rswebhooks.Webhook, n int, links Links, offNote string, now time.Time) ([]byte, error) {
	return marshalBody(d, w, n, links, offNote, now, nil)
}

// marshalBody is MarshalBodyLinks taking the event's part of the body
// from cache (nil: none) when it does not depend on the webhook. The body
// is assembled from parts that are each indented as encoding/json's
// Encoder with SetIndent("", "  ") indents them within the whole (an
// element at depth 1 is json.Indent with prefix "  "), so the bytes equal
// those of encoding the Body at once (TestBodyPartsMatchEncoder).
func marshalBody(d *rswebhooks.Delivery, w *rswebhooks.Webhook, n int, links Links, offNote string, now time.Time, cache *notificationCache) ([]byte, error) {
	var notes []byte
	if len(d.Event.Documents) == 0 {
		notes = cache.get(&d.Event) // no per-webhook links, no note of their absence
	}
	if notes == nil {
		nt := notificationWithLinks(d, w, links, offNote, now)
		var ok bool
		if notes, ok = appendNotes(nil, &nt); !ok {
			var err error
			if notes, err = indented([]Notification{nt}); err != nil {
				return nil, fmt.Errorf("encode notification body of delivery %s: %w", d.ID, err)
			}
		}
		if len(d.Event.Documents) == 0 {
			cache.put(&d.Event, notes)
		}
	}
	props, err := cache.properties(w)
	if err != nil {
		return nil, fmt.Errorf("encode notification body of delivery %s: %w", d.ID, err)
	}
	id, err := quoted(d.ID)
	if err != nil {
		return nil, fmt.Errorf("encode notification body of delivery %s: %w", d.ID, err)
	}
	b := make([]byte, 0, 64+len(id)+len(props)+len(notes))
	b = append(b, "{\n  \"Id\": "...)
	b = append(b, id...)
	b = append(b, ",\n  \"Attempt\": "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ",\n  \"Properties\": "...)
	b = append(b, props...)
	b = append(b, ",\n  \"Notifications\": "...)
	b = append(b, notes...)
	return append(b, "\n}"...), nil
}

// notificationWithLinks is d's notification for webhook w: each document
// with its download link (made at now), or without links and offNote (when
// not empty and the event has no note) as the note.
func notificationWithLinks(d *rswebhooks.Delivery, w *rswebhooks.Webhook, links Links, offNote string, now time.Time) Notification {
	nt := NotificationFor(&d.Event)
	if len(nt.Documents) > 0 {
		switch {
		case links != nil:
			for i := range nt.Documents {
				nt.Documents[i].URL = links.URL(w.ID, &d.Event, nt.Documents[i].ID, now)
			}
		case offNote != "" && nt.Note == "":
			nt.Note = offNote
		}
	}
	return nt
}

// indented encodes v as an element at depth 1 of the body: no HTML
// escaping (as the report server's Newtonsoft sender), so Properties values
// are sent byte for byte as stored.
func indented(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("  ", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// quoted is the JSON string of s: directly for ids of letters, digits, '-',
// '_' and '.', which JSON writes as they are, else through indented.
func quoted(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return indented(s)
		}
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// notificationCacheSize bounds the events whose notification part is kept:
// the deliveries of an event are attempted close together, though webhooks
// at their concurrency limits drift apart by a few hundred events in a
// backlog (about 1 KiB an entry).
const notificationCacheSize = 1024

// notificationCache keeps the encoded Notifications part of recent events'
// bodies (the same for every webhook when the run has no documents), so
// the deliveries of an event encode it once. An entry serves only the same
// snapshot (compared whole), so a delivery holding another snapshot of the
// same event id gets its own. It also keeps each webhook's encoded
// Properties (see properties). The zero value is ready; a nil cache keeps
// nothing.
type notificationCache struct {
	mu    sync.Mutex
	m     map[string]*notificationEntry
	ring  [notificationCacheSize]string
	next  int
	props map[*rswebhooks.Webhook]*propsEntry
}

// propsEntry is a webhook's Properties as they were encoded.
type propsEntry struct {
	props   map[string]json.RawMessage // a copy
	encoded []byte
}

// propsCacheSize bounds the webhooks whose encoded Properties are kept (the
// map is emptied when it is full).
const propsCacheSize = 4096

// properties returns w's Properties as the body's "Properties" value ({}
// when there are none). An entry is found by the webhook (the engine's
// webhook cache hands out one shared, unchanging value per version of a
// webhook) and serves only Properties equal to the ones it encoded, so a
// webhook changed in place still gets its own.
func (c *notificationCache) properties(w *rswebhooks.Webhook) ([]byte, error) {
	if len(w.Properties) == 0 {
		return []byte("{}"), nil
	}
	if c != nil {
		c.mu.Lock()
		e := c.props[w]
		c.mu.Unlock()
		if e != nil && maps.EqualFunc(e.props, w.Properties, sameRaw) {
			return e.encoded, nil
		}
	}
	b, err := indented(w.Properties)
	if err != nil || c == nil {
		return b, err
	}
	e := &propsEntry{props: make(map[string]json.RawMessage, len(w.Properties)), encoded: b}
	for k, v := range w.Properties {
		e.props[k] = slices.Clone(v)
	}
	c.mu.Lock()
	if c.props == nil || len(c.props) >= propsCacheSize {
		c.props = make(map[*rswebhooks.Webhook]*propsEntry)
	}
	c.props[w] = e
	c.mu.Unlock()
	return b, nil
}

type notificationEntry struct {
	ev    rswebhooks.Event
	notes []byte
}

func (c *notificationCache) get(ev *rswebhooks.Event) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	e := c.m[ev.ID]
	c.mu.Unlock()
	if e == nil || !sameEvent(&e.ev, ev) {
		return nil
	}
	return e.notes
}

// sameEvent reports whether a and b are the same snapshot, field by field
// (TestSameEventComparesEveryField keeps it in step with rswebhooks.Event).
// It may call equal snapshots different (the same instant under another
// *time.Location value), which only costs an encoding; it never calls
// different ones equal, except nil and empty lists, which encode alike.
func sameEvent(a, b *rswebhooks.Event) bool {
	return a.ID == b.ID && a.Filter == b.Filter && a.Type == b.Type && a.ResourceID == b.ResourceID &&
		a.ResourceName == b.ResourceName && a.UserID == b.UserID && a.UserName == b.UserName &&
		a.Time.Equal(b.Time) && a.Time.Location() == b.Time.Location() && a.APIVersion == b.APIVersion && a.Method == b.Method && a.Path == b.Path &&
		a.RequestID == b.RequestID && a.TraceParent == b.TraceParent && a.TraceState == b.TraceState &&
		a.Source == b.Source && slices.Equal(a.Missing, b.Missing) && a.Note == b.Note &&
		a.CategoryID == b.CategoryID && a.CategoryName == b.CategoryName && a.ExecutionID == b.ExecutionID &&
		samePtr(a.ExecutionDateUTC, b.ExecutionDateUTC) && samePtr(a.AlertTriggered, b.AlertTriggered) &&
		slices.Equal(a.DocumentIDs, b.DocumentIDs) && slices.Equal(a.Documents, b.Documents)
}

func sameRaw(a, b json.RawMessage) bool { return bytes.Equal(a, b) }

// samePtr reports whether a and b are both nil or point to equal values.
func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func (c *notificationCache) put(ev *rswebhooks.Event, notes []byte) {
	if c == nil {
		return
	}
	e := &notificationEntry{ev: *ev, notes: notes}
	e.ev.Missing = slices.Clone(ev.Missing)
	e.ev.DocumentIDs = slices.Clone(ev.DocumentIDs)
	if ev.ExecutionDateUTC != nil {
		t := *ev.ExecutionDateUTC
		e.ev.ExecutionDateUTC = &t
	}
	if ev.AlertTriggered != nil {
		b := *ev.AlertTriggered
		e.ev.AlertTriggered = &b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*notificationEntry, notificationCacheSize)
	}
	if _, ok := c.m[ev.ID]; !ok {
		if old := c.ring[c.next]; old != "" {
			delete(c.m, old)
		}
		c.ring[c.next] = ev.ID
		c.next = (c.next + 1) % notificationCacheSize
	}
	c.m[ev.ID] = e
}
