package simulator

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Options configures a Server. The zero value is a working simulator on the
// site root with gzip enabled and one-hour tokens.
type Options struct {
	// Logger receives one debug line per request. Zero value: silent.
	Logger zerolog.Logger
	// Now is the server clock before SetClockSkew is applied. Default time.Now.
	Now func() time.Time
	// Location is the server's local time zone, used for the obsolete
	// local-time fields (ExecutionDate, StartDate, DateCreated). Default UTC.
	Location *time.Location
	// TokenTTL is the lifetime of access tokens issued at POST /Token.
	// Default 1h; negative values are treated as the default.
	TokenTTL time.Duration
	// Prefix mounts everything under an IIS virtual directory such as
	// "/reporting". A missing leading slash is added and a trailing slash is
	// dropped. Requests outside the prefix get 404. Default: the site root.
	Prefix string
	// DisableGzip turns off IIS-style dynamic compression. By default JSON
	// responses are gzip-compressed when the client sends
	// Accept-Encoding: gzip.
	DisableGzip bool
	// SeedSamples adds a sample category, report, data connection, scheduled
	// task and data alert (owned by admin) on top of the always-seeded users,
	// roles and permissions. Useful for the demo; tests usually leave it off.
	SeedSamples bool
}

// Server is a fake Telerik Report Server. It implements http.Handler and is
// safe for concurrent use. Its exported methods are test and demo hooks that
// change state without going through HTTP.
type Server struct {
	log    zerolog.Logger
	now    func() time.Time
	loc    *time.Location
	ttl    time.Duration
	prefix string
	gzip   bool
	routes []*route

	mu sync.Mutex // guards everything below
	st *state

	skew           time.Duration
	failWith       int // status for every request while non-zero
	failNext       int // number of upcoming requests that fail with failNextStatus
	failNextStatus int
	latency        time.Duration
	// Windows of the everyday-change faults (changes.go), wall clock.
	permFail      int
	permFailUntil time.Time
	permHangUntil time.Time
	outageUntil   time.Time
	byRoute       map[string]int
	byPath        map[string]int
	// holdRuns: execute calls queue their runs (queued) instead of
	// recording them, until ReleaseRuns.
	holdRuns bool
	queued   []*task
}

var _ http.Handler = (*Server)(nil)

