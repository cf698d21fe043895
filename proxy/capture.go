package proxy

import (
	"io"
	"sync"
)

// captureBody tees a request body into a capped buffer while the transport
// streams it upstream. The transport reads on its own goroutine while the
// proxy may snapshot once the response arrived, hence the mutex.
type captureBody struct {
	rc    io.ReadCloser
	limit int64

	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 {
		c.mu.Lock()
		room := c.limit - int64(len(c.buf))
		switch {
		case room >= int64(n):
			c.buf = append(c.buf, p[:n]...)
		default:
			if room > 0 {
				c.buf = append(c.buf, p[:room]...)
			}
			c.truncated = true
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *captureBody) Close() error { return c.rc.Close() }

// snapshot returns a copy of what was captured so far.
func (c *captureBody) snapshot() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf...), c.truncated
}

// readPrefix reads up to limit+1 bytes of r (one more than the cap, to know
// whether the body is longer). sizeHint is the Content-Length or -1.
// It returns everything read, and the read error other than io.EOF.
func readPrefix(r io.Reader, limit, sizeHint int64) ([]byte, error) {
	want := limit + 1
	initial := int64(32 << 10)
	if sizeHint >= 0 && sizeHint+1 < want {
		initial = sizeHint + 1
	}
	initial = min(initial, want)
	buf := make([]byte, 0, initial)
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
			if int64(cap(buf)) > want {
				buf = buf[:len(buf):want]
			}
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// errReader returns err on every read: it replays a broken upstream body's
// error to the client after the captured prefix.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
