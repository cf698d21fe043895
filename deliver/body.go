package deliver

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	props := w.Properties
	if props == nil {
		props = map[string]json.RawMessage{}
	}
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
	b := Body{ID: d.ID, Attempt: n, Properties: props, Notifications: []Notification{nt}}
	// No HTML escaping (as the report server's Newtonsoft sender), so
	// Properties values are sent byte for byte as stored.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return nil, fmt.Errorf("encode notification body of delivery %s: %w", d.ID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
