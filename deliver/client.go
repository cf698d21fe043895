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

// PrivateRanges are the private-use ranges --deny-private refuses: RFC 1918
// (10/8, 172.16/12, 192.168/16), shared address space (100.64/10, RFC 6598)
// and IPv6 unique local addresses (fc00::/7, RFC 4193).
func PrivateRanges() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("fc00::/7"),
	}
}

// AddressDeniedError is returned (wrapped in the dial error) when a receiver
// address is refused by the address policy. Retrying cannot help, so the
// classifier fails the delivery at once.
type AddressDeniedError struct {
	Addr netip.Addr
	Rule netip.Prefix
}

// AddressRefused marks the error as a policy refusal for callers that do not
// import this package (the admin API shows it to every owner: it reveals the
// policy, not the state of the network).
func (e *AddressDeniedError) AddressRefused() bool { return true }

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

// Check returns nil or an *AddressDeniedError. The address is judged as
// the network stack would reach it, whatever textual form it came in:
//
//   - an IPv6 zone (%eth0) is removed: the zone picks an interface, not a
//     different address, so [::1%lo] is judged as ::1;
//   - an IPv4-mapped address (::ffff:a.b.c.d) is judged as a.b.c.d;
//   - the unspecified address (0.0.0.0, ::) reaches the local host, so it
//     is judged as loopback as well as itself;
//   - an IPv4 address embedded in IPv6 by a translation scheme (NAT64
//     64:ff9b::/96, IPv4-compatible ::a.b.c.d, 6to4 2002::/16) is judged as
//     well as the IPv6 address.
//
// The address is refused when any of these views is refused: a view is
// allowed when an Allow prefix contains it, refused when a Deny prefix does.
func (p AddressPolicy) Check(a netip.Addr) error {
	for _, v := range addressViews(a) {
		if rule, denied := p.denies(v); denied {
			return &AddressDeniedError{Addr: a.WithZone(""), Rule: rule}
		}
	}
	return nil
}

func (p AddressPolicy) denies(a netip.Addr) (netip.Prefix, bool) {
	for _, pr := range p.Allow {
		if pr.Contains(a) {
			return netip.Prefix{}, false
		}
	}
	for _, pr := range p.Deny {
		if pr.Contains(a) {
			return pr, true
		}
	}
	return netip.Prefix{}, false
}

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	compatPrefix = netip.MustParsePrefix("::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
)

// addressViews returns the addresses a is judged as (see Check), the
// normalised address first.
func addressViews(a netip.Addr) []netip.Addr {
	a = a.WithZone("").Unmap()
	views := []netip.Addr{a}
	if a.IsUnspecified() {
		if a.Is4() {
			views = append(views, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
		} else {
			views = append(views, netip.IPv6Loopback())
		}
	}
	if !a.Is6() {
		return views
	}
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a):
		views = append(views, netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case compatPrefix.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		views = append(views, netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case sixToFour.Contains(a):
		views = append(views, netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return views
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