// New builds a Server from opts, seeded with the users admin/admin
// (administrator), alice/alice and bob/bob.
func New(opts Options) *Server {
	s := &Server{
		log:     opts.Logger.With().Str("component", "simulator").Logger(),
		now:     opts.Now,
		loc:     opts.Location,
		ttl:     opts.TokenTTL,
		prefix:  normalizePrefix(opts.Prefix),
		gzip:    !opts.DisableGzip,
		byRoute: map[string]int{},
		byPath:  map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.loc == nil {
		s.loc = time.UTC
	}
	if s.ttl <= 0 {
		s.ttl = time.Hour
	}
	s.st = newState()
	s.seedUsers()
	if opts.SeedSamples {
		s.seedSamples()
	}
	s.routes = s.buildRoutes()
	return s
}

func normalizePrefix(p string) string {
	p = strings.TrimRight(strings.TrimSpace(p), "/")
	if p == "" {
		return ""
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// Prefix returns the normalised virtual-directory prefix ("" for the root).
func (s *Server) Prefix() string { return s.prefix }

// clock returns the server's notion of now (skew applied). Callers hold s.mu.
func (s *Server) clock() time.Time { return s.now().Add(s.skew).UTC() }

// Serve answers HTTP on ln until ctx is done, then shuts down gracefully
// within five seconds. http.ErrServerClosed is not an error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("simulator: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("simulator: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("simulator: serve: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Routing

// handler computes a response under s.mu; the dispatcher writes it after
// unlocking so slow clients never hold the lock.
type handler func(c *call) *resp

// streamer writes its own response without s.mu held.
type streamer func(c *call)

type route struct {
	method   string
	segs     []string // literal segments or "{name}"
	literals int
	family   string // counter key: METHOD + template
	auth     bool   // needs a bearer token
	h        handler
	stream   streamer
	version  string // v1, v2, v3 or "" (not versioned)
}

// call is one request being dispatched.
type call struct {
	s       *Server
	r       *http.Request
	w       http.ResponseWriter
	p       map[string]string
	version string
	user    *user // authenticated caller, nil for anonymous routes
	token   string
}

func (c *call) param(name string) string { return c.p[name] }

// resp is a computed response.
type resp struct {
	status int
	body   any    // JSON-encoded when non-nil
	raw    []byte // sent as is when body is nil and raw is non-nil
	ctype  string
	header http.Header
}

func jsonResp(status int, v any) *resp { return &resp{status: status, body: v} }
func ok(v any) *resp                   { return jsonResp(http.StatusOK, v) }
func noContent() *resp                 { return &resp{status: http.StatusNoContent} }

// apiError is the ASP.NET Web API error body.
type apiError struct {
	Message string `json:"Message"`
}

func errResp(status int, format string, args ...any) *resp {
	return jsonResp(status, apiError{Message: fmt.Sprintf(format, args...)})
}

func notFound(what, id string) *resp {
	return errResp(http.StatusNotFound, "%s '%s' was not found.", what, id)
}

func forbidden() *resp {
	return errResp(http.StatusForbidden, "The current user does not have the required permission.")
}

func badRequest(format string, args ...any) *resp {
	return errResp(http.StatusBadRequest, format, args...)
}

// created answers 201 with a Location header pointing at path (relative to
// the prefix), as ASP.NET's CreatedAtRoute does.
func (c *call) created(v any, path string) *resp {
	h := http.Header{}
	h.Set("Location", c.absURL(path))
	return &resp{status: http.StatusCreated, body: v, header: h}
}

func (c *call) absURL(path string) string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host + c.s.prefix + "/" + strings.TrimPrefix(path, "/")
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// match finds the most specific route for method and segs. allowed lists the
// methods of routes whose path matched (for 405).
func (s *Server) match(method string, segs []string) (*route, map[string]string, []string) {
	var best *route
	var bestP map[string]string
	var allowed []string
	for _, rt := range s.routes {
		p, okm := rt.matchPath(segs)
		if !okm {
			continue
		}
		if rt.method != method && !(method == http.MethodHead && rt.method == http.MethodGet) {
			allowed = append(allowed, rt.method)
			continue
		}
		if best == nil || rt.literals > best.literals {
			best, bestP = rt, p
		}
	}
	return best, bestP, allowed
}

func (rt *route) matchPath(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var p map[string]string
	for i, want := range rt.segs {
		if strings.HasPrefix(want, "{") {
			if segs[i] == "" {
				return nil, false
			}
			if p == nil {
				p = map[string]string{}
			}
			p[strings.Trim(want, "{}")] = segs[i]
			continue
		}
		if !strings.EqualFold(want, segs[i]) {
			return nil, false
		}
	}
	return p, true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The Date header follows the server's own clock (Options.Now plus any
	// SetClockSkew), as a real server with a skewed clock would send it.
	w.Header().Set("Date", s.Now().UTC().Format(http.TimeFormat))
	path := r.URL.Path
	if s.prefix != "" {
		if len(path) < len(s.prefix) || !strings.EqualFold(path[:len(s.prefix)], s.prefix) ||
			(len(path) > len(s.prefix) && path[len(s.prefix)] != '/') {
			s.write(w, r, errResp(http.StatusNotFound, "No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
			return
		}
		path = path[len(s.prefix):]
	}
	segs := splitPath(path)
	rt, params, allowed := s.match(r.Method, segs)

	family := r.Method + " (unmatched)"
	if rt != nil {
		family = rt.family
	}
	simRoute := len(segs) > 0 && strings.EqualFold(segs[0], "_sim")
	if simRoute && len(segs) >= 2 && strings.EqualFold(segs[1], "control") {
		s.control(w, r, segs)
		return
	}
	if !simRoute && s.changeFault(w, r, segs) {
		return
	}

	s.mu.Lock()
	s.byRoute[family]++
	s.byPath[r.Method+" "+strings.ToLower("/"+strings.Join(segs, "/"))]++
	fail := 0
	if !simRoute {
		switch {
		case s.failNext > 0:
			s.failNext--
			fail = s.failNextStatus
		case s.failWith != 0:
			fail = s.failWith
		}
	}
	latency := s.latency
	s.mu.Unlock()

	s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("route", family).Msg("request")

	if latency > 0 && !simRoute {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fail != 0 {
		s.write(w, r, errResp(fail, "An error has occurred."))
		return
	}
	if rt == nil {
		if len(allowed) > 0 {
			sort.Strings(allowed)
			res := errResp(http.StatusMethodNotAllowed, "The requested resource does not support http method '%s'.", r.Method)
			res.header = http.Header{"Allow": {strings.Join(dedupe(allowed), ", ")}}
			s.write(w, r, res)
			return
		}
		s.write(w, r, errResp(http.StatusNotFound, "No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
		return
	}

	c := &call{s: s, r: r, w: w, p: params, version: rt.version}
	if rt.stream != nil {
		if rt.auth {
			s.mu.Lock()
			res := s.authenticate(c)
			s.mu.Unlock()
			if res != nil {
				s.write(w, r, res)
				return
			}
		}
		rt.stream(c)
		return
	}
	// Read the body before taking the lock, so a slow uploader never
	// stalls the other requests.
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.write(w, r, errResp(http.StatusRequestEntityTooLarge, "The request body exceeds %d bytes.", int64(maxBody)))
				return
			}
			s.write(w, r, badRequest("The request body could not be read: %v", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	s.mu.Lock()
	var res *resp
	if rt.auth {
		res = s.authenticate(c)
	}
	if res == nil {
		res = rt.h(c)
	}
	s.mu.Unlock()
	s.write(w, r, res)
}

func dedupe(in []string) []string {
	out := in[:0]
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// write sends res, JSON-encoding and gzip-compressing as configured.
func (s *Server) write(w http.ResponseWriter, r *http.Request, res *resp) {
	h := w.Header()
	for k, v := range res.header {
		h[k] = v
	}
	var body []byte
	switch {
	case res.body != nil:
		b, err := json.Marshal(res.body)
		if err != nil {
			s.log.Error().Err(err).Msg("encode response")
			http.Error(w, "encode response", http.StatusInternalServerError)
			return
		}
		body = b
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json; charset=utf-8")
		}
	case res.raw != nil:
		body = res.raw
		ct := res.ctype
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
	}
	h.Set("Server", "Microsoft-IIS/10.0")
	h.Set("Date", s.Now().Format(http.TimeFormat)) // the server's own (skewed) clock
	h.Set("X-Powered-By", "ASP.NET")
	if res.status == http.StatusNoContent || body == nil {
		w.WriteHeader(res.status)
		return
	}
	if s.gzip && res.body != nil && acceptsGzip(r) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body) // writes to a bytes.Buffer cannot fail
		_ = zw.Close()
		body = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(res.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}

// maxBody bounds request bodies of the management API (report uploads are
// base64 inside JSON, so they can be large).
const maxBody = 512 << 20

// bind reads a JSON request body into v (field names case-insensitive, as
// Newtonsoft does). It answers 415 for a non-JSON Content-Type and 400 for
// an empty or malformed body; nil means v is filled.
func (c *call) bind(v any) *resp {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/json" && mt != "text/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			// [I] Web API answers 415 when no formatter reads the media type.
			return errResp(http.StatusUnsupportedMediaType,
				"The request entity's media type '%s' is not supported for this resource; send application/json.", mt)
		}
	}
	if c.r.Body == nil {
		return badRequest("The request body is empty.")
	}
	if err := json.NewDecoder(c.r.Body).Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("The request body is empty.")
		}
		return badRequest("The request body is not valid JSON: %v", err)
	}
	return nil
}
