package deliver

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// DefaultDeny lists the receiver addresses refused unless ClientOptions.Allow
// covers them: loopback (the sidecar's own ports and the report server),
// link-local, cloud metadata, unspecified and multicast addresses. Private
// ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: receivers often
// live there.
func DefaultDeny() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("169.254.169.254/32"), // cloud metadata
		netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("ff00::/8"),
		netip.MustParsePrefix("255.255.255.255/32"),
	}
}

// AddressDeniedError is returned (wrapped in the dial error) when a receiver
// address is refused by the address policy. Retrying cannot help, so the
// classifier fails the delivery at once.
type AddressDeniedError struct {
	Addr netip.Addr
	Rule netip.Prefix
}

func (e *AddressDeniedError) Error() string {
	return fmt.Sprintf("receiver address %s refused by deny rule %s (allow it with --allow-target)", e.Addr, e.Rule)
}

// AddressPolicy decides which resolved addresses deliveries may reach: an
// address inside any Allow prefix is allowed; otherwise one inside any Deny
// prefix is refused; anything else is allowed.
type AddressPolicy struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// NewAddressPolicy returns DefaultDeny plus deny, overridden by allow.
func NewAddressPolicy(allow, deny []netip.Prefix) AddressPolicy {
	return AddressPolicy{Allow: append([]netip.Prefix(nil), allow...), Deny: append(DefaultDeny(), deny...)}
}

// Check returns nil or an *AddressDeniedError.
func (p AddressPolicy) Check(a netip.Addr) error {
	a = a.Unmap()
	for _, pr := range p.Allow {
		if pr.Contains(a) {
			return nil
		}
	}
	for _, pr := range p.Deny {
		if pr.Contains(a) {
			return &AddressDeniedError{Addr: a, Rule: pr}
		}
	}
	return nil
}

// Control is a net.Dialer.Control function enforcing the policy on the
// address actually dialled, after DNS resolution, so a name that resolves
// (or re-resolves) to a refused address cannot get through.
func (p AddressPolicy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("receiver address %q: %w", address, err)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a net.Dialer enforcing the policy, for reuse by callers
// that need their own client (the admin echo check).
func (p AddressPolicy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.Control}
}

// ClientOptions configures NewHTTPClient.
type ClientOptions struct {
	// Allow lists CIDRs that are always reachable (--allow-target); it
	// overrides Deny and DefaultDeny.
	Allow []netip.Prefix
	// Deny lists CIDRs refused in addition to DefaultDeny (--deny-target).
	Deny []netip.Prefix
	// Timeout bounds a whole request (default 15 s). The engine also sets a
	// per-attempt context deadline.
	Timeout time.Duration
	// TLSConfig, when set, is cloned into the transport (default: system
	// roots, verification on).
	TLSConfig *tls.Config
}

// NewHTTPClient returns the client deliveries use: the address policy in the
// dialer, no proxy from the environment (a proxy would hide the receiver's
// address from the policy), redirects returned instead of followed, and
// verified TLS.
func NewHTTPClient(opts ClientOptions) *http.Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	policy := NewAddressPolicy(opts.Allow, opts.Deny)
	dialer := policy.Dialer(10 * time.Second)
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // only 16 KiB of an answer is kept; no need for gzip
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.Timeout,
	}
	if opts.TLSConfig != nil {
		t.TLSClientConfig = opts.TLSConfig.Clone()
	}
	return &http.Client{
		Transport: t,
		Timeout:   opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
