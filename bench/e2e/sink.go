//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rswebhooks/rswebhooks/signature"
)

// The sink is the receiver of every notification. In production receivers
// run on other machines; here the sink shares the two cores with the
// daemon, so it is an HTTP/1.1 server that does only what a receiver must:
// read each request (request line, headers, a Content-Length body), verify
// both signatures, count the delivery id and answer 204, without the
// per-request work of net/http's server (header maps of every header,
// contexts, deadlines, response writers). It is strict rather than
// lenient: anything it does not understand — another protocol version, a
// malformed line, a folded header, Transfer-Encoding, a body without
// Content-Length — is counted as a bad notification (which fails the run)
// and answered 400 with the connection closed. GET ?echo=X, the
// registrations API's check of a new webhook, is answered with X.

// maxSinkBody bounds a notification's body.
const maxSinkBody = 1 << 20

// sink verifies each notification's signatures and counts distinct
// delivery ids; done is closed when want distinct ids have arrived.
type sink struct {
	want   int64
	done   chan struct{}
	mu     sync.Mutex
	seen   map[string]struct{}
	dups   atomic.Int64
	bad    atomic.Int64
	badMsg atomic.Value
	at     atomic.Int64 // distinct deliveries so far
	date   atomic.Value // *sinkDate

	ln     net.Listener
	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// newSink starts a sink expecting want distinct deliveries on a loopback
// port; close stops it.
func newSink(want int64) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{want: want, done: make(chan struct{}), seen: make(map[string]struct{}, want), ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *sink) addr() string { return s.ln.Addr().String() }

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *sink) close() {
	_ = s.ln.Close()
	s.connMu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.connMu.Unlock()
	s.wg.Wait()
}

func (s *sink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.connMu.Lock()
		s.conns[c] = struct{}{}
		s.connMu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.connMu.Lock()
			delete(s.conns, c)
			s.connMu.Unlock()
			_ = c.Close()
		}()
	}
}

// fail counts a bad notification.
func (s *sink) fail(err error) {
	s.bad.Add(1)
	s.badMsg.Store(err.Error())
}

// sinkRequest is what the sink keeps of one request; its buffers are
// reused for the connection's next request.
type sinkRequest struct {
	method, target []byte
	contentLength  int64
	hasLength      bool
	hasHost        bool
	close          bool
	h              http.Header // the signature headers only, for signature.VerifyStandard
	msSig          string
	body           []byte
}

var (
	errLine = errors.New("malformed line (want CRLF-terminated)")
	crlf    = []byte("\r\n")
)

// readRequest reads one request's head and body from r into q. It returns
// io.EOF when the connection ended between requests.
func readRequest(r *bufio.Reader, q *sinkRequest) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && r.Buffered() == 0 {
			// Closed (or reset) between requests, as a client may close
			// an idle connection: no request was cut short.
			return io.EOF
		}
		return fmt.Errorf("request line: %w", err)
	}
	if !bytes.HasSuffix(line, crlf) {
		return fmt.Errorf("request line: %w", errLine)
	}
	line = line[:len(line)-2]
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || string(proto) != "HTTP/1.1" {
		return fmt.Errorf("request line %q: want METHOD SP target SP HTTP/1.1", line)
	}
	q.method = append(q.method[:0], method...)
	q.target = append(q.target[:0], target...)
	q.contentLength, q.hasLength, q.hasHost, q.close, q.msSig = 0, false, false, false, ""
	clear(q.h)
	for n := 0; ; n++ {
		if n > 100 {
			return errors.New("more than 100 header lines")
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("header line: %w", err)
		}
		if !bytes.HasSuffix(line, crlf) {
			return fmt.Errorf("header line: %w", errLine)
		}
		line = line[:len(line)-2]
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return fmt.Errorf("header line %q: want name: value", line)
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || v < 0 || (q.hasLength && v != q.contentLength) {
				return fmt.Errorf("Content-Length %q: want one non-negative integer", value)
			}
			q.contentLength, q.hasLength = v, true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return fmt.Errorf("Transfer-Encoding %q: this sink reads Content-Length bodies only", value)
		case bytes.EqualFold(name, []byte("Host")):
			q.hasHost = true
		case bytes.EqualFold(name, []byte("Connection")):
			q.close = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte(signature.HeaderSignature)):
			q.msSig = string(value)
		case bytes.EqualFold(name, []byte(signature.HeaderWebhookID)):
			q.h[hWebhookID] = []string{string(value)}
		case bytes.EqualFold(name, []byte(signature.HeaderWebhookTimestamp)):
			q.h[hWebhookTimestamp] = []string{string(value)}
		case bytes.EqualFold(name, []byte(signature.HeaderWebhookSignature)):
			q.h[hWebhookSignature] = []string{string(value)}
		}
	}
	if !q.hasHost {
		return errors.New("no Host header (required in HTTP/1.1)")
	}
	if q.contentLength > maxSinkBody {
		return fmt.Errorf("Content-Length %d: over %d", q.contentLength, maxSinkBody)
	}
	if int64(cap(q.body)) < q.contentLength {
		q.body = make([]byte, q.contentLength)
	}
	q.body = q.body[:q.contentLength]
	if _, err := io.ReadFull(r, q.body); err != nil {
		return fmt.Errorf("body of %d bytes: %w", q.contentLength, err)
	}
	return nil
}

