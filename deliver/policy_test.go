package deliver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := Policy{Delays: []time.Duration{time.Second}, MaxRetryAfter: time.Hour}
	ra := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	denied := &net.OpError{Op: "dial", Err: &AddressDeniedError{Addr: netip.MustParseAddr("169.254.169.254"), Rule: netip.MustParsePrefix("169.254.169.254/32")}}
	for _, tc := range []struct {
		name   string
		status int
		err    error
		h      http.Header
		kind   Kind
		after  time.Duration
	}{
		{"200", 200, nil, nil, Success, 0},
		{"204", 204, nil, nil, Success, 0},
		{"299", 299, nil, nil, Success, 0},
		{"410", 410, nil, nil, Gone, 0},
		{"429 seconds", 429, nil, ra("120"), Retry, 120 * time.Second},
		{"503 seconds", 503, nil, ra("7"), Retry, 7 * time.Second},
		{"429 http date", 429, nil, ra(now.Add(90 * time.Second).Format(http.TimeFormat)), Retry, 90 * time.Second},
		{"429 date in the past", 429, nil, ra(now.Add(-time.Hour).Format(http.TimeFormat)), Retry, 0},
		{"429 bounded", 429, nil, ra("86400"), Retry, time.Hour},
		{"429 garbage", 429, nil, ra("soon"), Retry, 0},
		{"429 negative", 429, nil, ra("-5"), Retry, 0},
		{"429 without header", 429, nil, nil, Retry, 0},
		{"500 ignores Retry-After", 500, nil, ra("60"), Retry, 0},
		{"301", 301, nil, nil, Retry, 0},
		{"302", 302, nil, nil, Retry, 0},
		{"400", 400, nil, nil, Retry, 0},
		{"404", 404, nil, nil, Retry, 0},
		{"502", 502, nil, nil, Retry, 0},
		{"connection refused", 0, errors.New("connection refused"), nil, Retry, 0},
		{"timeout", 0, fmt.Errorf("post: %w", errors.New("deadline exceeded")), nil, Retry, 0},
		{"address denied", 0, fmt.Errorf("post: %w", denied), nil, Fail, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Classify(tc.status, tc.err, tc.h, now)
			if d.Kind != tc.kind || d.After != tc.after {
				t.Fatalf("Classify = %v after %s (%s), want %v after %s", d.Kind, d.After, d.Reason, tc.kind, tc.after)
			}
		})
	}
}

func TestPolicyNext(t *testing.T) {
	p := Policy{Delays: []time.Duration{10 * time.Second, time.Minute}, Jitter: 0.2}
	retry := Decision{Kind: Retry}
	for _, tc := range []struct {
		name string
		done int
		d    Decision
		u    float64
		want time.Duration
		ok   bool
	}{
		{"after attempt 1, no jitter", 1, retry, 0.5, 10 * time.Second, true},
		{"after attempt 1, -20%", 1, retry, 0, 8 * time.Second, true},
		{"after attempt 2, +20%", 2, retry, 1, 72 * time.Second, true},
		{"no attempts left", 3, retry, 0.5, 0, false},
		{"retry-after longer than schedule", 1, Decision{Kind: Retry, After: time.Hour}, 0.5, time.Hour, true},
		{"retry-after shorter than schedule", 1, Decision{Kind: Retry, After: time.Second}, 0.5, 10 * time.Second, true},
		{"success ends", 1, Decision{Kind: Success}, 0.5, 0, false},
		{"gone ends", 1, Decision{Kind: Gone}, 0.5, 0, false},
		{"fail ends", 1, Decision{Kind: Fail}, 0.5, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := p.Next(tc.done, tc.d, tc.u)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Next = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.MaxAttempts() < 8 {
		t.Fatalf("MaxAttempts = %d, want at least 8", p.MaxAttempts())
	}
	var total time.Duration
	for _, d := range p.Delays {
		total += d
	}
	// Even with every delay at -20% the schedule spans a day.
	if min := time.Duration(float64(total) * (1 - p.Jitter)); min < 24*time.Hour {
		t.Fatalf("schedule spans %s at worst, want at least 24h", min)
	}
	for _, bad := range []Policy{{Delays: []time.Duration{-1}}, {Jitter: 1}, {MaxRetryAfter: -1}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{200: "2xx", 302: "3xx", 404: "4xx", 503: "5xx", 0: "error", 700: "error"} {
		if got := statusClass(status, nil); got != want {
			t.Errorf("statusClass(%d) = %s, want %s", status, got, want)
		}
	}
	if got := statusClass(200, errors.New("x")); got != "error" {
		t.Errorf("statusClass with error = %s, want error", got)
	}
}
