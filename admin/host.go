package admin

import (
	"net/netip"
	"strings"
)

// checkHost refuses receiver hosts whose meaning depends on who parses
// them, so the address the policy judges is the address that is dialled:
//
//   - an IPv6 zone ([fe80::1%25eth0]) selects an interface and is refused;
//   - an IP literal with a trailing dot (127.0.0.1.) is a name to some
//     resolvers and an address to others, and is refused;
//   - a host whose last label is numeric (2130706433, 0x7f.1, 0177.0.0.1,
//     127.000.000.001) is an IPv4 address in a form inet_aton accepts but
//     netip does not; DNS names never end in an all-numeric label, so it is
//     refused with a hint to write a.b.c.d.
//
// Canonical IP literals and DNS names pass; the address policy judges them.
func checkHost(host string) error {
	if strings.Contains(host, "%") {
		return bad("WebHookUri: the host must not carry an IPv6 zone (%%25…); write the address without it")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	trimmed := strings.TrimSuffix(host, ".")
	if _, err := netip.ParseAddr(trimmed); err == nil {
		return bad("WebHookUri: the host %q must be written without a trailing dot", host)
	}
	last := trimmed[strings.LastIndexByte(trimmed, '.')+1:]
	if numericLabel(last) {
		return bad("WebHookUri: the host %q looks like an IPv4 address in a non-standard form; write it as four decimal numbers a.b.c.d without leading zeros", host)
	}
	return nil
}

// numericLabel reports whether l is a decimal, octal (leading 0) or
// hexadecimal (0x…) number, as inet_aton reads each part of an address.
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) > 2 && (l[:2] == "0x" || l[:2] == "0X") {
		l = l[2:]
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}
