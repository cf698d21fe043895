// Package tap is the contract between the proxy and what observes it: the
// Exchange the proxy builds for each non-safe call, the Tap (and FieldTap)
// interface the observers implement, and Decode, the one decoder of tapped
// bodies. It depends on the standard library only, so the detector and the
// identity resolver implement it without linking the proxy.
package tap

import (
	"context"
	"net/http"
	"time"
)

// Exchange is one proxied request/response pair offered to a Tap. It is
// built only for non-safe methods (POST, PUT, PATCH, DELETE, …) and only once
// the upstream has answered with its status and headers.
//
// The proxy calls Tap.Observe before it releases the response to the client,
// so whatever Observe persists is on disk before the client sees the status.
type Exchange struct {
	Method string
	// Path is the request path as the client sent it (escaped form, virtual
	// directory prefix included); Query is the raw query.
	Path  string
	Query string

	RequestHeader http.Header
	// RequestBody holds the request body as far as it had been read when the
	// upstream answered, up to the capture cap. Empty unless Tap.Wants said yes.
	RequestBody      []byte
	RequestTruncated bool
	// RequestSkipped says why the request body was not captured whole:
	// SkipBudget (the capture budget was spent; RequestBody is then empty)
	// or SkipLimit (longer than the cap). Empty when it was, or was not wanted.
	RequestSkipped string
	// RequestDecoded is set when RequestBody is a FieldTap's scan of a body
	// sent compressed: it is no longer encoded, whatever Content-Encoding says.
	RequestDecoded bool

	Status         int
	ResponseHeader http.Header
	// ResponseBody is the response body exactly as the upstream sent it (still
	// compressed if Content-Encoding says so), up to the capture cap. Empty
	// unless Tap.Wants said yes and Status is 2xx.
	ResponseBody      []byte
	ResponseTruncated bool
	// ResponseSkipped is RequestSkipped for the response body. With
	// SkipBudget, ResponseBody holds what could be read before the budget
	// ran out (possibly nothing).
	ResponseSkipped string
	// ResponseDecoded is RequestDecoded for the response body.
	ResponseDecoded bool

	RequestID string
	Time      time.Time // when the request arrived
}

// Tap is the detect side's view of the proxy.
//
// Wants is asked for every non-safe request before it goes upstream; only
// when it answers true are bodies captured (up to the cap). Observe is then
// called once per non-safe request that got an upstream response, whatever
// its status, synchronously, before the response goes to the client. Observe
// must not retain the Exchange's byte slices after it returns and must not
// block for long: it runs on the request's critical path.
type Tap interface {
	Wants(method, path string) bool
	Observe(ctx context.Context, ex *Exchange)
}

// TapFunc adapts a pair of functions to Tap.
type TapFunc struct {
	WantsFn   func(method, path string) bool
	ObserveFn func(ctx context.Context, ex *Exchange)
}

// Wants implements Tap.
func (f TapFunc) Wants(method, path string) bool {
	return f.WantsFn != nil && f.WantsFn(method, path)
}

// Observe implements Tap.
func (f TapFunc) Observe(ctx context.Context, ex *Exchange) {
	if f.ObserveFn != nil {
		f.ObserveFn(ctx, ex)
	}
}

var _ Tap = TapFunc{}

// Reasons a body was not captured whole, in Exchange.RequestSkipped and
// ResponseSkipped and in rswebhooks_capture_skipped_total{reason}.
const (
	// SkipBudget: every byte of the capture budget (the proxy's
	// Options.CaptureBudget) was held by other requests. The body streamed
	// on uncaptured.
	SkipBudget = "budget"
	// SkipLimit: the body was longer than the proxy's Options.CaptureLimit.
	SkipLimit = "limit"
)

// FieldTap is a Tap that needs only some top-level fields of the bodies it
// wants (a resource's Id and Name, not the report file uploaded with them).
// For an exchange where Fields returns a non-nil list, the proxy does not
// copy an uncompressed body: it scans it as it streams and keeps only those
// fields, so RequestBody and ResponseBody hold a small JSON object of the
// fields found, values as sent ({"Name":"Sales","Id":"r1"}), or a bare JSON
// string body itself (a v1 create's answer); a multipart/form-data body's
// plain fields of those names become such an object too. A 5 MB upload then
// costs a few kilobytes, the response is read only as far as its fields, and
// the capture limit does not apply. An empty list captures nothing.
// A compressed body (gzip, deflate) is captured as it is, up to the capture
// limit, then inflated through the scan in small steps with the decoded size
// capped at the limit; RequestDecoded/ResponseDecoded then say the body is
// no longer encoded. Other encodings are left as they are.
type FieldTap interface {
	Tap
	Fields(method, path string) []string
}
