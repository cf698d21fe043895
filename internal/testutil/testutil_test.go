package testutil

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	c.Add(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after Add: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("after Set: %v", got)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _, _ = b.Write([]byte("ab")) })
	}
	wg.Wait()
	if got := b.String(); got != "abababababababab" {
		t.Fatalf("String = %q", got)
	}
}

func TestRequestHelpers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write([]byte(r.Header.Get("Authorization") + "|" + r.Header.Get("Content-Type") + "|" + string(in)))
		_ = zw.Close()
	}))
	defer srv.Close()
	req := NewRequest(t, http.MethodPost, srv.URL, "tok", map[string]int{"a": 1})
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ReadBody(t, res, true), []byte(`Bearer tok|application/json|{"a":1}`); !bytes.Equal(got, want) {
		t.Fatalf("decoded body = %q, want %q", got, want)
	}
	req = NewRequest(t, http.MethodGet, srv.URL, "", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	_, raw := Do(t, srv.Client(), req)
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("Do decoded the body: %q", raw)
	}
}
