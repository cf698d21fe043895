package limits

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve starts a real loopback server with o applied.
func serve(t *testing.T, o Options, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = o.Server(h)
	srv.Listener = o.Bound(srv.Listener)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
		var zero T
		return zero
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestTrickledBodyIsCut: a body sent at 1 byte then nothing fails once the
// grace and the rate allowance are spent.
func TestTrickledBodyIsCut(t *testing.T) {
	got := make(chan error, 1)
	addr := serve(t, Options{MinBodyRate: 1000, BodyGrace: 200 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	}))
	c := dial(t, addr)
	fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\na")
	err := within(t, got, 10*time.Second, "the body read to fail")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("body read: %v, want a timeout", err)
	}
}

// TestLargeUploadAboveTheRatePasses: an upload that takes well over the
// grace period, paced above the minimum rate, is read whole, and the
// response after it is not cut by the body deadline.
func TestLargeUploadAboveTheRatePasses(t *testing.T) {
	got := make(chan int, 1)
	addr := serve(t, Options{MinBodyRate: 64 << 10, BodyGrace: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			got <- -1
			return
		}
		got <- len(b)
		_, _ = io.WriteString(w, "ok")
	}))
	const chunk, chunks = 16 << 10, 40 // 640 KiB at 16 KiB per 20 ms = 800 KiB/s
	pr, pw := io.Pipe()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		buf := []byte(strings.Repeat("x", chunk))
		for range chunks {
			<-tick.C
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/up", pr)
	req.ContentLength = chunk * chunks
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := within(t, got, 10*time.Second, "the upload"); n != chunk*chunks || string(b) != "ok" {
		t.Fatalf("server read %d bytes, client got %q; want %d and ok", n, b, chunk*chunks)
	}
	// A huge body sent at loopback speed passes too.
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/up", strings.NewReader(strings.Repeat("y", 8<<20)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := within(t, got, 10*time.Second, "the big upload"); n != 8<<20 {
		t.Fatalf("server read %d bytes of 8 MiB", n)
	}
}

// TestIdleConnectionIsClosed: a keep-alive connection with no next request
// is closed after IdleTimeout; a header that never ends, after
// ReadHeaderTimeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	addr := serve(t, Options{IdleTimeout: 100 * time.Millisecond, ReadHeaderTimeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for name, send := range map[string]string{
		"idle":         "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"slow headers": "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
	} {
		c := dial(t, addr)
		fmt.Fprint(c, send)
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c) // returns when the server closes
			done <- err
		}()
		if err := within(t, done, 10*time.Second, name+" connection to be closed"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestListenerBound: with 2 connections held open, a third is not served
// until one of them closes.
func TestListenerBound(t *testing.T) {
	addr := serve(t, Options{MaxConnections: 2}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []net.Conn{a, b} { // both accepted and served
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection: %v", err)
		}
	}
	third := make(chan int, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			third <- -1
			return
		}
		defer c.Close()
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			third <- -1
			return
		}
		third <- resp.StatusCode
	}()
	select {
	case s := <-third:
		t.Fatalf("third connection served (%d) while two were held", s)
	case <-time.After(300 * time.Millisecond):
	}
	_ = a.Close()
	if s := within(t, third, 10*time.Second, "the third connection"); s != 200 {
		t.Fatalf("third connection: %d", s)
	}
}

func TestValidate(t *testing.T) {
	err := Options{MaxConnections: -1, IdleTimeout: -time.Second}.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaxConnections") || !strings.Contains(err.Error(), "IdleTimeout") {
		t.Fatalf("Validate: %v", err)
	}
	if d := DefaultMaxConnections(); d < 64 || d > 16384 {
		t.Fatalf("DefaultMaxConnections = %d", d)
	}
}

// TestServerAlwaysHasTimeouts: a server built from zero Options still has
// the default header and idle timeouts; set ones are kept.
func TestServerAlwaysHasTimeouts(t *testing.T) {
	h := http.NotFoundHandler()
	if s := (Options{}).Server(h); s.ReadHeaderTimeout != DefaultReadHeaderTimeout || s.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("zero Options: ReadHeaderTimeout %s, IdleTimeout %s; want %s, %s", s.ReadHeaderTimeout, s.IdleTimeout, DefaultReadHeaderTimeout, DefaultIdleTimeout)
	}
	if s := (Options{ReadHeaderTimeout: time.Second, IdleTimeout: time.Minute}).Server(h); s.ReadHeaderTimeout != time.Second || s.IdleTimeout != time.Minute {
		t.Errorf("set Options: ReadHeaderTimeout %s, IdleTimeout %s; want 1s, 1m", s.ReadHeaderTimeout, s.IdleTimeout)
	}
}
