package reportserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// API generations the execution calls speak. v2 is the management API of
// Report Server for .NET Framework (and partly of RS.NET); v3 is RS.NET's.
const (
	APIv2 = "v2"
	APIv3 = "v3"
)

// ScheduledItem is the part of a scheduled task or data alert (v2/v3
// ScheduledTask / DataAlert models) the execution watcher needs.
type ScheduledItem struct {
	ID      string `json:"Id"`
	UserID  string `json:"UserId"`
	Name    string `json:"Name"`
	Enabled bool   `json:"Enabled"`
}

// Execution is the SchedulingExecution model. ExecutionDateUTC is read from
// ExecutionDateUtc; a value without a zone designator is taken as UTC.
type Execution struct {
	ID               string    `json:"Id"`
	DocumentIDs      []string  `json:"DocumentIds"`
	AlertTriggered   bool      `json:"AlertTriggered"`
	ExecutionDateUTC time.Time `json:"-"`
}

// UnmarshalJSON decodes a SchedulingExecution, tolerating the date shapes
// .NET serialisers emit (RFC 3339 with or without a zone, 7 fraction digits).
func (e *Execution) UnmarshalJSON(b []byte) error {
	var w struct {
		ID               string   `json:"Id"`
		DocumentIDs      []string `json:"DocumentIds"`
		AlertTriggered   bool     `json:"AlertTriggered"`
		ExecutionDateUtc string   `json:"ExecutionDateUtc"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.ID, e.DocumentIDs, e.AlertTriggered = w.ID, w.DocumentIDs, w.AlertTriggered
	e.ExecutionDateUTC = time.Time{}
	if w.ExecutionDateUtc != "" {
		t, err := parseServerTime(w.ExecutionDateUtc)
		if err != nil {
			return fmt.Errorf("execution %q: ExecutionDateUtc: %w", w.ID, err)
		}
		e.ExecutionDateUTC = t
	}
	return nil
}

func parseServerTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised date %q", s)
}

// Stamp describes the HTTP answer a list call was read from.
type Stamp struct {
	// Date is the answer's HTTP Date header: the report server's clock,
	// truncated to the second. Zero when the header was missing.
	Date time.Time
	// ETag is the answer's ETag header, if any (neither the simulator nor,
	// as far as documented, the report server sends one).
	ETag string
	// NotModified is true when the server answered 304 to If-None-Match;
	// the list is then nil and unchanged since the ETag was issued.
	NotModified bool
}

// ProbeExecutionsAPI picks the API generation for the execution calls: v3
// when GET api/reportserver/v3/scheduled-tasks answers 2xx, else v2 when
// GET api/reportserver/v2/scheduledtasks does. 404 (or 405) from v3 means
// "no v3"; any other failure is returned, so a down server is not mistaken
// for an old one.
func (c *Client) ProbeExecutionsAPI(ctx context.Context) (string, error) {
	_, _, err := c.getStamped(ctx, "api/reportserver/v3/scheduled-tasks", "")
	if err == nil {
		return APIv3, nil
	}
	var se *StatusError
	if !errors.Is(err, ErrNotFound) && !(errors.As(err, &se) && se.StatusCode == http.StatusMethodNotAllowed) {
		return "", fmt.Errorf("reportserver: probe v3: %w", err)
	}
	if _, _, err := c.getStamped(ctx, "api/reportserver/v2/scheduledtasks", ""); err != nil {
		return "", fmt.Errorf("reportserver: probe v2: %w", err)
	}
	return APIv2, nil
}

func listPath(version string, alerts bool) (string, error) {
	switch version {
	case APIv2:
		if alerts {
			return "api/reportserver/v2/dataalerts", nil
		}
		return "api/reportserver/v2/scheduledtasks", nil
	case APIv3:
		if alerts {
			return "api/reportserver/v3/data-alerts", nil
		}
		return "api/reportserver/v3/scheduled-tasks", nil
	}
	return "", fmt.Errorf("reportserver: API version must be %q or %q, got %q", APIv2, APIv3, version)
}

func executionsPath(version string, alerts bool, id string) (string, error) {
	if id == "" {
		return "", errors.New("reportserver: task or alert id is required")
	}
	e := url.PathEscape(id)
	switch version {
	case APIv2:
		if alerts {
			return "api/reportserver/v2/executions/dataalerts/" + e, nil
		}
		return "api/reportserver/v2/executions/scheduledtasks/" + e, nil
	case APIv3:
		if alerts {
			return "api/reportserver/v3/data-alerts/" + e + "/executions", nil
		}
		return "api/reportserver/v3/scheduled-tasks/" + e + "/executions", nil
	}
	return "", fmt.Errorf("reportserver: API version must be %q or %q, got %q", APIv2, APIv3, version)
}

// ScheduledTasks lists the scheduled tasks the service account can read
// (v2 GET scheduledtasks, v3 GET scheduled-tasks).
func (c *Client) ScheduledTasks(ctx context.Context, version string) ([]ScheduledItem, Stamp, error) {
	return c.listItems(ctx, version, false)
}

// DataAlerts lists the data alerts the service account can read
// (v2 GET dataalerts, v3 GET data-alerts).
func (c *Client) DataAlerts(ctx context.Context, version string) ([]ScheduledItem, Stamp, error) {
	return c.listItems(ctx, version, true)
}

func (c *Client) listItems(ctx context.Context, version string, alerts bool) ([]ScheduledItem, Stamp, error) {
	p, err := listPath(version, alerts)
	if err != nil {
		return nil, Stamp{}, err
	}
	raw, st, err := c.getStamped(ctx, p, "")
	if err != nil {
		return nil, st, err
	}
	var items []ScheduledItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, st, fmt.Errorf("reportserver: GET %s: decode: %w", p, err)
	}
	return items, st, nil
}

// TaskExecutions reads the execution history of scheduled task id (v2 GET
// executions/scheduledtasks/{id}, v3 GET scheduled-tasks/{id}/executions).
// etag, when non-empty, is sent as If-None-Match; a 304 answer gives a nil
// list and Stamp.NotModified. A deleted task gives ErrNotFound.
func (c *Client) TaskExecutions(ctx context.Context, version, id, etag string) ([]Execution, Stamp, error) {
	return c.executions(ctx, version, false, id, etag)
}

// AlertExecutions reads the execution history of data alert id (v2 GET
// executions/dataalerts/{id}, v3 GET data-alerts/{id}/executions); see
// TaskExecutions.
func (c *Client) AlertExecutions(ctx context.Context, version, id, etag string) ([]Execution, Stamp, error) {
	return c.executions(ctx, version, true, id, etag)
}

func (c *Client) executions(ctx context.Context, version string, alerts bool, id, etag string) ([]Execution, Stamp, error) {
	p, err := executionsPath(version, alerts, id)
	if err != nil {
		return nil, Stamp{}, err
	}
	raw, st, err := c.getStamped(ctx, p, etag)
	if err != nil || st.NotModified {
		return nil, st, err
	}
	var es []Execution
	if err := json.Unmarshal(raw, &es); err != nil {
		return nil, st, fmt.Errorf("reportserver: GET %s: decode: %w", p, err)
	}
	return es, st, nil
}

// getStamped is getRaw plus the answer's Date and ETag headers, and an
// optional If-None-Match.
func (c *Client) getStamped(ctx context.Context, rel, etag string) ([]byte, Stamp, error) {
	if !c.Configured() {
		return nil, Stamp{}, ErrNotConfigured
	}
	op := "GET " + rel
	for try := 0; ; try++ {
		tok, err := c.serviceToken(ctx)
		if err != nil {
			return nil, Stamp{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(rel), nil)
		if err != nil {
			return nil, Stamp{}, fmt.Errorf("reportserver: %s: %w", op, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, Stamp{}, fmt.Errorf("reportserver: %s: %w", op, err)
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		var st Stamp
		if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			st.Date = d.UTC()
		}
		st.ETag = resp.Header.Get("ETag")
		c.log.Debug().Str("method", http.MethodGet).Str("path", rel).Int("status", resp.StatusCode).Msg("report server call")
		if rerr != nil {
			return nil, st, fmt.Errorf("reportserver: %s: read answer: %w", op, rerr)
		}
		body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
		switch s := resp.StatusCode; {
		case s >= 200 && s < 300:
			return body, st, nil
		case s == http.StatusNotModified && etag != "":
			st.NotModified = true
			return nil, st, nil
		case s == http.StatusUnauthorized && try == 0 && c.static == "":
			c.dropToken(tok)
			continue
		case s == http.StatusNotFound:
			return nil, st, fmt.Errorf("reportserver: %s: %w", op, ErrNotFound)
		default:
			return nil, st, &StatusError{Op: op, StatusCode: s, Body: strings.TrimSpace(snippet(body))}
		}
	}
}
