package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// responseWriter wraps the client's ResponseWriter. It records status and
// size for the access log, and flushes after every write when the response
// has no Content-Length (chunked, NDJSON, text/event-stream), as
// httputil.ReverseProxy does, so streamed events reach the client at once.
// It keeps http.Flusher and http.Hijacker working (goproxy and httputil need
// them); a hijacked connection gets an idle timeout.
type responseWriter struct {
	w         http.ResponseWriter
	flusher   http.Flusher
	status    int
	written   int64
	flushEach bool
	idle      time.Duration
}

var (
	_ http.Flusher  = (*responseWriter)(nil)
	_ http.Hijacker = (*responseWriter)(nil)
)

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rw.w.WriteHeader(code) // informational: more headers follow
		return
	}
	if rw.status != 0 {
		return
	}
	rw.status = code
	_, hasLength := rw.w.Header()["Content-Length"]
	rw.flushEach = !hasLength
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	n, err := rw.w.Write(p)
	rw.written += int64(n)
	if rw.flushEach && rw.flusher != nil && err == nil {
		rw.flusher.Flush()
	}
	return n, err
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.flusher != nil {
		rw.flusher.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

// Hijack implements http.Hijacker. The returned conn replays bytes the server
// had already buffered and closes after rw.idle without traffic.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rw.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if rw.status == 0 {
		rw.status = http.StatusSwitchingProtocols
	}
	ic := &idleConn{Conn: conn, r: conn, timeout: rw.idle}
	if n := brw.Reader.Buffered(); n > 0 {
		buffered, _ := brw.Reader.Peek(n)
		ic.r = io.MultiReader(bufioCopy(buffered), conn)
	}
	ic.touch()
	return ic, brw, nil
}

func bufioCopy(b []byte) io.Reader {
	c := make([]byte, len(b))
	copy(c, b)
	return &sliceReader{b: c}
}

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// idleConn closes a tunnel once no byte moved either way for timeout.
// A read deadline that expires while the other direction is busy is re-armed.
type idleConn struct {
	net.Conn
	r       io.Reader
	timeout time.Duration
	last    atomic.Int64 // unix nanos of the last byte moved
}

func (c *idleConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *idleConn) Read(p []byte) (int, error) {
	for {
		if c.timeout > 0 {
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		}
		n, err := c.r.Read(p)
		if n > 0 {
			c.touch()
		}
		if n == 0 && c.timeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) &&
			time.Since(time.Unix(0, c.last.Load())) < c.timeout {
			continue // the other direction is busy: not idle
		}
		return n, err
	}
}

func (c *idleConn) Write(p []byte) (int, error) {
	if c.timeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// newBufPool returns the pool response bodies are copied with: buffers larger
// than io.Copy's 32 KiB, reused, so a proxied response allocates no buffer.
func newBufPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
}

// body wraps an upstream response body so that goproxy's io.Copy uses a
// pooled buffer (via WriteTo). It is installed inside the round trip, so
// goproxy sees it as the original body and keeps Content-Length.
type body struct {
	r    io.Reader // the body, possibly behind a captured prefix
	c    io.Closer
	bufs *sync.Pool
}

func (b *body) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *body) Close() error               { return b.c.Close() }

// WriteTo implements io.WriterTo.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	bp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := b.r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
