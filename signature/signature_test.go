package signature

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testSecret = "0123456789abcdef0123456789abcdef-secret"

func TestSignKnownVector(t *testing.T) {
	// HMAC-SHA256(key "key", "The quick brown fox jumps over the lazy dog").
	got := Sign("key", []byte("The quick brown fox jumps over the lazy dog"))
	want := "sha256=F7BC83F430538424B13298E6AA6FB143EF4D59A14946175997479DBC2D1A3CD8"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"Id":"x","Attempt":1}`)
	sig := Sign(testSecret, body)
	lower := "sha256=" + strings.ToLower(strings.TrimPrefix(sig, "sha256="))
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		want                 error
	}{
		{"valid", testSecret, sig, body, nil},
		{"lower-case hex", testSecret, lower, body, nil},
		{"key any case and spaces", testSecret, " SHA256 = " + strings.TrimPrefix(sig, "sha256="), body, nil},
		{"tampered body", testSecret, sig, []byte(`{"Id":"x","Attempt":2}`), ErrSignatureMismatch},
		{"wrong secret", testSecret + "x", sig, body, ErrSignatureMismatch},
		{"truncated signature", testSecret, sig[:len(sig)-2], body, ErrSignatureMismatch},
		{"empty", testSecret, "", body, ErrMalformedSignature},
		{"no key", testSecret, strings.TrimPrefix(sig, "sha256="), body, ErrMalformedSignature},
		{"other algorithm", testSecret, "sha1=" + strings.TrimPrefix(sig, "sha256="), body, ErrMalformedSignature},
		{"not hex", testSecret, "sha256=XYZ", body, ErrMalformedSignature},
		{"extra part", testSecret, sig + "=abc", body, ErrMalformedSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyStandard(t *testing.T) {
	body := []byte(`{"Id":"01J","Attempt":1}`)
	ts := time.Unix(1_800_000_000, 0)
	sig := SignStandard(testSecret, "01J", ts, body)
	if !strings.HasPrefix(sig, "v1,") {
		t.Fatalf("SignStandard = %q, want v1,<base64>", sig)
	}
	hdr := func(id, tsText, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, tsText)
		h.Set(HeaderWebhookSignature, sig)
		return h
	}
	unix := strconv.FormatInt(ts.Unix(), 10)
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		now  time.Time
		want error
	}{
		{"valid", hdr("01J", unix, sig), body, ts, nil},
		{"valid among several", hdr("01J", unix, "v1,AAAA "+sig), body, ts.Add(4 * time.Minute), nil},
		{"tampered body", hdr("01J", unix, sig), []byte(`{}`), ts, ErrSignatureMismatch},
		{"other id", hdr("01K", unix, sig), body, ts, ErrSignatureMismatch},
		{"other timestamp", hdr("01J", strconv.FormatInt(ts.Unix()+1, 10), sig), body, ts, ErrSignatureMismatch},
		{"too old", hdr("01J", unix, sig), body, ts.Add(6 * time.Minute), ErrTimestampOutOfRange},
		{"from the future", hdr("01J", unix, sig), body, ts.Add(-6 * time.Minute), ErrTimestampOutOfRange},
		{"missing id", hdr("", unix, sig), body, ts, ErrMalformedSignature},
		{"bad timestamp", hdr("01J", "soon", sig), body, ts, ErrMalformedSignature},
		{"no v1 entry", hdr("01J", unix, "v2,abc"), body, ts, ErrMalformedSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyStandard(testSecret, tc.h, tc.body, tc.now, 0)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("VerifyStandard = %v, want %v", err, tc.want)
			}
		})
	}
}
