package proxy

import (
	"github.com/rswebhooks/rswebhooks/tap"
	"io"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// skipReasons are the values of the reason label, pre-created at zero.
var skipReasons = [...]string{tap.SkipBudget, tap.SkipLimit}

// captureChunk is the smallest reservation a capture takes from the budget
// (unless the body is known to be shorter), so small bodies cost one
// reservation and large ones grow by doubling.
const captureChunk = 4 << 10

// budget bounds the bytes all captures hold at once. reserve never blocks:
// when the bytes are not there it says no and the caller streams on without
// capturing. The gauge is raised after a reservation and lowered before a
// release, so it never reads above the limit.
type budget struct {
	limit int64
	used  atomic.Int64
	gauge prometheus.Gauge
}

func (b *budget) reserve(n int64) bool {
	if n <= 0 {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			b.gauge.Add(float64(n))
			return true
		}
	}
}

func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.gauge.Sub(float64(n))
	b.used.Add(-n)
}

// grant is one capture's share of the budget.
type grant struct {
	b    *budget
	held int64
}

// grow makes room for a buffer of capacity c (c > held): it reserves the
// difference. It reports false when the budget has no room.
func (g *grant) grow(c int64) bool {
	if c <= g.held {
		return true
	}
	if !g.b.reserve(c - g.held) {
		return false
	}
	g.held = c
	return true
}

func (g *grant) free() {
	g.b.release(g.held)
	g.held = 0
}

// nextCap is the capacity a capture buffer grows to when it must hold need
// bytes: doubling, at least captureChunk, at most limit.
func nextCap(cur, need, limit int64) int64 {
	return min(max(2*cur, captureChunk, need), limit)
}

// captureBody tees a request body into a capped buffer while the transport
// streams it upstream. The buffer's bytes are reserved from the budget as it
// grows; when the budget says no, the capture is dropped (and its bytes given
// back) and the body streams on untouched. The transport reads on its own
// goroutine while the proxy takes the capture once the response arrived,
// hence the mutex.
type captureBody struct {
	rc      io.ReadCloser
	limit   int64
	hint    int64 // Content-Length, or -1
	grant   grant
	metrics *Metrics
	// scan, when set, reads the fields the Tap wants instead of copying the
	// body: no limit applies, and it holds scanReserve of the budget.
	scan bodyScanner

	mu        sync.Mutex
	buf       []byte
	truncated bool
	skipped   string
	frozen    bool // taken or released: Read no longer captures
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.capture(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// capture appends p within the limit and the budget. c.mu is held.
func (c *captureBody) capture(p []byte) {
	if c.frozen || c.skipped != "" {
		return
	}
	if c.scan != nil {
		if c.scan.done() {
			return
		}
		if !c.grant.grow(scanReserve) {
			c.skip(tap.SkipBudget, true)
			return
		}
		c.scan.write(p)
		return
	}
	room := c.limit - int64(len(c.buf))
	if int64(len(p)) > room {
		p = p[:max(room, 0)]
		c.truncated = true
		c.skip(tap.SkipLimit, false)
	}
	if len(p) == 0 {
		return
	}
	need := int64(len(c.buf) + len(p))
	if need > int64(cap(c.buf)) {
		want := nextCap(int64(cap(c.buf)), need, c.limit)
		if c.hint >= 0 && c.hint < c.limit && need <= c.hint {
			want = max(need, min(want, c.hint))
		}
		if !c.grant.grow(want) {
			c.skip(tap.SkipBudget, true)
			return
		}
		nb := make([]byte, len(c.buf), want)
		copy(nb, c.buf)
		c.buf = nb
	}
	c.buf = append(c.buf, p...)
}

// skip records why the capture stopped. drop gives its bytes back: a capture
// missing its middle is of no use to anyone. c.mu is held.
func (c *captureBody) skip(reason string, drop bool) {
	if c.skipped == "" {
		c.skipped = reason
		c.metrics.captureSkipped(reason)
	}
	if drop {
		c.truncated = true
		c.buf, c.scan = nil, nil
		c.grant.free()
	}
}

func (c *captureBody) Close() error { return c.rc.Close() }

// take stops capturing and returns what was captured. The slice stays valid
// until release.
func (c *captureBody) take() (b []byte, truncated bool, skipped string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
	if c.scan != nil {
		b, complete := c.scan.result()
		return b, !complete, ""
	}
	return c.buf, c.truncated, c.skipped
}

// release gives the capture's bytes back to the budget.
func (c *captureBody) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
	c.buf = nil
	c.grant.free()
}

// readPrefix reads up to limit+1 bytes of r (one more than the cap, to know
// whether the body is longer), reserving the buffer from g as it grows.
// sizeHint is the Content-Length or -1. It returns everything read, whether
// the budget ran out (reading then stops early), and the read error other
// than io.EOF.
//
// With a scanner, what is read is also fed to it, and reading stops as soon
// as it has found what it looks for.
func readPrefix(r io.Reader, limit, sizeHint int64, g *grant, scan *fieldScanner) (buf []byte, spent bool, err error) {
	want := limit + 1
	for int64(len(buf)) < want && (scan == nil || !scan.done()) {
		if len(buf) == cap(buf) {
			c := nextCap(int64(cap(buf)), int64(len(buf))+1, want)
			if sizeHint >= 0 && sizeHint+1 < c && int64(len(buf)) <= sizeHint {
				c = sizeHint + 1
			}
			if !g.grow(c) {
				return buf, true, nil
			}
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		if scan != nil {
			scan.write(buf[len(buf) : len(buf)+n])
		}
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			return buf, false, nil
		}
		if rerr != nil {
			return buf, false, rerr
		}
	}
	return buf, false, nil
}

// prefixReader replays a captured response prefix to the client and gives
// its bytes back to the budget once replayed (or when the body is closed).
type prefixReader struct {
	b     []byte
	grant grant
	once  sync.Once
}

func (s *prefixReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		s.done()
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	if len(s.b) == 0 {
		s.done()
	}
	return n, nil
}

func (s *prefixReader) done() {
	s.once.Do(s.grant.free)
}

// prefixCloser closes the upstream body and frees the prefix's bytes.
type prefixCloser struct {
	c io.Closer
	p *prefixReader
}

func (c prefixCloser) Close() error {
	c.p.done()
	return c.c.Close()
}

// errReader returns err on every read: it replays a broken upstream body's
// error to the client after the captured prefix.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
