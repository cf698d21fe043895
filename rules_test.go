package rswebhooks

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

func TestReservedHeader(t *testing.T) {
	for _, name := range []string{
		"ms-signature", "MS-Signature", " Content-Type ", "Content-Length", "Host", "User-Agent",
		"Transfer-Encoding", "Connection", "Keep-Alive", "TE", "Trailer", "Upgrade",
		"Proxy-Connection", "Content-Encoding", "Expect",
		"webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "webhook-anything",
	} {
		if !ReservedHeader(name) {
			t.Errorf("ReservedHeader(%q) = false, want true", name)
		}
	}
	for _, name := range []string{"X-Tenant", "Authorization", "webhook", "X-Webhook-Id", "Accept"} {
		if ReservedHeader(name) {
			t.Errorf("ReservedHeader(%q) = true, want false", name)
		}
	}
	for _, n := range ReservedHeaders() {
		if !ReservedHeader(n) {
			t.Errorf("ReservedHeaders lists %q, which ReservedHeader does not reserve", n)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Bearer abc", "abc"},
		{"bearer  abc ", "abc"},
		{"BEARER abc", "abc"},
		{"Basic abc", ""},
		{"Bearer", ""},
		{"", ""},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		if got := BearerToken(h); got != tc.want {
			t.Errorf("BearerToken(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:pw@hooks.example/in?token=s3cret#frag", "https://hooks.example/in"},
		{"http://hooks.example/a%2Fb?", "http://hooks.example/a%2Fb"},
		{"http://hooks.example:8080/", "http://hooks.example:8080/"},
		{"http://[::1]:namedport", "(unparsable URL)"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	err := fmt.Errorf("attempt: %w", &url.Error{Op: "Post", URL: "https://u:pw@hooks.example/in?token=s3cret", Err: errors.New("connection refused")})
	if got, want := RedactError(err), "Post https://hooks.example/in: connection refused"; got != want {
		t.Errorf("RedactError = %q, want %q", got, want)
	}
	if got := RedactError(errors.New("plain")); got != "plain" {
		t.Errorf("RedactError(plain) = %q", got)
	}
}
