//go:build linux

package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/signature"
)

// post sends one notification signed as the daemon signs it.
func post(t *testing.T, c *http.Client, addr, id string, body []byte, secretFor string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hook/0", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req.Header.Set(signature.HeaderSignature, signature.Sign(secretFor, body))
	req.Header.Set(signature.HeaderWebhookID, id)
	req.Header.Set(signature.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(signature.HeaderWebhookSignature, signature.SignStandard(secretFor, id, now, body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// The sink counts distinct verified notifications over keep-alive
// connections, counts duplicates, answers the echo check, and refuses (and
// counts as bad) a wrong signature and what it does not read: a chunked
// body, another protocol version.
func TestSinkCountsVerifiesAndRefuses(t *testing.T) {
	s, err := newSink(3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 10 * time.Second}
	body := []byte(`{"Id":"N1","Event":"created"}`)

	resp, err := c.Get("http://" + s.addr() + "/hook/0?echo=abc123")
	if err != nil {
		t.Fatal(err)
	}
	echo, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(echo) != "abc123" {
		t.Fatalf("echo check: %d %q, want 200 %q", resp.StatusCode, echo, "abc123")
	}

	for i, id := range []string{"D1", "D2", "D1", "D3"} {
		if resp := post(t, c, s.addr(), id, body, secret); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Date") == "" {
			t.Fatalf("notification %d: %d (Date %q), want 204 with a Date", i, resp.StatusCode, resp.Header.Get("Date"))
		}
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("done not closed after 3 distinct ids (at %d)", s.at.Load())
	}
	if s.at.Load() != 3 || s.dups.Load() != 1 || s.bad.Load() != 0 {
		t.Fatalf("distinct %d, duplicates %d, bad %d; want 3, 1, 0", s.at.Load(), s.dups.Load(), s.bad.Load())
	}

	if resp := post(t, c, s.addr(), "D4", body, secret+"x"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong secret: %d, want 400", resp.StatusCode)
	}
	if s.bad.Load() != 1 || s.at.Load() != 3 {
		t.Fatalf("after a wrong signature: bad %d, distinct %d; want 1, 3", s.bad.Load(), s.at.Load())
	}

	for name, raw := range map[string]string{
		"chunked":  "POST /hook/0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.0": "POST /hook/0 HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"bare LF":  "POST /hook/0 HTTP/1.1\nHost: x\n\n",
		"no Host":  "POST /hook/0 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
	} {
		before := s.bad.Load()
		conn, err := net.Dial("tcp", s.addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(conn) // the sink closes after a 400
		_ = conn.Close()
		if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") || s.bad.Load() != before+1 {
			t.Errorf("%s: answer %q, bad %d → %d; want a 400 and one more bad", name, got, before, s.bad.Load())
		}
	}
}
