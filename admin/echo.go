package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// Verifier checks that a receiver is willing to take notifications before a
// webhook is stored. The error's text is shown to the caller, so it must not
// contain the secret or header values.
type Verifier interface {
	Verify(ctx context.Context, w *rswebhooks.Webhook) error
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, w *rswebhooks.Webhook) error

// Verify implements Verifier.
func (f VerifierFunc) Verify(ctx context.Context, w *rswebhooks.Webhook) error { return f(ctx, w) }

// EchoVerifier is the report server's echo check: unless the WebHookUri's
// query has a "noecho" parameter (any case), it sends GET WebHookUri with the
// query replaced by echo=<32 random hex characters> and the webhook's
// Headers, and expects a 2xx answer whose body is exactly the echo value.
type EchoVerifier struct {
	// HTTP sends the check. Required: pass the delivery client so the same
	// receiver address policy (allow/deny CIDRs at dial time) applies.
	HTTP *http.Client
	// Timeout bounds the whole check. Default 5s.
	Timeout time.Duration
}

var _ Verifier = (*EchoVerifier)(nil)

// SkipsEcho reports whether the URI opts out of the echo check.
func SkipsEcho(u *url.URL) bool {
	for k := range u.Query() {
		if strings.EqualFold(k, "noecho") {
			return true
		}
	}
	return false
}

// Verify implements Verifier.
func (v *EchoVerifier) Verify(ctx context.Context, w *rswebhooks.Webhook) error {
	u, err := url.Parse(w.URI)
	if err != nil {
		return fmt.Errorf("cannot parse the URI: %w", stripURL(err))
	}
	if SkipsEcho(u) {
		return nil
	}
	if v.HTTP == nil {
		return errors.New("no HTTP client configured for the echo check")
	}
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	echo := randomHex(16)
	e := *u
	e.RawQuery, e.Fragment = "echo="+echo, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.String(), nil)
	if err != nil {
		return fmt.Errorf("cannot build the echo request: %w", stripURL(err))
	}
	for k, val := range w.Headers {
		req.Header.Set(k, val)
	}
	resp, err := v.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("the receiver did not answer the echo request within %s", timeout)
		}
		return fmt.Errorf("the echo request failed: %w", stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(echo))+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered the echo request with status %d; it must answer 2xx with the echo query value", resp.StatusCode)
	}
	if err != nil {
		return fmt.Errorf("reading the echo answer: %w", err)
	}
	if string(body) != echo {
		return errors.New("the receiver's answer to the echo request was not exactly the echo query value (add a noecho query parameter to skip this check)")
	}
	return nil
}
