package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Streaming routes for proxy tests. They never hold s.mu while writing.

// MaxLargeSize bounds ?size= on the large download route (1 TiB).
const MaxLargeSize = 1 << 40

// DeterministicBytes returns a reader of the n bytes the large download
// route streams, so a test can hash what it expects without holding it.
// Byte i is a fixed function of i.
func DeterministicBytes(n int64) io.Reader {
	return &patternReader{remaining: n}
}

type patternReader struct {
	off       int64
	remaining int64
}

func patternByte(i int64) byte {
	return byte(i ^ (i >> 8) ^ (i>>16)*31)
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	for i := range b {
		b[i] = patternByte(p.off + int64(i))
	}
	p.off += int64(len(b))
	p.remaining -= int64(len(b))
	return len(b), nil
}

func queryInt(r *http.Request, name string, def, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("query parameter %s must be an integer between 0 and %d", name, max)
	}
	return n, nil
}

func queryDuration(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > time.Hour {
		return 0, fmt.Errorf("query parameter %s must be a Go duration between 0 and 1h", name)
	}
	return d, nil
}

// streamLarge serves GET …/documents/{documentId}/large?size=N and GET
// /_sim/large?size=N: N deterministic bytes (default 1 MiB) with a
// Content-Length, generated on the fly.
func (s *Server) streamLarge(c *call) {
	n, err := queryInt(c.r, "size", 1<<20, MaxLargeSize)
	if err != nil {
		s.write(c.w, c.r, badRequest("%v", err))
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("Content-Disposition", `attachment; filename="large.bin"`)
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 64<<10)
	_, _ = io.CopyBuffer(onlyWriter{c.w}, DeterministicBytes(n), buf) // a client gone away ends the copy
}

// onlyWriter hides ReadFrom so io.CopyBuffer uses our buffer size.
type onlyWriter struct{ io.Writer }

// streamSlow serves GET /_sim/slow?chunks=N&interval=D&size=B: N chunks of B
// bytes (defaults 5, 100ms, 16), each flushed at once, no Content-Length
// (chunked framing). Stops when the client goes away.
func (s *Server) streamSlow(c *call) {
	n, err1 := queryInt(c.r, "chunks", 5, 1<<20)
	size, err2 := queryInt(c.r, "size", 16, 1<<20)
	every, err3 := queryDuration(c.r, "interval", 100*time.Millisecond)
	if err := firstErr(err1, err2, err3); err != nil {
		s.write(c.w, c.r, badRequest("%v", err))
		return
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)
	chunk := make([]byte, size)
	for i := int64(0); i < n; i++ {
		if i > 0 && !waitOrDone(c.r, every) {
			return
		}
		for j := range chunk {
			chunk[j] = 'a' + byte(i%26)
		}
		if size > 0 {
			chunk[len(chunk)-1] = '\n'
		}
		if _, err := c.w.Write(chunk); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// streamSSE serves GET /_sim/sse?events=N&interval=D: a text/event-stream of
// N events (defaults 3, 100ms) like SignalR's SSE transport, each flushed.
func (s *Server) streamSSE(c *call) {
	n, err1 := queryInt(c.r, "events", 3, 1<<20)
	every, err2 := queryDuration(c.r, "interval", 100*time.Millisecond)
	if err := firstErr(err1, err2); err != nil {
		s.write(c.w, c.r, badRequest("%v", err))
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)
	_ = rc.Flush()
	for i := int64(1); i <= n; i++ {
		if !waitOrDone(c.r, every) {
			return
		}
		if _, err := fmt.Fprintf(c.w, "id: %d\nevent: tick\ndata: {\"N\":%d}\n\n", i, i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// Echo is the answer of /_sim/echo: what the simulator received.
type Echo struct {
	Method     string      `json:"Method"`
	Path       string      `json:"Path"`
	RawQuery   string      `json:"RawQuery"`
	Host       string      `json:"Host"`
	Header     http.Header `json:"Header"`
	BodyLength int64       `json:"BodyLength"`
	BodySha256 string      `json:"BodySha256"`
}

// echo serves any method on /_sim/echo: it reads the body as a stream
// (never holding it) and answers an Echo as JSON. ?status=N sets the status
// (204 and 304 answer without a body) and each ?header=Name:Value adds a
// response header, so proxy checks can see redirects, cookies and CORS
// answers pass through.
func (s *Server) echo(c *call) {
	q := c.r.URL.Query()
	status := http.StatusOK
	if v := q.Get("status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 200 || n > 599 {
			s.write(c.w, c.r, badRequest("status: %q is not a status code from 200 to 599", v))
			return
		}
		status = n
	}
	header := http.Header{}
	for _, hv := range q["header"] {
		name, val, ok := strings.Cut(hv, ":")
		if !ok || !validHeaderName(name) {
			s.write(c.w, c.r, badRequest("header: %q is not Name:Value with a valid header name", hv))
			return
		}
		header.Add(name, strings.TrimSpace(val))
	}
	hsh := sha256.New()
	var n int64
	if c.r.Body != nil {
		var err error
		n, err = io.Copy(hsh, c.r.Body)
		if err != nil {
			s.write(c.w, c.r, badRequest("reading the body: %v", err))
			return
		}
	}
	e := Echo{Method: c.r.Method, Path: c.r.URL.Path, RawQuery: c.r.URL.RawQuery, Host: c.r.Host,
		Header: c.r.Header, BodyLength: n, BodySha256: hex.EncodeToString(hsh.Sum(nil))}
	res := &resp{status: status, body: e, header: header}
	if status == http.StatusNoContent || status == http.StatusNotModified {
		res.body = nil
	}
	s.write(c.w, c.r, res)
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c > 0x7e || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

func waitOrDone(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
