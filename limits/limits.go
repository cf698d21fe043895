// Package limits bounds what one client can hold of a listener: how many
// connections are open at once, how long a request's headers and body may
// take to arrive, and how long an idle keep-alive connection stays open. It
// keeps a slow or hostile client from exhausting file descriptors or
// goroutines, so the proxy keeps serving and the admin listener (with its own
// bound) stays answerable when the proxy listener is saturated.
package limits

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Options are one listener's limits. The zero value of a field means its
// default; Validate names the field of a value that cannot work.
type Options struct {
	// MaxConnections bounds the connections open at once; further ones wait
	// in the kernel's accept queue until one closes. 0 means
	// DefaultMaxConnections() for the proxy listener.
	MaxConnections int
	// ReadHeaderTimeout bounds the time to read a request's headers.
	// Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for
	// its next request. Default 120s.
	IdleTimeout time.Duration
	// MinBodyRate is the slowest a request body may arrive, in bytes per
	// second, after BodyGrace: a body of n bytes must be read within
	// BodyGrace + n/MinBodyRate. A large upload at or above the rate is never
	// cut; a body trickled below it is. Default 1024 (1 KiB/s); negative
	// disables the deadline.
	MinBodyRate int64
	// BodyGrace is the time a body may take before MinBodyRate applies.
	// Default 30s.
	BodyGrace time.Duration
}

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMinBodyRate       = 1024
	DefaultBodyGrace         = 30 * time.Second
)

// DefaultMaxConnections is the proxy listener's default bound: half of the
// process's open-file limit (each proxied connection may hold an upstream
// connection as well) less a reserve of 256 descriptors for the store, the
// admin listener and deliveries, at least 64 and at most 16384.
func DefaultMaxConnections() int {
	n := 16384
	if cur, err := openFileLimit(); err == nil && cur > 0 && cur < 1<<31 {
		n = (int(cur) - 256) / 2
	}
	return min(max(n, 64), 16384)
}

// WithDefaults returns o with each zero field set to its default;
// MaxConnections becomes def.
func (o Options) WithDefaults(def int) Options {
	if o.MaxConnections == 0 {
		o.MaxConnections = def
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MinBodyRate == 0 {
		o.MinBodyRate = DefaultMinBodyRate
	}
	if o.BodyGrace == 0 {
		o.BodyGrace = DefaultBodyGrace
	}
	return o
}

// Validate reports a limit that cannot work, naming the field.
func (o Options) Validate() error {
	var errs []error
	if o.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("MaxConnections = %d: must be at least 1 (0 for the default)", o.MaxConnections))
	}
	if o.ReadHeaderTimeout < 0 {
		errs = append(errs, fmt.Errorf("ReadHeaderTimeout = %s: must not be negative", o.ReadHeaderTimeout))
	}
	if o.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("IdleTimeout = %s: must not be negative", o.IdleTimeout))
	}
	if o.BodyGrace < 0 {
		errs = append(errs, fmt.Errorf("BodyGrace = %s: must not be negative", o.BodyGrace))
	}
	return errors.Join(errs...)
}

// Server returns a server for h with o's header and idle timeouts, h
// wrapped with the body-rate deadline. Zero fields take their defaults, so
// a server built here always has a header timeout: a client that trickles
// its headers (Slowloris) is cut off after ReadHeaderTimeout.
func (o Options) Server(h http.Handler) *http.Server {
	o = o.WithDefaults(0)
	if o.MinBodyRate > 0 {
		h = MinBodyRate(h, o.MinBodyRate, o.BodyGrace)
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: o.ReadHeaderTimeout, IdleTimeout: o.IdleTimeout}
}

// Bound returns ln bounded to MaxConnections (ln itself when that is 0).
func (o Options) Bound(ln net.Listener) net.Listener {
	if o.MaxConnections > 0 {
		return Listener(ln, o.MaxConnections)
	}
	return ln
}

// Listener returns ln bounded to max connections open at once: Accept waits
// while max accepted connections are still open. Waiting connections stay in
// the kernel's accept queue, using no descriptor of ours.
func Listener(ln net.Listener, max int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// MinBodyRate wraps h so that a request body must arrive at rate bytes per
// second after grace: the connection's read deadline moves forward as bytes
// arrive, and a read past it fails (the handler sees the error, the
// connection is closed). Once the body is read the deadline is cleared, so
// the rest of the exchange is not limited by it.
func MinBodyRate(h http.Handler, rate int64, grace time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		start := time.Now()
		if rc.SetReadDeadline(start.Add(grace)) != nil {
			h.ServeHTTP(w, r) // hijacked or HTTP/2 stream without deadlines
			return
		}
		r.Body = &rateBody{ReadCloser: r.Body, rc: rc, start: start, rate: rate, grace: grace}
		h.ServeHTTP(w, r)
	})
}

type rateBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	rate  int64
	grace time.Duration
	n     int64
	done  bool
}

func (b *rateBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if b.done {
		return n, err
	}
	if err != nil {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
		return n, err
	}
	if n > 0 {
		allowed := b.grace + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second))
		_ = b.rc.SetReadDeadline(b.start.Add(allowed))
	}
	return n, err
}