var (
	hWebhookID        = http.CanonicalHeaderKey(signature.HeaderWebhookID)
	hWebhookTimestamp = http.CanonicalHeaderKey(signature.HeaderWebhookTimestamp)
	hWebhookSignature = http.CanonicalHeaderKey(signature.HeaderWebhookSignature)
)

// answer204 writes the answer to a verified notification: 204 with a Date
// header, as net/http's server would send it (so the daemon's client reads
// what it reads from a real receiver), formatted at most once a second.
func (s *sink) answer204(w *bufio.Writer) error {
	now := time.Now().Unix()
	d, _ := s.date.Load().(*sinkDate)
	if d == nil || d.unix != now {
		d = &sinkDate{unix: now, line: "HTTP/1.1 204 No Content\r\nDate: " + time.Unix(now, 0).UTC().Format(http.TimeFormat) + "\r\n\r\n"}
		s.date.Store(d)
	}
	_, err := w.WriteString(d.line)
	return err
}

// sinkDate is a 204 answer with its Date header for one second.
type sinkDate struct {
	unix int64
	line string
}

// serve answers the requests of one connection in turn.
func (s *sink) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 16<<10)
	w := bufio.NewWriterSize(c, 4<<10)
	q := &sinkRequest{h: make(http.Header, 3)}
	for {
		err := readRequest(r, q)
		if errors.Is(err, io.EOF) {
			return
		}
		if err == nil {
			err = s.handle(w, q)
		}
		if err != nil {
			if !isClosed(err) {
				s.fail(err)
				msg := err.Error()
				fmt.Fprintf(w, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
				_ = w.Flush()
			}
			return
		}
		if r.Buffered() == 0 { // nothing pipelined behind: send what is written
			if err := w.Flush(); err != nil {
				return
			}
		}
		if q.close {
			_ = w.Flush()
			return
		}
	}
}

// isClosed reports whether err is the sink's own connection closing at
// the end of a run.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// handle answers one request: a notification (POST with both signatures)
// or the registrations API's echo check (GET ?echo=X). A notification that
// fails verification is an error: counted by the caller and answered 400.
func (s *sink) handle(w *bufio.Writer, q *sinkRequest) error {
	switch string(q.method) {
	case http.MethodGet:
		u, err := url.ParseRequestURI(string(q.target))
		if err != nil {
			return fmt.Errorf("GET target %q: %w", q.target, err)
		}
		e := u.Query().Get("echo")
		if e == "" {
			return fmt.Errorf("GET %q: only the echo check is served", q.target)
		}
		_, err = fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(e), e)
		return err
	case http.MethodPost:
	default:
		return fmt.Errorf("method %q: want POST (or GET for the echo check)", q.method)
	}
	if !q.hasLength {
		return errors.New("POST without Content-Length")
	}
	if err := signature.Verify(secret, q.msSig, q.body); err != nil {
		return err
	}
	if err := signature.VerifyStandard(secret, q.h, q.body, time.Now(), 0); err != nil {
		return err
	}
	id := q.h.Get(signature.HeaderWebhookID)
	s.mu.Lock()
	_, dup := s.seen[id]
	s.seen[id] = struct{}{}
	s.mu.Unlock()
	if err := s.answer204(w); err != nil {
		return err
	}
	if dup {
		s.dups.Add(1)
		return nil
	}
	if s.at.Add(1) == s.want {
		close(s.done)
	}
	return nil
}
