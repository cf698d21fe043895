package proxy

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// hopHeaders are hop-by-hop headers (RFC 9110 §7.6.1), removed in both
// directions. Same list as net/http/httputil.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard but still sent by libcurl and rejected by e.g. google
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",      // canonicalized version of "TE"
	"Trailer", // not Trailers per URL above; https://www.rfc-editor.org/errata_search.php?eid=4522
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes the hop-by-hop headers and every header named in
// Connection. It reports whether the header announced "TE: trailers", which a
// proxy passes on (gRPC and friends need it).
func removeHopByHop(h http.Header) (teTrailers bool) {
	for _, v := range h["Connection"] {
		for sf := range strings.SplitSeq(v, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, v := range h["Te"] {
		if tokenListContains(v, "trailers") {
			teTrailers = true
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	return teTrailers
}

func tokenListContains(v, token string) bool {
	for sf := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(textproto.TrimString(sf), token) {
			return true
		}
	}
	return false
}

// upgradeType returns the protocol a request asks to switch to, or "".
func upgradeType(h http.Header) string {
	for _, v := range h["Connection"] {
		if tokenListContains(v, "upgrade") {
			return h.Get("Upgrade")
		}
	}
	return ""
}

// isWebSocketHandshake reports whether r is a WebSocket opening handshake
// (RFC 6455 §4.1): GET, Connection: upgrade, Upgrade: websocket, a
// Sec-WebSocket-Key and a Sec-WebSocket-Version. Only such a request is
// tunnelled; a request that merely names an upgrade (POST with Upgrade: foo,
// h2c) goes through the normal, tapped path, where its Connection and
// Upgrade headers are dropped as hop-by-hop, so a change cannot avoid
// detection by asking for a protocol switch.
func isWebSocketHandshake(r *http.Request) bool {
	return r.Method == http.MethodGet && tokenListContains(upgradeType(r.Header), "websocket") &&
		r.Header.Get("Sec-WebSocket-Key") != "" && r.Header.Get("Sec-WebSocket-Version") != ""
}

// setForwarded sets X-Forwarded-For, X-Forwarded-Host and
// X-Forwarded-Proto, like httputil.ProxyRequest.SetXForwarded, except that a
// client's own X-Forwarded-For, X-Real-IP and Forwarded are believed only
// from a trusted proxy (Options.TrustedProxies): from anyone else
// X-Forwarded-For is replaced by the peer's address and X-Real-IP and
// Forwarded are dropped, so a client at the edge cannot pose as another
// address. vals (length 3) backs the three values, so the caller decides
// where they live.
func (p *Proxy) setForwarded(h http.Header, in *http.Request, vals []string) {
	ip, _, err := net.SplitHostPort(in.RemoteAddr)
	trusted := err == nil && p.trusts(ip)
	if !trusted {
		delete(h, "X-Real-Ip")
		delete(h, "Forwarded")
		delete(h, "X-Forwarded-For")
	}
	if err == nil {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			vals[0] = strings.Join(prior, ", ") + ", " + ip
		} else {
			vals[0] = ip
		}
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	vals[1] = in.Host
	h["X-Forwarded-Host"] = vals[1:2:2]
	vals[2] = "http"
	if in.TLS != nil {
		vals[2] = "https"
	}
	h["X-Forwarded-Proto"] = vals[2:3:3]
}

// trusts reports whether the peer address ip is a trusted proxy.
func (p *Proxy) trusts(ip string) bool {
	if len(p.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, pr := range p.trusted {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// hasPathPrefix reports whether path is prefix or below it, ignoring ASCII case.
func hasPathPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if len(path) < len(prefix) || !strings.EqualFold(path[:len(prefix)], prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// newRequestID returns a ULID for a request that came without X-Request-Id.
// Its entropy comes from the runtime's per-thread ChaCha8 generator (no
// system call, no lock): request ids must be unique, not secret.
func newRequestID(t time.Time) string {
	var entropy [10]byte
	binary.LittleEndian.PutUint64(entropy[:8], rand.Uint64())
	binary.LittleEndian.PutUint16(entropy[8:], uint16(rand.Uint32()))
	return rswebhooks.IDFrom(t, entropy)
}
