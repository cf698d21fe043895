package deliver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAddressPolicy(t *testing.T) {
	p := NewAddressPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")})
	for _, tc := range []struct {
		addr string
		rule string // "" = allowed
	}{
		{"169.254.169.254", "169.254.169.254/32"},
		{"169.254.1.1", "169.254.0.0/16"},
		{"fd00:ec2::254", "fd00:ec2::254/128"},
		{"fe80::1", "fe80::/10"},
		{"0.0.0.0", "0.0.0.0/8"},
		{"::", "::/128"},
		{"224.0.0.1", "224.0.0.0/4"},
		{"ff02::1", "ff00::/8"},
		{"::ffff:169.254.169.254", "169.254.169.254/32"},
		{"10.1.2.3", "10.1.0.0/16"},
		// Zones are removed before judging; the unspecified address is
		// judged as loopback too; IPv4 embedded in IPv6 is judged as well.
		{"::1%lo", "::1/128"},
		{"::1%anything", "::1/128"},
		{"fe80::1%eth0", "fe80::/10"},
		{"fd00:ec2::254%eth0", "fd00:ec2::254/128"},
		{"ff02::1%lo", "ff00::/8"},
		{"::%lo", "::/128"},
		{"64:ff9b::a9fe:a9fe", "169.254.169.254/32"},
		{"::a9fe:a9fe", "169.254.169.254/32"},
		{"2002:a9fe:a9fe::1", "169.254.169.254/32"},
		{"64:ff9b::7f00:1", ""}, // 127/8 is allowed in this policy
		{"64:ff9b::5db8:d822", ""},
		{"::1", "::1/128"},
		{"127.0.0.1", ""},
		{"10.2.0.1", ""},
		{"192.168.1.10", ""},
		{"93.184.216.34", ""},
	} {
		err := p.Check(netip.MustParseAddr(tc.addr))
		var denied *AddressDeniedError
		switch {
		case tc.rule == "" && err != nil:
			t.Errorf("%s: %v, want allowed", tc.addr, err)
		case tc.rule != "" && (!errors.As(err, &denied) || denied.Rule.String() != tc.rule):
			t.Errorf("%s: %v, want denied by %s", tc.addr, err, tc.rule)
		}
	}
}

func TestHTTPClientAddressPolicy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	post := func(c *http.Client, url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	def := NewHTTPClient(ClientOptions{})
	var denied *AddressDeniedError
	if err := post(def, srv.URL); !errors.As(err, &denied) || !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "127.0.0.0/8") {
		t.Fatalf("default client to loopback: %v, want denied naming the address and rule", err)
	}
	if err := post(def, "http://169.254.169.254/latest/meta-data/"); !errors.As(err, &denied) || denied.Rule.String() != "169.254.169.254/32" {
		t.Fatalf("default client to metadata: %v", err)
	}
	// A name resolving to a refused address is refused too (checked after DNS).
	if err := post(def, "http://localhost:"+srv.URL[strings.LastIndex(srv.URL, ":")+1:]); !errors.As(err, &denied) {
		t.Fatalf("localhost: %v, want denied", err)
	}
	allowed := NewHTTPClient(ClientOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err := post(allowed, srv.URL); err != nil {
		t.Fatalf("loopback allowed: %v", err)
	}
	if err := post(allowed, "http://169.254.169.254/"); !errors.As(err, &denied) {
		t.Fatalf("metadata with loopback allowed: %v", err)
	}
}

// TestUnspecifiedIsLoopback: 0.0.0.0 and :: reach the local host, so an
// operator who denies loopback denies them even when the unspecified rule
// itself is lifted.
func TestUnspecifiedIsLoopback(t *testing.T) {
	p := NewAddressPolicy([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("::/128")}, nil)
	for _, a := range []string{"0.0.0.0", "::", "::%lo", "::ffff:0.0.0.0"} {
		var denied *AddressDeniedError
		if err := p.Check(netip.MustParseAddr(a)); !errors.As(err, &denied) || !denied.Rule.Addr().IsLoopback() {
			t.Errorf("%s: %v, want refused by a loopback rule", a, err)
		}
	}
}

// TestDenyPrivate: PrivateRanges (--deny-private) refuses RFC 1918, shared
// and unique local addresses in every form, and --allow-target overrides it.
func TestDenyPrivate(t *testing.T) {
	p := NewAddressPolicy([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, PrivateRanges())
	for _, a := range []string{"10.1.2.3", "172.16.0.1", "192.168.1.10", "100.64.0.1", "fd00::1", "fc00::1%eth0", "::ffff:192.168.1.1", "64:ff9b::a00:1"} {
		var denied *AddressDeniedError
		if err := p.Check(netip.MustParseAddr(a)); !errors.As(err, &denied) {
			t.Errorf("%s: %v, want refused", a, err)
		}
	}
	for _, a := range []string{"10.9.1.1", "93.184.216.34", "172.32.0.1", "2001:db8::1"} {
		if err := p.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s: %v, want allowed", a, err)
		}
	}
}
