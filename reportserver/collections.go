package reportserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// collectionPaths maps each filter name to its list route per API version.
var collectionPaths = map[string][2]string{
	"reports":     {"api/reportserver/v2/reports", "api/reportserver/v3/reports"},
	"categories":  {"api/reportserver/v2/categories", "api/reportserver/v3/categories"},
	"connections": {"api/reportserver/v2/dataconnections", "api/reportserver/v3/data-connections"},
	"tasks":       {"api/reportserver/v2/scheduledtasks", "api/reportserver/v3/scheduled-tasks"},
	"alerts":      {"api/reportserver/v2/dataalerts", "api/reportserver/v3/data-alerts"},
}

// CollectionPath returns the list route of a resource collection (a filter
// name: reports, categories, connections, tasks, alerts) in API version v2
// or v3.
func CollectionPath(version, filter string) (string, error) {
	p, ok := collectionPaths[filter]
	if !ok {
		return "", fmt.Errorf("reportserver: collection %q is not one of reports, categories, connections, tasks, alerts", filter)
	}
	switch version {
	case APIv2:
		return p[0], nil
	case APIv3:
		return p[1], nil
	}
	return "", fmt.Errorf("reportserver: API version must be %q or %q, got %q", APIv2, APIv3, version)
}

// Collection lists one resource collection with the service account, in one
// request: each element is one item's JSON object, undecoded, so the caller
// decides which fields matter. The list holds what the service account can
// read (all of it for an administrator).
func (c *Client) Collection(ctx context.Context, version, filter string) ([]json.RawMessage, Stamp, error) {
	p, err := CollectionPath(version, filter)
	if err != nil {
		return nil, Stamp{}, err
	}
	raw, st, err := c.getStamped(ctx, p, "")
	if err != nil {
		return nil, st, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, st, fmt.Errorf("reportserver: GET %s: decode: %w", p, err)
	}
	return items, st, nil
}

// ServiceIsAdmin reports whether the service account is a report-server
// administrator: by user name (IsAdmin) when it signs in with a password;
// with a static token, whose user is unknown, by whether it may list users,
// which only administrators may (a 401 or 403 answer means it is not one).
func (c *Client) ServiceIsAdmin(ctx context.Context) (bool, error) {
	if !c.Configured() {
		return false, ErrNotConfigured
	}
	if c.user != "" {
		return c.IsAdmin(ctx, c.user)
	}
	if _, err := c.Users(ctx); err != nil {
		var se *StatusError
		if errors.As(err, &se) && (se.StatusCode == http.StatusForbidden || se.StatusCode == http.StatusUnauthorized) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
