package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signature errors. Verify and VerifyStandard wrap one of them, so callers
// can tell a malformed header (answer 400) from a wrong signature.
var (
	// ErrMalformedSignature means the signature header is missing or cannot
	// be parsed.
	ErrMalformedSignature = errors.New("malformed signature header")
	// ErrSignatureMismatch means the header is well formed but no signature
	// in it matches the body and secret.
	ErrSignatureMismatch = errors.New("signature does not match")
	// ErrTimestampOutOfRange means a Standard Webhooks timestamp is too far
	// from the verifier's clock.
	ErrTimestampOutOfRange = errors.New("webhook-timestamp outside tolerance")
)

// Header names set on every notification.
const (
	HeaderSignature          = "ms-signature"
	HeaderWebhookID          = "webhook-id"
	HeaderWebhookTimestamp   = "webhook-timestamp"
	HeaderWebhookSignature   = "webhook-signature"
	defaultStandardTolerance = 5 * time.Minute
)

// Sign returns the ms-signature header value for body: "sha256=" followed by
// the upper-case hex HMAC-SHA256 of the exact body bytes keyed with the UTF-8
// bytes of secret, exactly as the report server's own sender computes it.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	var sum [sha256.Size]byte
	var b [len("sha256=") + 2*sha256.Size]byte
	n := copy(b[:], "sha256=")
	for _, c := range m.Sum(sum[:0]) {
		b[n], b[n+1] = upperHex[c>>4], upperHex[c&0x0f]
		n += 2
	}
	return string(b[:])
}

const upperHex = "0123456789ABCDEF"

// Verify checks an ms-signature header value against body with the rules of
// the ASP.NET WebHooks CustomWebHookReceiver: the value is split on '=' into
// exactly two non-empty trimmed parts, the first must be "sha256" in any
// case, the second is hex in either case, and the HMAC-SHA256 of the raw body
// bytes is compared in constant time. It returns nil, or an error wrapping
// ErrMalformedSignature or ErrSignatureMismatch.
func Verify(secret, signatureHeader string, body []byte) error {
	var parts []string
	for _, p := range strings.Split(signatureHeader, "=") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) != 2 || !strings.EqualFold(parts[0], "sha256") {
		return fmt.Errorf("%w: want %q", ErrMalformedSignature, "sha256=<hex>")
	}
	want, err := hex.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("%w: signature is not hex: %w", ErrMalformedSignature, err)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal(want, m.Sum(nil)) {
		return ErrSignatureMismatch
	}
	return nil
}

// SignStandard returns the Standard Webhooks webhook-signature header value:
// "v1," followed by the base64 HMAC-SHA256 of msgID "." unix-seconds "." body,
// keyed with the UTF-8 bytes of secret. A Standard Webhooks library verifies
// it when given "whsec_" + base64(secret).
func SignStandard(secret, msgID string, ts time.Time, body []byte) string {
	var t [20]byte
	mac := standardMAC([]byte(secret), msgID, strconv.AppendInt(t[:0], ts.Unix(), 10), body)
	var b [len("v1,") + 44]byte // base64 of 32 bytes: 44 characters
	copy(b[:], "v1,")
	base64.StdEncoding.Encode(b[len("v1,"):], mac)
	return string(b[:])
}

func standardMAC(key []byte, msgID string, ts, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write(ts)
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyStandard checks the Standard Webhooks headers webhook-id,
// webhook-timestamp and webhook-signature of h against body. The timestamp
// must be within tolerance of now (5 minutes when tolerance is 0). The
// signature header may hold several space-separated "v1,<base64>" entries;
// one matching entry is enough. It returns nil, or an error wrapping
// ErrMalformedSignature, ErrTimestampOutOfRange or ErrSignatureMismatch.
func VerifyStandard(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", ErrMalformedSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp is not unix seconds: %w", ErrMalformedSignature, err)
	}
	if tolerance <= 0 {
		tolerance = defaultStandardTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s from now, tolerance %s", ErrTimestampOutOfRange, d.Round(time.Second), tolerance)
	}
	want := standardMAC([]byte(secret), id, []byte(tsText), body)
	seen := false
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		seen = true
		if hmac.Equal(got, want) {
			return nil
		}
	}
	if !seen {
		return fmt.Errorf("%w: no v1,<base64> entry in webhook-signature", ErrMalformedSignature)
	}
	return ErrSignatureMismatch
}
