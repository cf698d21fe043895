// Package adminclient is a small Go client of the rswebhooks admin API: the
// webhook registrations API (compatible with the report server's own
// api/webhooks/registrations) and its extensions for filters, deliveries,
// redelivery and pings. It speaks the PascalCase JSON of the rswebhooks
// domain types, and turns the server's {"Message": …} errors into *Error.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// DefaultURL is the admin listener a client talks to when none is given.
const DefaultURL = "http://127.0.0.1:8081"

// maxResponse bounds how much of a response body the client reads.
const maxResponse = 32 << 20

// Options configure a Client.
type Options struct {
	// BaseURL is the admin listener, e.g. http://127.0.0.1:8081. A path in
	// it is kept as a prefix. Default DefaultURL.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>": the operator token or
	// a report-server access token. Empty sends no Authorization header.
	Token string
	// HTTP is the client used for every call. Default: a client with no
	// timeout of its own (bound calls with the context).
	HTTP *http.Client
	// UserAgent is sent with every call. Default "rswebhooks-adminclient".
	UserAgent string
}

// Client calls the admin API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	ua    string
}

// New validates opts and returns a Client.
func New(opts Options) (*Client, error) {
	raw := opts.BaseURL
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("adminclient: BaseURL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("adminclient: BaseURL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("adminclient: BaseURL %q: a host is required", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("adminclient: BaseURL %q: must not carry user info, a query or a fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{base: u, token: opts.Token, http: opts.HTTP, ua: opts.UserAgent}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.ua == "" {
		c.ua = "rswebhooks-adminclient"
	}
	return c, nil
}

// Error is a non-2xx answer of the admin API. Message is the server's
// {"Message": …} text, or the start of the body when it sent no JSON.
type Error struct {
	Status  int
	Method  string
	Path    string
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, msg)
}

// StatusCode returns the HTTP status of err if it is (or wraps) an *Error,
// and 0 otherwise.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404 from the admin API.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// Filter is one entry of GET /api/webhooks/filters.
type Filter struct {
	Name        string `json:"Name"`
	Description string `json:"Description"`
}

// DeliveryDetail is a delivery with its attempts, as answered by
// GET /api/webhooks/deliveries/{id}.
type DeliveryDetail struct {
	rswebhooks.Delivery
	// AttemptLog lists the delivery's attempts in order.
	AttemptLog []rswebhooks.Attempt
}

// UnmarshalJSON accepts the admin API's shape — the delivery's fields with
// the attempt list in "Attempts" and the count in "AttemptCount" — and, for
// tolerance, the list in "AttemptLog" or a nested {"Delivery": …,
// "Attempts": […]}.
func (d *DeliveryDetail) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if inner, ok := raw["Delivery"]; ok {
		if err := json.Unmarshal(inner, &d.Delivery); err != nil {
			return fmt.Errorf("Delivery: %w", err)
		}
	} else {
		// Decode everything but a list-valued Attempts into the delivery.
		flat := make(map[string]json.RawMessage, len(raw))
		for k, v := range raw {
			if k == "AttemptCount" || k == "Attempts" && isArray(v) {
				continue
			}
			flat[k] = v
		}
		fb, _ := json.Marshal(flat)
		if err := json.Unmarshal(fb, &d.Delivery); err != nil {
			return err
		}
	}
	for _, key := range []string{"Attempts", "AttemptLog", "AttemptHistory"} {
		if v, ok := raw[key]; ok && isArray(v) {
			if err := json.Unmarshal(v, &d.AttemptLog); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			break
		}
	}
	if v, ok := raw["AttemptCount"]; ok {
		if err := json.Unmarshal(v, &d.Attempts); err != nil {
			return fmt.Errorf("AttemptCount: %w", err)
		}
	}
	if d.Attempts == 0 {
		d.Attempts = len(d.AttemptLog)
	}
	return nil
}

func isArray(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '['
}

const (
	registrationsPath = "/api/webhooks/registrations"
	deliveriesPath    = "/api/webhooks/deliveries"
	filtersPath       = "/api/webhooks/filters"
	eventsPath        = "/api/webhooks/events"
	unmatchedPath     = "/api/webhooks/unmatched"
)

// ListWebhooks returns the caller's webhooks (all of them for an
// administrator or the operator).
func (c *Client) ListWebhooks(ctx context.Context) ([]*rswebhooks.Webhook, error) {
	var out []*rswebhooks.Webhook
	err := c.do(ctx, http.MethodGet, registrationsPath, nil, &out)
	return out, err
}

