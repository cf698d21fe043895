// Package doclink signs and serves document links: capability URLs, one
// per webhook and document of a run, that let a receiver download the
// document through rswebhooks without credentials of its own. A link
// carries the webhook id, the run's task or alert, the document id and an
// expiry, signed with HMAC-SHA256 under a key kept in the store. Following
// it re-checks that the webhook still exists and that its owner may still
// read the task or alert, then streams the document from the report server
// with the service account, never holding it whole. Any link that is
// malformed, tampered, expired or revoked gets the same 404.
package doclink

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

// PathPrefix is where links are served on the proxy listener. It sits in
// rswebhooks' own "~" namespace, which no report-server route uses.
const PathPrefix = "/~rswebhooks/documents/"

// DefaultTTL is how long a link stays valid (--document-link-ttl).
const DefaultTTL = 24 * time.Hour

// KeySize is the length of a signing key (NewKey).
const KeySize = 32

// MetaKey is the store meta key holding the signing key.
const MetaKey = "doclink/key"

// NewKey returns a random signing key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go ≥ 1.24)
	return k
}

// Webhooks finds a webhook by id (any error: no such webhook).
type Webhooks interface {
	GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error)
}

// Access says whether a webhook's owner may read an event's resource.
type Access interface {
	CanRead(ctx context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error)
}

// Documents opens a document download with the service account.
type Documents interface {
	OpenDocument(ctx context.Context, version, id string) (*reportserver.DocumentStream, error)
}

var _ Documents = (*reportserver.Client)(nil)

// Options configure New. Every field but Now, Logger and Metrics is
// required.
type Options struct {
	// Key signs links; at least KeySize bytes (keep it in the store, see
	// MetaKey, so links survive restarts).
	Key []byte
	// BaseURL is the proxy listener's address as receivers reach it
	// (--public-url); links are BaseURL + PathPrefix + token.
	BaseURL *url.URL
	// TTL is how long a link is valid from the moment it is made
	// (each delivery attempt makes fresh ones). Default DefaultTTL.
	TTL       time.Duration
	Webhooks  Webhooks
	Access    Access
	Documents Documents
	// APIVersion is "v2" or "v3": the documents route used ("" = v2).
	APIVersion string
	Now        func() time.Time
	Logger     zerolog.Logger
	Metrics    *Metrics
}

// Links makes and serves document links.
type Links struct {
	o    Options
	base string
	log  zerolog.Logger
	m    *Metrics
}

// New validates opts.
func New(opts Options) (*Links, error) {
	var errs []error
	if len(opts.Key) < KeySize {
		errs = append(errs, fmt.Errorf("doclink: Options.Key must be at least %d bytes, got %d", KeySize, len(opts.Key)))
	}
	if opts.BaseURL == nil || (opts.BaseURL.Scheme != "http" && opts.BaseURL.Scheme != "https") || opts.BaseURL.Host == "" {
		errs = append(errs, errors.New("doclink: Options.BaseURL must be an absolute http or https URL"))
	}
	if opts.TTL < 0 {
		errs = append(errs, fmt.Errorf("doclink: Options.TTL must not be negative, got %s", opts.TTL))
	}
	if opts.Webhooks == nil || opts.Access == nil || opts.Documents == nil {
		errs = append(errs, errors.New("doclink: Options.Webhooks, Access and Documents are required"))
	}
	switch opts.APIVersion {
	case "":
		opts.APIVersion = reportserver.APIv2
	case reportserver.APIv2, reportserver.APIv3:
	default:
		errs = append(errs, fmt.Errorf("doclink: Options.APIVersion must be \"\", \"v2\" or \"v3\", got %q", opts.APIVersion))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Links{o: opts, base: strings.TrimSuffix(opts.BaseURL.String(), "/") + PathPrefix,
		log: opts.Logger.With().Str("component", "doclink").Logger(), m: m}, nil
}

// claims is a link's signed content.
type claims struct {
	Webhook  string `json:"w"`
	Filter   string `json:"f"`
	Resource string `json:"r"`
	Document string `json:"d"`
	Expires  int64  `json:"e"` // unix seconds
}

// URL returns the link to document docID of ev's run for webhook
// webhookID, valid for TTL from now.
func (l *Links) URL(webhookID string, ev *rswebhooks.Event, docID string, now time.Time) string {
	c := claims{Webhook: webhookID, Filter: ev.Filter, Resource: ev.ResourceID, Document: docID,
		Expires: now.Add(l.o.TTL).Unix()}
	raw, _ := json.Marshal(c) // strings and a number
	return l.base + l.sign(raw)
}

func (l *Links) sign(payload []byte) string {
	mac := hmac.New(sha256.New, l.o.Key)
	mac.Write([]byte("rswebhooks/doclink\x00"))
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// verify returns the claims of a well-formed, authentic, unexpired token.
func (l *Links) verify(token string) (claims, bool) {
	var c claims
	p64, s64, ok := strings.Cut(token, ".")
	if !ok || len(token) > 4096 {
		return c, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil {
		return c, false
	}
	mac := hmac.New(sha256.New, l.o.Key)
	mac.Write([]byte("rswebhooks/doclink\x00"))
	mac.Write(payload)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return c, false
	}
	if json.Unmarshal(payload, &c) != nil || c.Webhook == "" || c.Document == "" {
		return c, false
	}
	if !l.o.Now().Before(time.Unix(c.Expires, 0)) {
		return c, false
	}
	return c, true
}

// notFound is the one answer for every link that does not lead to a
// document: it says nothing about why.
func notFound(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, `{"Message":"Not found."}`)
}

func failed(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"Message": msg})
	_, _ = w.Write(b)
}

