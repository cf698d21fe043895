// Package testutil holds what the module's tests share: a settable clock, a
// log buffer safe for concurrent writers, a bounded wait for a condition, and
// HTTP request helpers that fail the test on error. It is imported by tests only.
package testutil

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/tap"
)

// Clock is a clock a test sets and advances; Now is safe for concurrent use.
// Use it for code that takes a `now func() time.Time`, and never against
// something that reads the real clock (Badger TTLs, token expiry,
// certificates).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// SyncBuffer collects what concurrent writers (loggers, processes) write.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// NewRequest builds method url with body — nil for none, a string or
// []byte as is, anything else as JSON — and, when token is not empty,
// "Authorization: Bearer token". A body is sent as application/json.
func NewRequest(t testing.TB, method, url, token string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// Eventually waits up to d for cond, checking it every 20 ms, and fails the
// test with what if it still does not hold: a bounded wait on a condition,
// never a sleep standing in for one.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		<-tick.C
	}
}

// Do sends req with c and returns the response and its whole body, as
// sent (not decoded); any error fails the test.
func Do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp, ReadBody(t, resp, false)
}

// ReadBody reads and closes resp's body; with decode, it undoes the
// body's Content-Encoding (gzip, deflate) as tapped bodies are decoded.
func ReadBody(t testing.TB, resp *http.Response, decode bool) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if decode {
		if b, err = tap.Decode(b, resp.Header.Get("Content-Encoding"), 1<<30); err != nil {
			t.Fatalf("decode %s body: %v", resp.Header.Get("Content-Encoding"), err)
		}
	}
	return b
}