// GetWebhook returns one webhook.
func (c *Client) GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out rswebhooks.Webhook
	if err := c.do(ctx, http.MethodGet, registrationsPath+"/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateWebhook registers w (its Id is ignored by the server) and returns the
// stored webhook, with its generated Id and, if w had none, its Secret.
func (c *Client) CreateWebhook(ctx context.Context, w *rswebhooks.Webhook) (*rswebhooks.Webhook, error) {
	var out rswebhooks.Webhook
	if err := c.do(ctx, http.MethodPost, registrationsPath, w, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWebhook replaces the webhook w.ID with w and returns the stored
// webhook (read back when the server answers with an empty body, as the
// report server's own API does).
func (c *Client) UpdateWebhook(ctx context.Context, w *rswebhooks.Webhook) (*rswebhooks.Webhook, error) {
	if err := checkID("webhook Id", w.ID); err != nil {
		return nil, err
	}
	var out rswebhooks.Webhook
	got, err := c.doMaybe(ctx, http.MethodPut, registrationsPath+"/"+url.PathEscape(w.ID), w, &out)
	if err != nil {
		return nil, err
	}
	if !got {
		return c.GetWebhook(ctx, w.ID)
	}
	return &out, nil
}

// DeleteWebhook removes one webhook.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	if err := checkID("webhook id", id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, registrationsPath+"/"+url.PathEscape(id), nil, nil)
}

// DeleteAllWebhooks removes all of the caller's webhooks.
func (c *Client) DeleteAllWebhooks(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, registrationsPath, nil, nil)
}

// SetPaused reads the webhook, sets IsPaused and writes it back.
func (c *Client) SetPaused(ctx context.Context, id string, paused bool) (*rswebhooks.Webhook, error) {
	w, err := c.GetWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	w.IsPaused = paused
	return c.UpdateWebhook(ctx, w)
}

// Rotate is the body of POST …/registrations/{id}/rotate. Zero values
// leave the choice to the server: a generated secret, a 24 h grace period.
type Rotate struct {
	// Secret is the new secret (32–128 characters); empty: generated.
	Secret string `json:"Secret,omitempty"`
	// Grace is how long the previous secret keeps signing (whole seconds,
	// at most 7 days); nil: the server's default of 24 h; 0: none.
	Grace *time.Duration `json:"-"`
}

// MarshalJSON writes Grace as GraceSeconds.
func (r Rotate) MarshalJSON() ([]byte, error) {
	type body struct {
		Secret       string `json:"Secret,omitempty"`
		GraceSeconds *int64 `json:"GraceSeconds,omitempty"`
	}
	b := body{Secret: r.Secret}
	if r.Grace != nil {
		s := int64(*r.Grace / time.Second)
		b.GraceSeconds = &s
	}
	return json.Marshal(b)
}

// RotateSecret starts a secret rotation and returns the webhook with its
// new Secret (shown once) and Rotation.
func (c *Client) RotateSecret(ctx context.Context, id string, r Rotate) (*rswebhooks.Webhook, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	if r.Grace != nil && (*r.Grace < 0 || *r.Grace%time.Second != 0) {
		return nil, fmt.Errorf("grace: must be whole seconds, 0 or more, got %s", *r.Grace)
	}
	var out rswebhooks.Webhook
	if err := c.do(ctx, http.MethodPost, registrationsPath+"/"+url.PathEscape(id)+"/rotate", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PromoteRotation makes ms-signature use the new secret of a running
// rotation, moving the webhook to uri in the same write when uri is set.
func (c *Client) PromoteRotation(ctx context.Context, id, uri string) (*rswebhooks.Webhook, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	body := struct {
		WebHookURI string `json:"WebHookUri,omitempty"`
	}{uri}
	var out rswebhooks.Webhook
	if err := c.do(ctx, http.MethodPost, registrationsPath+"/"+url.PathEscape(id)+"/rotate/promote", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Filters lists the filter names a webhook may subscribe to.
func (c *Client) Filters(ctx context.Context) ([]Filter, error) {
	var out []Filter
	err := c.do(ctx, http.MethodGet, filtersPath, nil, &out)
	return out, err
}

// Deliveries lists a webhook's most recent deliveries, newest first; limit
// 0 means the server's default (50).
func (c *Client) Deliveries(ctx context.Context, webhookID string, limit int) ([]*rswebhooks.Delivery, error) {
	if err := checkID("webhook id", webhookID); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("limit: must not be negative")
	}
	path := registrationsPath + "/" + url.PathEscape(webhookID) + "/deliveries"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out []*rswebhooks.Delivery
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Delivery returns one delivery with its attempts.
func (c *Client) Delivery(ctx context.Context, id string) (*DeliveryDetail, error) {
	if err := checkID("delivery id", id); err != nil {
		return nil, err
	}
	var out DeliveryDetail
	if err := c.do(ctx, http.MethodGet, deliveriesPath+"/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Redeliver queues a finished delivery again and returns it as the server
// answered (nil if the server sent no body).
func (c *Client) Redeliver(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	if err := checkID("delivery id", id); err != nil {
		return nil, err
	}
	return c.postDelivery(ctx, deliveriesPath+"/"+url.PathEscape(id)+"/redeliver")
}

// Ping queues a test notification to the webhook and returns its delivery
// (nil if the server sent no body).
func (c *Client) Ping(ctx context.Context, webhookID string) (*rswebhooks.Delivery, error) {
	if err := checkID("webhook id", webhookID); err != nil {
		return nil, err
	}
	return c.postDelivery(ctx, registrationsPath+"/"+url.PathEscape(webhookID)+"/ping")
}

func (c *Client) postDelivery(ctx context.Context, path string) (*rswebhooks.Delivery, error) {
	var out rswebhooks.Delivery
	got, err := c.doMaybe(ctx, http.MethodPost, path, nil, &out)
	if err != nil || !got {
		return nil, err
	}
	return &out, nil
}

func checkID(what, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%s: must not be empty", what)
	}
	return nil
}

// do calls the API and decodes a 2xx body into out (if out is non-nil); an
// empty body is an error when out is non-nil.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	got, err := c.doMaybe(ctx, method, path, in, out)
	if err == nil && out != nil && !got {
		return fmt.Errorf("%s %s: the server answered with an empty body", method, path)
	}
	return err
}

// doMaybe calls the API and decodes a non-empty 2xx body into out. It
// reports whether there was a body to decode.
func (c *Client) doMaybe(ctx context.Context, method, path string, in, out any) (bool, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	path, query, _ := strings.Cut(path, "?")
	u.Path = c.base.Path + path
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if in != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return false, fmt.Errorf("%s %s: reading the response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, &Error{Status: resp.StatusCode, Method: method, Path: path, Message: serverMessage(b)}
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return false, fmt.Errorf("%s %s: decoding the response: %w", method, path, err)
	}
	return true, nil
}

// serverMessage extracts {"Message": …} (ASP.NET style, any key case), or
// else the first line of the body, shortened.
func serverMessage(b []byte) string {
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		for k, v := range m {
			if strings.EqualFold(k, "Message") {
				if s, ok := v.(string); ok {
					return s
				}
			}
		}
	}
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// EventsQuery selects events from the feed; zero fields select everything.
type EventsQuery struct {
	Since, Until time.Time // [Since, Until)
	Filters      []string  // filter names
	Types        []string  // event types
	Limit        int       // 0: the server's default (50)
	Cursor       string    // NextCursor of the previous page
}

// Events returns one page of the events feed, newest first. Follow
// NextCursor (set it as q.Cursor) for older events.
func (c *Client) Events(ctx context.Context, q EventsQuery) (*rswebhooks.EventPage, error) {
	if q.Limit < 0 {
		return nil, fmt.Errorf("limit: must not be negative")
	}
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if len(q.Filters) > 0 {
		v.Set("filter", strings.Join(q.Filters, ","))
	}
	if len(q.Types) > 0 {
		v.Set("type", strings.Join(q.Types, ","))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	path := eventsPath
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out rswebhooks.EventPage
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Replay queues the stored events in [req.Since, req.Until) that the
// webhook's filters match and its owner may read, as new deliveries. One
// call is bounded by the server; while the answer's Done is false, call
// again with its Next.
func (c *Client) Replay(ctx context.Context, webhookID string, req rswebhooks.ReplayRequest) (*rswebhooks.ReplayResult, error) {
	if err := checkID("webhook id", webhookID); err != nil {
		return nil, err
	}
	if req.Since.IsZero() {
		return nil, fmt.Errorf("since: required")
	}
	body := map[string]any{"Since": req.Since.UTC()}
	if !req.Until.IsZero() {
		body["Until"] = req.Until.UTC()
	}
	if req.After != "" {
		body["After"] = req.After
	}
	var out rswebhooks.ReplayResult
	if err := c.do(ctx, http.MethodPost, registrationsPath+"/"+url.PathEscape(webhookID)+"/replay", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Unmatched lists the successful mutating calls no detection rule matched,
// most recently seen first, each with a suggested rule (administrators and
// the operator only).
func (c *Client) Unmatched(ctx context.Context) ([]rswebhooks.UnmatchedRoute, error) {
	var out []rswebhooks.UnmatchedRoute
	err := c.do(ctx, http.MethodGet, unmatchedPath, nil, &out)
	return out, err
}
