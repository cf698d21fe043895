package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
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
	// Policy, when set, is the receiver address policy of deliveries
	// (deliver.AddressPolicy). HTTP already enforces it when it dials for
	// the echo request; Policy also applies it when the URI carries
	// noecho, so a webhook that could never be delivered is refused when
	// it is registered rather than failing every delivery later.
	Policy AddressPolicy
	// UserAgent is sent with the echo request. Default "rswebhooks"; the
	// daemon passes "rswebhooks/<version>", as on notifications.
	UserAgent string
	// Resolver looks up a host name for the noecho policy check. Default
	// net.DefaultResolver.
	Resolver *net.Resolver
}

// AddressPolicy decides whether a receiver address may be reached
// (implemented by deliver.AddressPolicy).
type AddressPolicy interface {
	Check(addr netip.Addr) error
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
		return v.checkPolicy(ctx, u.Hostname())
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
	ua := v.UserAgent
	if ua == "" {
		ua = "rswebhooks"
	}
	req.Header.Set("User-Agent", ua) // after Headers: the sender's header, as on notifications
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

// checkPolicy applies Policy to host without contacting the receiver: an IP
// literal is checked as is, a name by every address it resolves to. A name
// that does not resolve (now) passes: the receiver may not exist yet, and
// the delivery dialer checks the address it really dials.
func (v *EchoVerifier) checkPolicy(ctx context.Context, host string) error {
	if v.Policy == nil {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return v.Policy.Check(a)
	}
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := v.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := v.Policy.Check(a); err != nil {
			return err
		}
	}
	return nil
}
