package rswebhooks

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Rules shared by several packages, kept here so that each is written once.

// reservedHeaders are the headers the sender sets on every notification
// (content type and framing, the ms-signature, the user agent) or that only
// a connection may carry (hop-by-hop headers), in lower case. Names with
// ReservedHeaderPrefix (the Standard Webhooks headers) are reserved too.
var reservedHeaders = map[string]bool{
	"ms-signature": true, "content-type": true, "content-length": true, "host": true,
	"user-agent": true, "transfer-encoding": true, "connection": true, "keep-alive": true,
	"te": true, "trailer": true, "upgrade": true, "proxy-connection": true,
	"content-encoding": true, // the body is sent as is; a coding would break its signature check
	"expect":           true, // 100-continue is the sender's business
	// W3C trace context: each attempt continues the event's trace.
	"traceparent": true, "tracestate": true,
}

// ReservedHeaderPrefix starts the Standard Webhooks headers (webhook-id,
// webhook-timestamp, webhook-signature); every name with it is reserved.
const ReservedHeaderPrefix = "webhook-"

// ReservedHeader reports whether a webhook's own Headers may not name
// header (any case, surrounding space ignored): the sender sets it on every
// notification, or it belongs to the connection. The registrations API
// refuses such a name, and delivery never sends it, whatever a stored
// webhook holds (one written by an older version, say).
func ReservedHeader(name string) bool {
	l := strings.ToLower(strings.TrimSpace(name))
	return reservedHeaders[l] || strings.HasPrefix(l, ReservedHeaderPrefix)
}

// ReservedHeaders lists the reserved names (lower case, sorted), without
// the names ReservedHeaderPrefix reserves.
func ReservedHeaders() []string {
	names := make([]string, 0, len(reservedHeaders))
	for n := range reservedHeaders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BearerToken returns the token of h's "Authorization: Bearer <token>"
// (scheme in any case), or "" when there is none.
func BearerToken(h http.Header) string {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// RedactURL returns raw without user info, query and fragment, which may
// hold secrets: what of a URL may be logged or recorded.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// RedactError returns err's text with the URL of a *url.Error in its chain
// (which net/http clients put there, query and all) redacted by RedactURL.
func RedactError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + RedactURL(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}
