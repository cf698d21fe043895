package daemon

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/limits"
)

// TestAdminAnswersWhileProxyIsSaturated: connections that hold the proxy
// listener (headers never finished) use up its bound; further proxy clients
// wait, and the admin listener, bounded separately, still answers /healthz.
func TestAdminAnswersWhileProxyIsSaturated(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0, ProxyLimits: limits.Options{MaxConnections: 4}})
	addr := strings.TrimPrefix(r.proxyURL, "http://")
	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		fmt.Fprint(c, "GET /api/reportserver/v2/reports HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		held = append(held, c)
	}
	fifth := make(chan string, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fifth <- err.Error()
			return
		}
		defer c.Close()
		fmt.Fprint(c, "GET /healthz-upstream HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			fifth <- err.Error()
			return
		}
		fifth <- resp.Status
	}()
	c := &http.Client{Timeout: 5 * time.Second}
	for range 3 {
		resp, err := c.Get(r.adminURL + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin /healthz while the proxy is saturated: %v", err)
		}
		_ = resp.Body.Close()
	}
	select {
	case s := <-fifth:
		t.Fatalf("a fifth proxy connection was served (%s) while four held the bound", s)
	case <-time.After(300 * time.Millisecond):
	}
	_ = held[0].Close()
	select {
	case s := <-fifth:
		if !strings.Contains(s, " ") || strings.Contains(s, "EOF") {
			t.Fatalf("fifth connection after one closed: %s", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fifth proxy connection was not served after one of the four closed")
	}
}

// TestSlowHeadersAreCutOff: a client that sends part of its headers and then
// nothing (Slowloris) is disconnected after ReadHeaderTimeout, on the proxy
// listener and on the admin listener, while a client that finishes its
// headers is answered.
func TestSlowHeadersAreCutOff(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	lim := limits.Options{ReadHeaderTimeout: 200 * time.Millisecond}
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0, ProxyLimits: lim, AdminLimits: lim})
	for name, base := range map[string]string{"proxy": r.proxyURL, "admin": r.adminURL} {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		closed := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c) // returns when the server hangs up
			closed <- err
		}()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("%s listener: reading the slow connection: %v", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s listener: a client whose headers never end was not cut off (ReadHeaderTimeout 200ms)", name)
		}
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(r.adminURL + "/healthz")
	if err != nil {
		t.Fatalf("a prompt client after the slow ones: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a prompt client after the slow ones: %s", resp.Status)
	}
}
