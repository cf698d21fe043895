package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
)

// errDialAborted stops a dial the policy let through before it connects:
// the fuzz test records addresses, it never reaches them.
var errDialAborted = errors.New("dial aborted by the test after the policy allowed it")

// recordingClient is the delivery client's shape (the policy in
// net.Dialer.Control) with two test-only changes: every address the policy
// lets through is recorded and the dial aborted, and DNS is offline
// (/etc/hosts still answers, so "localhost" resolves).
func recordingClient(p deliver.AddressPolicy) (*http.Client, *net.Resolver, func() []string) {
	var mu sync.Mutex
	var dialled []string
	offline := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("offline")
	}}
	d := &net.Dialer{Timeout: 2 * time.Second, Resolver: offline, Control: func(network, address string, c syscall.RawConn) error {
		if err := p.Control(network, address, c); err != nil {
			return err
		}
		mu.Lock()
		dialled = append(dialled, address)
		mu.Unlock()
		return errDialAborted
	}}
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext}, Timeout: 2 * time.Second}
	return c, offline, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), dialled...)
	}
}

// oracleDenied is an independent statement of the default policy, written
// with the net.IP predicates rather than netip prefixes: whether the
// address a dial reached (host[%zone]:port as net.Dialer.Control sees it)
// is loopback, unspecified, link-local, multicast, broadcast, 0.0.0.0/8 or
// cloud metadata, directly or through an embedding IPv4 address (mapped,
// IPv4-compatible, NAT64 64:ff9b::/96, 6to4).
func oracleDenied(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return true // not an address we understand: count it as a breach
	}
	host, _, _ = strings.Cut(host, "%")
	ip := net.ParseIP(host)
	if ip == nil {
		return true
	}
	bad := func(ip net.IP) bool {
		if ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
			ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.Equal(net.IPv4bcast) {
			return true
		}
		if v4 := ip.To4(); v4 != nil && v4[0] == 0 {
			return true
		}
		return ip.Equal(net.ParseIP("fd00:ec2::254"))
	}
	if bad(ip) {
		return true
	}
	if ip.To4() == nil {
		var emb net.IP
		switch {
		case ip[0] == 0 && ip[1] == 0x64 && ip[2] == 0xff && ip[3] == 0x9b && allZero(ip[4:12]):
			emb = ip[12:16]
		case allZero(ip[:12]):
			emb = ip[12:16]
		case ip[0] == 0x20 && ip[1] == 0x02:
			emb = ip[2:6]
		}
		if emb != nil && bad(net.IPv4(emb[0], emb[1], emb[2], emb[3])) {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// addressForms are textual forms of hosts the default policy refuses (and a
// few it allows), as they appear in a WebHookUri's authority.
var addressForms = []string{
	"127.0.0.1", "localhost", "localhost.", "LOCALHOST", "127.1", "127.0.1", "0x7f000001", "2130706433",
	"0177.0.0.1", "0x7f.0.0.1", "127.000.000.001", "017700000001", "127.0.0.1.", "0", "0.0.0.0", "0x0",
	"[::1]", "[::1%25lo]", "[::1%251]", "[::1%25eth0]", "[::1%25anything]", "[::%25lo]", "[::]", "[0:0:0:0:0:0:0:1]",
	"[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:169.254.169.254]", "[::127.0.0.1]", "[::7f00:1]",
	"[64:ff9b::127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b::169.254.169.254]", "[2002:7f00:1::]",
	"[2002:a9fe:a9fe::1]", "[fe80::1]", "[fe80::1%25lo]", "[fd00:ec2::254]", "[fd00:ec2::254%25eth0]",
	"[ff02::1%25lo]", "[ff02::1]", "169.254.169.254", "169.254.169.254.", "0xa9fea9fe", "2852039166",
	"224.0.0.1", "255.255.255.255", "[::ffff:0.0.0.0]", "[::ffff:0:0]",
	"10.0.0.1", "192.168.1.10", "93.184.216.34", "[2001:db8::1]", "example.com", "receiver.example.",
}

// FuzzReceiverAddress asserts that no textual form of a receiver host makes
// the default policy dial an address it refuses: not through registration
// (validation, then the echo check or the noecho policy check), not through
// a delivery to the raw URI. Inputs are the host part of the authority.
func FuzzReceiverAddress(f *testing.F) {
	for _, h := range addressForms {
		f.Add(h)
	}
	policy := deliver.NewAddressPolicy(nil, nil)
	client, offline, dialled := recordingClient(policy)
	ev := &EchoVerifier{HTTP: client, Timeout: 2 * time.Second, Policy: policy, Resolver: offline}
	f.Fuzz(func(t *testing.T, host string) {
		if len(host) > 200 {
			return
		}
		ctx := context.Background()
		for _, suffix := range []string{"/x", "/x?noecho"} {
			uri := "http://" + host + ":9" + suffix
			before := len(dialled())
			// Delivery: the raw URI, whether or not validation would take it.
			if req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, nil); err == nil {
				if resp, err := client.Do(req); err == nil {
					_ = resp.Body.Close()
				}
			}
			// Registration: validation, then the verifier.
			registered := false
			if s, err := checkURI(uri); err == nil {
				registered = ev.Verify(ctx, &rswebhooks.Webhook{URI: s}) == nil
			}
			for _, a := range dialled()[before:] {
				if oracleDenied(a) {
					t.Fatalf("host %q (%s): dialled %s, which the policy refuses", host, uri, a)
				}
			}
			// A registration that passed with noecho names an address the
			// policy allows (names that do not resolve offline pass: the
			// dialler judges them).
			if registered && strings.HasSuffix(suffix, "noecho") {
				if lit := literalHost(uri); lit != "" && oracleDenied(net.JoinHostPort(lit, "9")) {
					t.Fatalf("host %q: registered with noecho although %s is refused", host, lit)
				}
			}
		}
	})
}

// literalHost returns the URI's host when it is an IP literal as net.ParseIP
// reads it (zone removed), else "".
func literalHost(uri string) string {
	rest := strings.TrimPrefix(uri, "http://")
	hostport, _, _ := strings.Cut(rest, "/")
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	h = strings.ReplaceAll(h, "%25", "%")
	h, _, _ = strings.Cut(h, "%")
	if net.ParseIP(h) == nil {
		return ""
	}
	return h
}

// TestCheckHost pins the host forms registration refuses with a message
// naming the field.
func TestCheckHost(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"::1%lo", "zone"}, {"fe80::1%eth0", "zone"}, {"127.0.0.1.", "trailing dot"},
		{"2130706433", "non-standard"}, {"0x7f000001", "non-standard"}, {"127.1", "non-standard"},
		{"0177.0.0.1", "non-standard"}, {"127.000.000.001", "non-standard"},
		{"127.0.0.1", ""}, {"::1", ""}, {"example.com", ""}, {"example.com.", ""}, {"10.0.0.1", ""}, {"a1b2.example", ""},
	} {
		err := checkHost(tc.host)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", tc.host, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "WebHookUri: ")):
			t.Errorf("%q: %v, want an error naming WebHookUri and %q", tc.host, err, tc.want)
		}
	}
}