// ServeHTTP serves GET (and HEAD) PathPrefix + token.
func (l *Links) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := zerolog.Ctx(r.Context())
	if log.GetLevel() == zerolog.Disabled {
		log = &l.log
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		failed(w, http.StatusMethodNotAllowed, "Only GET and HEAD are allowed.")
		return
	}
	token := r.URL.Path
	if len(token) < len(PathPrefix) || !strings.EqualFold(token[:len(PathPrefix)], PathPrefix) {
		l.m.count(ResultNotFound)
		notFound(w)
		return
	}
	c, ok := l.verify(token[len(PathPrefix):])
	if !ok {
		l.m.count(ResultNotFound)
		notFound(w)
		return
	}
	ctx := r.Context()
	wh, err := l.o.Webhooks.GetWebhook(ctx, c.Webhook)
	if err != nil || wh == nil {
		l.m.count(ResultNotFound)
		log.Debug().Str("webhook_id", c.Webhook).Msg("document link of a webhook that no longer exists")
		notFound(w)
		return
	}
	allowed, err := l.o.Access.CanRead(ctx, wh.User, &rswebhooks.Event{Filter: c.Filter, ResourceID: c.Resource})
	switch {
	case err != nil && !errors.Is(err, rswebhooks.ErrOwnerMissing) && !errors.Is(err, rswebhooks.ErrAccessUnknown):
		l.m.count(ResultUpstreamError)
		log.Warn().Err(err).Str("webhook_id", wh.ID).Msg("document link: the owner's access could not be checked")
		failed(w, http.StatusServiceUnavailable, "Try again later.")
		return
	case err != nil || !allowed:
		l.m.count(ResultNotFound)
		log.Info().Str("webhook_id", wh.ID).Str("owner", wh.User.ID).Str("resource", c.Filter+"/"+c.Resource).
			Msg("document link refused: the owner may no longer read the resource")
		notFound(w)
		return
	}
	doc, err := l.o.Documents.OpenDocument(ctx, l.o.APIVersion, c.Document)
	switch {
	case errors.Is(err, reportserver.ErrNotFound):
		l.m.count(ResultNotFound)
		notFound(w)
		return
	case err != nil:
		l.m.count(ResultUpstreamError)
		log.Warn().Err(err).Str("document_id", c.Document).Msg("document link: the report server did not deliver the document")
		failed(w, http.StatusBadGateway, "The report server did not deliver the document.")
		return
	}
	defer doc.Body.Close()
	h := w.Header()
	ct := doc.MimeType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	if doc.Length >= 0 {
		h.Set("Content-Length", strconv.FormatInt(doc.Length, 10))
	}
	if doc.Name != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": doc.Name}))
	}
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		l.m.count(ResultOK)
		return
	}
	buf := make([]byte, 32<<10)
	n, err := io.CopyBuffer(onlyWriter{w}, doc.Body, buf)
	l.m.Bytes.Add(float64(n))
	if err != nil {
		l.m.count(ResultAborted)
		log.Info().Err(err).Int64("bytes", n).Str("document_id", c.Document).Msg("document download cut short")
		return
	}
	l.m.count(ResultOK)
}

// onlyWriter hides ReadFrom so io.CopyBuffer uses the bounded buffer.
type onlyWriter struct{ io.Writer }

// Download results, the values of the result label.
const (
	ResultOK            = "ok"
	ResultNotFound      = "not_found"
	ResultUpstreamError = "upstream_error"
	ResultAborted       = "aborted"
)

// Metrics count document downloads.
type Metrics struct {
	// Downloads counts link requests by result (all pre-created).
	Downloads *prometheus.CounterVec
	// Bytes counts document bytes streamed to receivers.
	Bytes prometheus.Counter
}

// NewMetrics registers the metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Downloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_document_downloads_total",
			Help: "Document link requests by result (ok, not_found: bad, expired or revoked link or unknown document; upstream_error; aborted).",
		}, []string{"result"}),
		Bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "rswebhooks_document_download_bytes_total",
			Help: "Document bytes streamed to receivers through document links.",
		}),
	}
	for _, r := range []string{ResultOK, ResultNotFound, ResultUpstreamError, ResultAborted} {
		m.Downloads.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) count(result string) { m.Downloads.WithLabelValues(result).Inc() }

// KeyStore keeps the signing key: the store's create-if-absent.
type KeyStore interface {
	PutMetaIfAbsent(ctx context.Context, key string, v []byte) (stored []byte, created bool, err error)
}

// LoadKey returns the signing key kept in the store under MetaKey,
// creating it on first use. Creation is the store's create-if-absent, so
// nodes of a cluster starting at once all end up with the key the first of
// them stored (a node that wrote its own would sign links the others
// refuse, and overwrite the key of links already handed out).
func LoadKey(ctx context.Context, meta KeyStore) ([]byte, error) {
	k, _, err := meta.PutMetaIfAbsent(ctx, MetaKey, NewKey())
	if err != nil {
		return nil, fmt.Errorf("doclink: read or create the signing key: %w", err)
	}
	if len(k) < KeySize {
		// Replacing it here would race other nodes doing the same; a key
		// this short was not written by LoadKey.
		return nil, fmt.Errorf("doclink: the signing key in the store (meta key %q) is %d bytes, want at least %d; remove that key and restart to make a new one", MetaKey, len(k), KeySize)
	}
	return k, nil
}

// Metrics returns the metrics in use.
func (l *Links) Metrics() *Metrics { return l.m }
